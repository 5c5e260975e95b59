"""The exception tree: ``from pacspace_async import errors`` (also importable from the top)."""

from ._batch_error import BatchError as BatchError
from ._errors import *  # noqa: F403
from ._errors import __all__ as _tree

__all__ = sorted([*_tree, "BatchError"])
