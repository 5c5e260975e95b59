"""pacspace_sync: the blocking facade over pacspace_async (generated; arrives with its issue)."""
