"""``python -m pacspace_async``: the ``pacspace`` command."""

from .cli import entry_point

entry_point()
