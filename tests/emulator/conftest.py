"""The emulator's tests run against the real server over sockets, through the SDK.

Their fixtures (`pacspace_emulator`, `pacspace_client`, ...) come from the package's pytest
plugin, which the ``pytest11`` entry point loads wherever pacspace is installed.
"""
