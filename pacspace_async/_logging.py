"""The ``pacspace`` logger: one line per retry (INFO) and per request (DEBUG), never a body.

``PACSPACE_LOG=info`` or ``debug`` attaches a stderr handler. A filter on the logger redacts
anything shaped like a key secret, whoever formats the message. Another gives every record the
current OpenTelemetry ``trace_id`` and ``span_id`` (hex; ``"0"`` outside a span or without the
API), so a format string may use ``%(trace_id)s`` and a log line can be found from its trace.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from ._redact import redact
from ._telemetry import log_ids

__all__ = ["logger", "RedactingFilter", "TraceContextFilter", "configure_from_env"]

logger = logging.getLogger("pacspace")


class RedactingFilter(logging.Filter):
    """Rewrites the message and its arguments with key secrets replaced by ``****``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if record.args:
            if isinstance(record.args, Mapping):
                record.args = {k: _redact_arg(v) for k, v in record.args.items()}
            else:
                record.args = tuple(_redact_arg(arg) for arg in record.args)
        return True


def _redact_arg(value: object) -> object:
    if isinstance(value, (int, float)) or value is None:
        return value
    text = str(value)
    cleaned = redact(text)
    return value if cleaned == text else cleaned


class TraceContextFilter(logging.Filter):
    """Sets ``trace_id`` and ``span_id`` on each record from the current OpenTelemetry span.

    Runs only for records that pass the logger's level, and without the API it only sets the
    two attributes to ``"0"``: nothing to pay on calls that log nothing.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        record.trace_id, record.span_id = log_ids()
        return True


_FILTER = RedactingFilter()
if not any(isinstance(existing, RedactingFilter) for existing in logger.filters):
    logger.addFilter(_FILTER)
if not any(isinstance(existing, TraceContextFilter) for existing in logger.filters):
    logger.addFilter(TraceContextFilter())

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO}


def configure_from_env(environ: Mapping[str, str] = os.environ) -> None:
    """Honour ``PACSPACE_LOG`` once: attach a redacting stderr handler at that level."""
    level = _LEVELS.get(environ.get("PACSPACE_LOG", "").strip().lower())
    if level is None or any(getattr(h, "_pacspace", False) for h in logger.handlers):
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_FILTER)
    handler._pacspace = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(level)
