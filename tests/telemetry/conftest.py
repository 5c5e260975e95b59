"""Fixtures of the telemetry tests: OpenTelemetry SDK providers with in-memory exporters.

No test sets OpenTelemetry's *global* providers (they can be set once per process): each test
gets its own providers, and the client under test is a copy whose settings name them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pacspace_async._telemetry_setup import OUTBOX_STATS
from pacspace_async.testing import Emulator

from .telemetry_helpers import Otel


@pytest.fixture
def otel() -> Iterator[Otel]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    yield Otel(exporter, reader, tracer_provider, meter_provider)
    tracer_provider.shutdown()
    meter_provider.shutdown()
    OUTBOX_STATS.clear()  # the gauges' latest values are the process's: none may reach the next test


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(verify_delay=None) as emulator:
        yield emulator
