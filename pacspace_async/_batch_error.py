"""The error that stops `balance.emit_batch` part-way: the failed request's own error, which
also carries what the requests before it recorded.

`batch_progress` is on these errors only, not on every error; the error keeps its own class
(``except RateLimitError`` still catches a batch's 429) by being an instance of that class
mixed with `BatchError`, made once per class and pickled through the plain class.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from ._errors import PacSpaceError, _restore

if TYPE_CHECKING:  # errors, which everything imports, import no models at run time
    from .models.balance import BatchResult

__all__ = ["BatchError", "batch_error_class", "with_batch_progress"]


class BatchError(PacSpaceError):
    """An error raised by a request of `balance.emit_batch`, with what came before it.

    It is never raised alone: the error of the failed request is raised as an instance of its
    own class mixed with this one, so ``except RateLimitError`` catches a batch's 429 as it
    catches any other, its type prints as ``RateLimitError``, and ``except BatchError`` (or
    ``isinstance(error, BatchError)``) finds `batch_progress` on any of them.
    """

    #: A `BatchResult` of what the requests before the failed one recorded (empty when the
    #: first request failed). Resend the same items, each with a `reference_id`, to finish.
    batch_progress: BatchResult


_BATCH_CLASSES: dict[type[PacSpaceError], type[BatchError]] = {}


def batch_error_class(plain: type[PacSpaceError]) -> type[BatchError]:
    """`plain` mixed with `BatchError`: one class per error class, named as `plain` is."""
    if issubclass(plain, BatchError):
        return plain
    known = _BATCH_CLASSES.get(plain)
    if known is not None:
        return known

    def __reduce__(self: PacSpaceError) -> tuple[Any, ...]:
        # Pickled through the plain class, which pickle can find by name; this mixed class
        # exists only in memory and is made again on load.
        return (_restore_batch, (plain, self.args, dict(self.__dict__)))

    namespace = {
        "__module__": plain.__module__,
        "__qualname__": plain.__qualname__,
        "__doc__": plain.__doc__,
        "__reduce__": __reduce__,
    }
    made = cast("type[BatchError]", type(plain.__name__, (plain, BatchError), namespace))
    return _BATCH_CLASSES.setdefault(plain, made)  # one class per error class, even across threads


def _restore_batch(plain: type[PacSpaceError], args: tuple[Any, ...], state: dict[str, Any]) -> PacSpaceError:
    return _restore(batch_error_class(plain), args, state)


def with_batch_progress(error: PacSpaceError, progress: BatchResult) -> BatchError:
    """A copy of `error` (its class, message and every field) as a `BatchError` carrying
    `progress` (pure: `error` itself is left as it was)."""
    state = {**error.__dict__, "batch_progress": progress}
    return cast(BatchError, _restore(batch_error_class(type(error)), error.args, state))
