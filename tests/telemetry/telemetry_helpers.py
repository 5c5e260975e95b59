"""Helpers of the telemetry tests (a module of its own: `conftest` names clash across folders)."""

from __future__ import annotations

from typing import Any

import attrs
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pacspace_async import AsyncPacSpace


@attrs.define
class Otel:
    """One test's tracer and meter providers, and what they recorded."""

    exporter: InMemorySpanExporter
    reader: InMemoryMetricReader
    tracer_provider: TracerProvider
    meter_provider: MeterProvider

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def named(self, name: str) -> list[ReadableSpan]:
        return [span for span in self.spans() if span.name == name]

    def children(self, parent: ReadableSpan) -> list[ReadableSpan]:
        """`parent`'s direct children, in the order they started."""
        found = [s for s in self.spans() if s.parent is not None and s.parent.span_id == parent.context.span_id]
        return sorted(found, key=lambda span: span.start_time or 0)

    def points(self, name: str) -> list[Any]:
        """Every data point of the metric `name` (histogram or sum or gauge points)."""
        data = self.reader.get_metrics_data()
        found: list[Any] = []
        for resource in data.resource_metrics if data is not None else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        found.extend(metric.data.data_points)
        return found

    def counts_by_scope(self) -> dict[str, int]:
        """How many measurements each instrumentation scope's histograms hold, all metrics summed."""
        data = self.reader.get_metrics_data()
        counts: dict[str, int] = {}
        for resource in data.resource_metrics if data is not None else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    for point in metric.data.data_points:
                        if hasattr(point, "bucket_counts"):
                            counts[scope.scope.name] = counts.get(scope.scope.name, 0) + point.count
        return counts

    def traced(self, client: AsyncPacSpace, **settings: Any) -> AsyncPacSpace:
        """A copy of `client` (same pools and key) whose spans and metrics go to these providers."""
        requester = client._requester.with_settings(
            tracer_provider=self.tracer_provider, meter_provider=self.meter_provider, **settings
        )
        return client._copy(requester, None)
