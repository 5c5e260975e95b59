"""OpenTelemetry spans and metrics for every call: the API only, and nothing at all without it.

The ``[otel]`` extra installs ``opentelemetry-api``; the SDK and its exporters are the
application's. Three cases, checked in this order on every call:

- The API is not installed: `AVAILABLE` is False, the requester never calls in here (one flag it
  reads once, at import).
- The API is installed but no SDK is configured (the global providers are the API's proxies, or
  the no-op ones): `start_call` returns None after a few attribute reads, and the call runs as if
  this module did not exist (unless `send_traceparent` asks to pass on a caller's context).
- An SDK is configured: one span per call, ``pacspace {resource}.{method}`` (INTERNAL), with one
  child per HTTP attempt (CLIENT) named ``{METHOD} {route template}`` and carrying the HTTP
  client semantic-convention attributes; retry waits and 429-gate waits are events on the call
  span; ``http.client.request.duration``, a retry counter and a gate-wait histogram are recorded.

What never goes into telemetry: the API key (only its ``key_id``), the webhook secret, a body, a
header value other than the request id and the replay flag, userinfo of a URL. Server error
messages stay out too (they are body text): a failure is described by ``error.type`` alone.

Inside an attempt the OpenTelemetry context carries the shared "suppress HTTP instrumentation"
key, which aiohttp's own instrumentation honours: with it active, an attempt is not traced (or
timed) twice. The key is the API's own; this module never imports an instrumentation package.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import TYPE_CHECKING

from . import _telemetry_setup as _setup
from ._telemetry_routes import Route, route_of
from ._telemetry_setup import (
    AVAILABLE,
    Instruments,
    error_type,
    instruments_for,
    replayed_header,
    retry_reason,
    safe_url,
    server_of,
    trace_parent_of,
    tracer_for,
)

if TYPE_CHECKING:
    from contextvars import Token

    from opentelemetry.context import Context
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import Span, SpanContext, Tracer, TracerProvider

    from ._credentials import Credentials
    from ._environments import Environment
    from ._requester import Settings
    from ._retry import Outcome, Retry

if AVAILABLE:
    from opentelemetry import context as _context
    from opentelemetry import trace as _trace
    from opentelemetry.trace import Link, NonRecordingSpan, SpanKind, Status, StatusCode

__all__ = [
    "AVAILABLE",
    "CallTelemetry",
    "current_trace_parent",
    "error_type",
    "log_ids",
    "outbox_send_span",
    "metrics_enabled",
    "record_outbox_stats",
    "safe_url",
    "start_call",
]

_TRACE_PARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_NO_IDS = ("0", "0")


# --- one call ---------------------------------------------------------------------------------


def start_call(
    settings: Settings,
    method: str,
    path: str,
    base_url: str,
    url: str,
    environment: Environment,
    credentials: Credentials | None,
    idempotency_key: str | None,
) -> CallTelemetry | None:
    """The telemetry of one SDK call, or None when there is nothing to record or propagate.

    `credentials` is None for a call that sends no key (its span then names no key id).
    """
    if (  # the common case, no SDK configured, in attribute reads only
        _setup.FAST_TRACER_PROVIDER
        and _setup.FAST_METER_PROVIDER
        and _trace._TRACER_PROVIDER is None
        and _setup.METRICS_GLOBALS._METER_PROVIDER is None
        and settings.tracer_provider is None
        and settings.meter_provider is None
        and not settings.send_traceparent
    ):
        return None
    tracer = tracer_for(settings.tracer_provider)
    instruments = instruments_for(settings.meter_provider)
    propagate = settings.send_traceparent
    if (
        tracer is None
        and instruments is None
        and not (propagate and _trace.get_current_span().get_span_context().is_valid)
    ):
        return None
    key_id = None if credentials is None or tracer is None else credentials.key_id
    route = route_of(method, path)
    return CallTelemetry(
        tracer, instruments, propagate, method, route, base_url, url, environment, key_id, idempotency_key
    )


class CallTelemetry:
    """The spans and measurements of one call; the requester tells it what happens, in order.

    `begin_attempt` / `end_attempt` bracket each send; `gate_waited` and `retrying` note the
    waits between them; `end` closes the call (exactly once, also on cancellation).
    """

    __slots__ = (
        "_attempt",
        "_attempt_token",
        "_base",
        "_gate_wait",
        "_instruments",
        "_method",
        "_propagate",
        "_route",
        "_span",
        "_started",
        "_token",
        "_tracer",
        "_url",
    )

    def __init__(
        self,
        tracer: Tracer | None,
        instruments: Instruments | None,
        propagate: bool,
        method: str,
        route: Route,
        base_url: str,
        url: str,
        environment: Environment,
        key_id: str | None,
        idempotency_key: str | None,
    ) -> None:
        self._tracer = tracer
        self._instruments = instruments
        self._propagate = propagate
        self._method = method
        self._route = route
        self._url = url
        address, port = server_of(base_url)
        # What every attempt's span and measurement share (the semantic conventions' required set).
        self._base: dict[str, str | int] = {
            "http.request.method": method,
            "server.address": address,
            "server.port": port,
            "pacspace.environment": environment.value,
        }
        if route.template is not None:
            self._base["url.template"] = route.template
        self._gate_wait = 0.0
        self._started = 0.0
        self._attempt: Span | None = None
        self._attempt_token: Token[Context] | None = None
        self._span: Span | None = None
        self._token: Token[Context] | None = None
        if tracer is not None:
            attributes: dict[str, str] = {"pacspace.environment": environment.value}
            if key_id is not None:
                attributes["pacspace.key_id"] = key_id
            if idempotency_key is not None:
                attributes["pacspace.idempotency_key"] = idempotency_key
            span = tracer.start_span(f"pacspace {route.operation}", kind=SpanKind.INTERNAL, attributes=attributes)
            self._span = span
            self._token = _context.attach(_trace.set_span_in_context(span))

    def begin_attempt(self, resend_count: int, headers: MutableMapping[str, str]) -> None:
        """An attempt is about to be sent: its span becomes current, aiohttp's own is suppressed."""
        self._started = time.perf_counter()
        parent = _context.get_current()
        if self._tracer is not None:
            template = self._route.template
            attributes: dict[str, str | int] = dict(self._base)
            attributes["url.full"] = safe_url(self._url)
            if resend_count:
                attributes["http.request.resend_count"] = resend_count
            span = self._tracer.start_span(
                f"{self._method} {template}" if template else self._method,
                kind=SpanKind.CLIENT,
                attributes=attributes,
            )
            self._attempt = span
            parent = _trace.set_span_in_context(span, parent)
        self._attempt_token = _context.attach(_context.set_value(_setup.SUPPRESS_HTTP, True, parent))
        if self._propagate:
            current = _trace.get_current_span().get_span_context()
            if current.is_valid:
                headers["traceparent"] = trace_parent_of(current)

    def end_attempt(
        self,
        status: int | None,
        request_id: str | None,
        answer_headers: Mapping[str, str] | None,
        error: BaseException | None,
    ) -> None:
        """The attempt got `status` (None: no answer); `error` is what it would raise as the last."""
        elapsed = time.perf_counter() - self._started
        token, self._attempt_token = self._attempt_token, None
        if token is not None:
            _context.detach(token)
        failed = error is not None and (status is None or status >= 400)
        kind = error_type(error) if failed and error is not None else None
        span, self._attempt = self._attempt, None
        if span is not None:
            if status is not None:
                span.set_attribute("http.response.status_code", status)
            _answered(span, request_id, answer_headers)
            if kind is not None:
                _failed(span, kind)
            span.end()
        if self._instruments is not None:
            attributes = dict(self._base)
            if status is not None:
                attributes["http.response.status_code"] = status
            if kind is not None:
                attributes["error.type"] = kind
            self._instruments.duration.record(elapsed, attributes)

    def gate_waited(self, seconds: float) -> None:
        """The call waited `seconds` at the 429 gate before its next attempt."""
        if seconds <= 0:
            return
        self._gate_wait += seconds
        if self._span is not None:
            self._span.add_event("pacspace.gate.wait", {"pacspace.gate.wait": seconds})
        if self._instruments is not None:
            self._instruments.gate_wait.record(seconds, {"pacspace.environment": self._base["pacspace.environment"]})

    def retrying(self, retry: Retry, outcome: Outcome, timed_out: bool | None, resend_count: int) -> None:
        """The call will send again (attempt number `resend_count`) after `retry.wait` seconds.

        `timed_out` is None when the attempt got an answer, else whether it timed out.
        """
        reason = retry_reason(retry, outcome, timed_out)
        if self._span is not None:
            self._span.add_event(
                "pacspace.retry",
                {
                    "pacspace.retry.reason": reason,
                    "pacspace.retry.wait": retry.wait,
                    "http.request.resend_count": resend_count,
                },
            )
        if self._instruments is not None:
            attributes = dict(self._base)
            attributes["pacspace.retry.reason"] = reason
            self._instruments.retries.add(1, attributes)

    def end(
        self,
        error: BaseException | None,
        retries: int,
        request_id: str | None = None,
        answer_headers: Mapping[str, str] | None = None,
    ) -> None:
        """The call returns (`error` None) or raises `error`; closes whatever is still open."""
        if self._attempt_token is not None or self._attempt is not None:  # cancelled mid-send
            self.end_attempt(None, None, None, error)
        span, self._span = self._span, None
        if span is not None:
            if retries:
                span.set_attribute("pacspace.retries", retries)
            if self._gate_wait:
                span.set_attribute("pacspace.gate.wait", self._gate_wait)
            _answered(span, request_id, answer_headers)
            if error is not None:
                _failed(span, error_type(error))
                action = getattr(error, "action", None)
                if action is not None:
                    span.set_attribute("pacspace.error.action", str(getattr(action, "value", action)))
            span.end()
        token, self._token = self._token, None
        if token is not None:
            _context.detach(token)


# --- log correlation and the outbox's helpers ----------------------------------------------------


def _answered(span: Span, request_id: str | None, answer_headers: Mapping[str, str] | None) -> None:
    """What the server said of a call or an attempt: its request id and whether it replayed."""
    if request_id is not None:
        span.set_attribute("pacspace.request_id", request_id)
    replayed = replayed_header(answer_headers)
    if replayed is not None:
        span.set_attribute("pacspace.replayed", replayed)


def _failed(span: Span, kind: str) -> None:
    """A failed span: `error.type` and an error status, with no message (it is the server's text)."""
    span.set_attribute("error.type", kind)
    span.set_status(Status(StatusCode.ERROR, kind))


def log_ids() -> tuple[str, str]:
    """The current span's trace and span ids in hex, or ``("0", "0")`` (also without the API)."""
    if not AVAILABLE:
        return _NO_IDS
    context = _trace.get_current_span().get_span_context()
    if not context.is_valid:
        return _NO_IDS
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


def current_trace_parent() -> str | None:
    """The W3C ``traceparent`` of the current span if it is recording, else None.

    For the outbox: called when an entry is enqueued, its result stored with the entry, so that
    the send (maybe in another process, hours later) can link back to the enqueuing span with
    `outbox_send_span`. None without the API, without an SDK, or outside a recording span.
    """
    if not AVAILABLE:
        return None
    span = _trace.get_current_span()
    if not span.is_recording():
        return None
    context = span.get_span_context()
    return trace_parent_of(context) if context.is_valid else None


def _parse_trace_parent(trace_parent: str | None) -> SpanContext | None:
    if not trace_parent:
        return None
    match = _TRACE_PARENT.fullmatch(trace_parent.strip())
    if match is None:
        return None
    trace_id, span_id, flags = (int(group, 16) for group in match.groups())
    if not trace_id or not span_id:
        return None
    return _trace.SpanContext(trace_id, span_id, is_remote=True, trace_flags=_trace.TraceFlags(flags))


@contextmanager
def outbox_send_span(trace_parent: str | None, *, tracer_provider: TracerProvider | None = None) -> Iterator[None]:
    """Wrap one outbox send: a ``pacspace outbox.send`` span that links to the enqueuing span.

    `trace_parent` is what `current_trace_parent` returned at enqueue (None, or a value that is
    not a valid ``traceparent``: no link). The span is a root of its own trace — a drain runs
    long after, maybe in another process, so the enqueuer is a link, not a parent — and is
    current inside the block, so the send's own call span is its child. `tracer_provider`
    defaults to the global one. Without the API or an SDK it does nothing.
    """
    tracer = tracer_for(tracer_provider) if AVAILABLE else None
    if tracer is None:
        yield
        return
    linked = _parse_trace_parent(trace_parent)
    links = [Link(linked)] if linked is not None else None
    root = _trace.set_span_in_context(NonRecordingSpan(_trace.INVALID_SPAN_CONTEXT))
    span = tracer.start_span("pacspace outbox.send", context=root, kind=SpanKind.INTERNAL, links=links)
    token = _context.attach(_trace.set_span_in_context(span))
    try:
        yield
    except BaseException as error:
        _failed(span, error_type(error))
        raise
    finally:
        _context.detach(token)
        span.end()


def metrics_enabled(meter_provider: MeterProvider | None = None) -> bool:
    """Whether anything would record a metric: the outbox counts its entries only then."""
    return AVAILABLE and instruments_for(meter_provider) is not None


def record_outbox_stats(
    *, store: str, pending: int, oldest_age: float | None, meter_provider: MeterProvider | None = None
) -> None:
    """Publish an outbox's latest depth and oldest pending age (seconds; None: nothing pending).

    The drain calls it whenever it learns them; the observable gauges ``pacspace.outbox.depth``
    and ``pacspace.outbox.oldest_age`` report the latest values per `store` each time a reader
    collects. `store` names the kind of store (``"sqlite"``, ``"postgres"``, ``"memory"``): it
    becomes the ``pacspace.outbox.store`` attribute, so a URL is cut to its scheme (a store
    URL may hold a password). `meter_provider` defaults to the global one. Without the API it
    does nothing.
    """
    if not AVAILABLE:
        return
    label = store.split("://", 1)[0] if "://" in store else store
    _setup.OUTBOX_STATS[label] = (pending, oldest_age)
    instruments_for(meter_provider)  # the gauges exist from the first report on
