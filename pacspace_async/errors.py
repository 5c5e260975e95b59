"""The exception tree: ``from pacspace_async import errors`` (also importable from the top)."""

from ._errors import *  # noqa: F403
from ._errors import __all__ as __all__
