"""The three helpers the outbox uses: the enqueuer's traceparent, the send span, the gauges."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.trace import StatusCode

from pacspace_async import NotFoundError
from pacspace_async._telemetry import current_trace_parent, outbox_send_span, record_outbox_stats

from .telemetry_helpers import Otel


def test_current_trace_parent_is_the_recording_span_else_none(otel: Otel) -> None:
    assert current_trace_parent() is None  # no span at all
    tracer = otel.tracer_provider.get_tracer("agent")
    with tracer.start_as_current_span("enqueue") as span:
        context = span.get_span_context()
        expected = f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"
        assert current_trace_parent() == expected
    remote = trace.SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=trace.TraceFlags(1))
    with trace.use_span(trace.NonRecordingSpan(remote)):
        assert current_trace_parent() is None  # not recording: nothing of ours to link to


def test_the_send_span_links_to_the_enqueuing_span_and_parents_the_call(otel: Otel) -> None:
    tracer = otel.tracer_provider.get_tracer("agent")
    with tracer.start_as_current_span("enqueue") as enqueue:
        stored = current_trace_parent()
    with (
        tracer.start_as_current_span("drain loop"),
        outbox_send_span(stored, tracer_provider=otel.tracer_provider),
        tracer.start_as_current_span("the send's call"),
    ):
        pass
    (send,) = otel.named("pacspace outbox.send")
    assert send.parent is None  # a root: the drain runs long after, maybe elsewhere
    (link,) = send.links
    assert link.context.trace_id == enqueue.get_span_context().trace_id
    assert link.context.span_id == enqueue.get_span_context().span_id
    (inner,) = otel.named("the send's call")
    assert inner.parent is not None
    assert inner.parent.span_id == send.context.span_id


def test_the_send_span_without_a_link_and_on_failure(otel: Otel) -> None:
    for stored in (None, "", "garbage", "00-" + "0" * 32 + "-" + "1" * 16 + "-01"):
        with outbox_send_span(stored, tracer_provider=otel.tracer_provider):
            pass
    assert [len(span.links) for span in otel.named("pacspace outbox.send")] == [0, 0, 0, 0]
    try:
        with outbox_send_span(None, tracer_provider=otel.tracer_provider):
            raise NotFoundError("gone", status=404, code="NOT_FOUND", method="POST", path="/x", body={})
    except NotFoundError:
        pass
    failed = otel.named("pacspace outbox.send")[-1]
    assert failed.status.status_code is StatusCode.ERROR
    assert (failed.attributes or {})["error.type"] == "NOT_FOUND"
    assert not failed.events  # no exception event: its message is the server's text


def test_record_outbox_stats_feeds_the_gauges(otel: Otel) -> None:
    record_outbox_stats(store="sqlite", pending=3, oldest_age=12.5, meter_provider=otel.meter_provider)
    record_outbox_stats(store="sqlite", pending=2, oldest_age=4.0, meter_provider=otel.meter_provider)
    record_outbox_stats(
        store="postgresql://app:PASSWORD@db/outbox", pending=0, oldest_age=None, meter_provider=otel.meter_provider
    )
    depth = {p.attributes["pacspace.outbox.store"]: p.value for p in otel.points("pacspace.outbox.depth")}
    assert depth == {"sqlite": 2, "postgresql": 0}
    age = {p.attributes["pacspace.outbox.store"]: p.value for p in otel.points("pacspace.outbox.oldest_age")}
    assert age == {"sqlite": 4.0}  # nothing pending in postgres: no age to report
