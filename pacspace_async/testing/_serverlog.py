"""The logger given to the emulator's aiohttp servers: it never lets request bytes through.

aiohttp reports a request it cannot parse (a header longer than its limit, a bad request line)
by logging the parser's exception, whose text quotes the offending bytes: for an oversized
``X-Api-Key`` that is the start of a real key secret. The emulator hands aiohttp this logger
instead of ``aiohttp.server`` (whose other users are left alone), and a filter on it rewrites
every record to aiohttp's fixed message plus the exception's class and HTTP status, with no
exception text and no traceback.
"""

from __future__ import annotations

import logging

from aiohttp.http_exceptions import HttpProcessingError

__all__ = ["SERVER_LOGGER", "server_logger"]

SERVER_LOGGER = "pacspace.emulator.http"


class _NoRequestBytes(logging.Filter):
    """Keeps aiohttp's own message (a fixed text and the peer address), drops what it quotes."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if error is None:
            return True
        message = record.getMessage()
        if isinstance(error, HttpProcessingError):
            # The client's mistake, already answered with a 4xx: worth a line, not an ERROR.
            what = f"{type(error).__name__}, answered HTTP {error.code}"
            if record.levelno > logging.WARNING:
                record.levelno, record.levelname = logging.WARNING, logging.getLevelName(logging.WARNING)
        else:
            what = type(error).__name__
        record.msg = f"{message} ({what}; request contents are never logged)"
        record.args = ()
        record.exc_info = None
        record.exc_text = None
        record.stack_info = None
        return True


def server_logger() -> logging.Logger:
    """The logger for ``web.AppRunner(..., logger=...)``; the filter is attached once."""
    logger = logging.getLogger(SERVER_LOGGER)
    if not any(isinstance(existing, _NoRequestBytes) for existing in logger.filters):
        logger.addFilter(_NoRequestBytes())
    return logger
