"""OpenTelemetry's providers as the SDK's telemetry sees them: tracers, instruments, pure helpers.

Split from `_telemetry` (the hooks): whether the API is installed (`AVAILABLE`), whether a
provider is configured (cheaply: this is asked on every call), one tracer and one set of
instruments per provider, and the small pure functions the hooks share. No OpenTelemetry
import happens when the API is absent.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import attrs
from yarl import URL

from ._redact import redact
from ._retry import Wait
from ._version import __version__

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, Counter, Histogram, MeterProvider, Observation
    from opentelemetry.trace import SpanContext, Tracer, TracerProvider

    from ._retry import Outcome, Retry

try:
    from opentelemetry import context as _context
    from opentelemetry import metrics as _metrics
    from opentelemetry import trace as _trace
except ImportError:  # the [otel] extra is not installed: every hook stays unused
    AVAILABLE = False
else:
    AVAILABLE = True

__all__ = [
    "AVAILABLE",
    "FAST_METER_PROVIDER",
    "FAST_TRACER_PROVIDER",
    "METRICS_GLOBALS",
    "OUTBOX_STATS",
    "SUPPRESS_HTTP",
    "Instruments",
    "error_type",
    "global_meter_provider",
    "global_tracer_provider",
    "instruments_for",
    "replayed_header",
    "retry_reason",
    "safe_url",
    "server_of",
    "trace_parent_of",
    "tracer_for",
]

SCHEMA_URL = "https://opentelemetry.io/schemas/1.26.0"
#: The semantic conventions' advice for ``http.client.request.duration``, in seconds.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
#: Gate waits run from milliseconds up to `max_retry_after` (60 s by default).
GATE_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# A server's error code goes into `error.type` only when it looks like one: the value is the
# server's text, and an attribute must stay low-cardinality and free of anything else.
_CODE = re.compile(r"[A-Za-z][A-Za-z0-9_.\-]{0,63}")

V = TypeVar("V")

if AVAILABLE:
    from opentelemetry.metrics import NoOpMeterProvider

    try:
        from opentelemetry.metrics._internal import _ProxyMeterProvider
    except ImportError:  # pragma: no cover - an API that moved it: the proxy then counts as an SDK
        _NO_METRICS: tuple[type, ...] = (NoOpMeterProvider,)
    else:
        _NO_METRICS = (NoOpMeterProvider, _ProxyMeterProvider)
    _NO_TRACING: tuple[type, ...] = (_trace.ProxyTracerProvider, _trace.NoOpTracerProvider)
    # The one key every HTTP instrumentation reads (requests, urllib3, aiohttp, httpx): the API
    # owns it since it must be the very same object for all of them.
    SUPPRESS_HTTP: Any = getattr(_context, "_SUPPRESS_HTTP_INSTRUMENTATION_KEY", "suppress_http_instrumentation")

# Every call asks "is a global provider set?". The API's getters answer after looking up an
# environment variable (microseconds, on every call, even with no SDK at all), so where the API
# keeps the answer in its module global, and no provider is named by that variable, the global
# is read directly; a provider set later is seen on the next call all the same.
FAST_TRACER_PROVIDER = (
    AVAILABLE and hasattr(_trace, "_TRACER_PROVIDER") and "OTEL_PYTHON_TRACER_PROVIDER" not in os.environ
)
METRICS_GLOBALS: Any = getattr(_metrics, "_internal", None) if AVAILABLE else None
FAST_METER_PROVIDER = (
    AVAILABLE and hasattr(METRICS_GLOBALS, "_METER_PROVIDER") and "OTEL_PYTHON_METER_PROVIDER" not in os.environ
)


def global_tracer_provider() -> TracerProvider | None:
    """The global tracer provider if one is set, else None."""
    if FAST_TRACER_PROVIDER:
        provider: TracerProvider | None = _trace._TRACER_PROVIDER
        return provider
    return _trace.get_tracer_provider()


def global_meter_provider() -> MeterProvider | None:
    """The global meter provider if one is set, else None."""
    if FAST_METER_PROVIDER:
        provider: MeterProvider | None = METRICS_GLOBALS._METER_PROVIDER
        return provider
    return _metrics.get_meter_provider()


# --- providers, tracers and instruments (one of each per provider, made on first use) ----------


@attrs.frozen
class Instruments:
    duration: Histogram
    retries: Counter
    gate_wait: Histogram
    gauges: tuple[object, ...]


_TRACERS: dict[int, tuple[object, Tracer]] = {}
_INSTRUMENTS: dict[int, tuple[object, Instruments]] = {}
# The outbox's latest numbers per store, read by the observable gauges whenever a reader collects.
OUTBOX_STATS: dict[str, tuple[int, float | None]] = {}


def _per_provider(cache: dict[int, tuple[object, V]], provider: object, build: Callable[[], V]) -> V:
    """One value per provider (its tracer, its instruments), made on first use: keyed by id,
    checked by identity, and forgotten past 16 (providers come and go in tests; an application
    has one)."""
    found = cache.get(id(provider))
    if found is not None and found[0] is provider:
        return found[1]
    value = build()
    if len(cache) >= 16:
        cache.clear()
    cache[id(provider)] = (provider, value)
    return value


def tracer_for(explicit: TracerProvider | None) -> Tracer | None:
    """The SDK's tracer for this call, or None when nothing would record a span."""
    provider = global_tracer_provider() if explicit is None else explicit
    if provider is None or isinstance(provider, _NO_TRACING):
        return None
    return _per_provider(
        _TRACERS, provider, lambda: provider.get_tracer("pacspace", __version__, schema_url=SCHEMA_URL)
    )


def instruments_for(explicit: MeterProvider | None) -> Instruments | None:
    """The SDK's instruments, or None when no meter provider would record anything."""
    provider = global_meter_provider() if explicit is None else explicit
    if provider is None or isinstance(provider, _NO_METRICS):
        return None
    return _per_provider(_INSTRUMENTS, provider, lambda: _make_instruments(provider))


def _make_instruments(provider: MeterProvider) -> Instruments:
    meter = provider.get_meter("pacspace", __version__, schema_url=SCHEMA_URL)
    return Instruments(
        duration=meter.create_histogram(
            "http.client.request.duration",
            unit="s",
            description="Duration of HTTP client requests.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        ),
        retries=meter.create_counter(
            "pacspace.client.retries", unit="{retry}", description="Requests the SDK sent again, by reason."
        ),
        gate_wait=meter.create_histogram(
            "pacspace.client.gate.wait",
            unit="s",
            description="Time a request waited at the client's 429 gate before it was sent.",
            explicit_bucket_boundaries_advisory=GATE_BUCKETS,
        ),
        gauges=(
            meter.create_observable_gauge(
                "pacspace.outbox.depth",
                callbacks=[_observe_depth],
                unit="{entry}",
                description="Outbox entries waiting to be sent.",
            ),
            meter.create_observable_gauge(
                "pacspace.outbox.oldest_age",
                callbacks=[_observe_oldest_age],
                unit="s",
                description="Age of the oldest outbox entry waiting to be sent.",
            ),
        ),
    )


def _observe_depth(options: CallbackOptions) -> Iterable[Observation]:
    return [
        _metrics.Observation(pending, {"pacspace.outbox.store": store})
        for store, (pending, _) in list(OUTBOX_STATS.items())
    ]


def _observe_oldest_age(options: CallbackOptions) -> Iterable[Observation]:
    return [
        _metrics.Observation(age, {"pacspace.outbox.store": store})
        for store, (_, age) in list(OUTBOX_STATS.items())
        if age is not None
    ]


# --- small pure helpers -------------------------------------------------------------------------


def error_type(error: BaseException) -> str:
    """``error.type``: the server's error code, else the HTTP status, else the exception's class.

    >>> error_type(TimeoutError())
    'TimeoutError'
    """
    code = getattr(error, "code", None)
    if isinstance(code, str) and _CODE.fullmatch(code):
        return code
    status = getattr(error, "status", None)
    if isinstance(status, int) and not isinstance(status, bool):
        return str(status)
    return type(error).__qualname__


def safe_url(url: str) -> str:
    """`url` for ``url.full``: no userinfo, no fragment, and anything shaped like a key masked."""
    parsed = URL(url, encoded=True)
    if parsed.user is not None or parsed.password is not None:
        parsed = parsed.with_user(None)
    if parsed.fragment:
        parsed = parsed.with_fragment(None)
    return redact(str(parsed))


_SERVERS: dict[str, tuple[str, int]] = {}


def server_of(base_url: str) -> tuple[str, int]:
    """``server.address`` and ``server.port`` of a base URL (a handful per process: cached)."""
    found = _SERVERS.get(base_url)
    if found is None:
        parsed = URL(base_url, encoded=True)
        found = (parsed.host or "", parsed.port or (443 if parsed.scheme == "https" else 80))
        if len(_SERVERS) < 64:
            _SERVERS[base_url] = found
    return found


def trace_parent_of(context: SpanContext) -> str:
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def replayed_header(headers: Mapping[str, str] | None) -> bool | None:
    # The models read the same header; the layers keep this module from importing them.
    text = None if headers is None else headers.get("Idempotent-Replayed")
    said = None if text is None else text.strip().lower()
    return True if said == "true" else False if said == "false" else None


def retry_reason(retry: Retry, outcome: Outcome, timed_out: bool | None) -> str:
    if retry.kind is Wait.PENDING:
        return "pending"
    if retry.kind is Wait.GATE:
        return "429"
    if timed_out is not None:
        return "timeout" if timed_out else "connection"
    return str(outcome.status)
