"""pytest fixtures to test your own agent against the PacSpace emulator, with no network.

Installed with ``pacspace`` (entry point ``pytest11``), so the fixtures are just there:

- ``pacspace_emulator``: a running `Emulator` on the test's event loop (async tests).
- ``pacspace_client``: an `AsyncPacSpace` with a new sandbox key, pointed at it; closed after.
- ``pacspace_emulator_thread``: a running `Emulator` on its own thread (sync tests).
- ``pacspace_sync_client``: a ``pacspace_sync.PacSpace`` pointed at that one; closed after.
- ``pacspace_emulator_options``: the keyword arguments given to `Emulator`; override it, or
  mark a test with ``@pytest.mark.pacspace_emulator(verify_delay=0, faults=Faults(rate=0.2))``.

Async fixtures need pytest-asyncio (``pip install 'pacspace[emulator]' pytest-asyncio``).

>>> async def test_my_agent_bills_once(pacspace_client, pacspace_emulator):
...     await my_agent.run(pacspace_client)
...     assert len(pacspace_emulator.deltas(customer_id="cust_1")) == 1
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar, cast

import pytest

if TYPE_CHECKING:  # the fixtures import what they need when they run
    from .._client import AsyncPacSpace
    from ._emulator import Emulator

__all__ = [
    "pacspace_client",
    "pacspace_emulator",
    "pacspace_emulator_options",
    "pacspace_emulator_thread",
    "pacspace_sync_client",
]

F = TypeVar("F", bound=Callable[..., Any])

try:  # strict mode needs pytest_asyncio.fixture; auto mode accepts it too
    _ASYNC_FIXTURE: Any = importlib.import_module("pytest_asyncio").fixture
except ImportError:  # pragma: no cover - without pytest-asyncio, async fixtures cannot run at all
    _ASYNC_FIXTURE = pytest.fixture


def _async_fixture(function: F) -> F:
    return cast(F, _ASYNC_FIXTURE(function))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "pacspace_emulator(**options): keyword arguments for the Emulator of the pacspace_* fixtures",
    )


@pytest.fixture
def pacspace_emulator_options(request: pytest.FixtureRequest) -> dict[str, Any]:
    """`Emulator` keyword arguments: those of the closest ``pacspace_emulator`` mark, if any."""
    marker = request.node.get_closest_marker("pacspace_emulator")
    return dict(marker.kwargs) if marker is not None else {}


@_async_fixture
async def pacspace_emulator(pacspace_emulator_options: dict[str, Any]) -> AsyncIterator[Emulator]:
    """A running emulator, served from the test's own event loop."""
    from ._emulator import Emulator

    async with Emulator(**pacspace_emulator_options) as emulator:
        yield emulator


@_async_fixture
async def pacspace_client(pacspace_emulator: Emulator) -> AsyncIterator[AsyncPacSpace]:
    """An `AsyncPacSpace` with a new sandbox key (all permissions), pointed at the emulator."""
    async with pacspace_emulator.client("sandbox") as client:
        yield client


@pytest.fixture
def pacspace_emulator_thread(pacspace_emulator_options: dict[str, Any]) -> Iterator[Emulator]:
    """A running emulator on its own thread and event loop, for tests that are not async."""
    from ._emulator import Emulator

    emulator = Emulator(**pacspace_emulator_options).start_in_thread()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def pacspace_sync_client(pacspace_emulator_thread: Emulator) -> Iterator[Any]:
    """A blocking ``pacspace_sync.PacSpace`` with a new sandbox key, pointed at the emulator."""
    try:
        sync_client = importlib.import_module("pacspace_sync").PacSpace
    except (ImportError, AttributeError):
        pytest.skip("pacspace_sync.PacSpace is not available in this installation yet")
    key = pacspace_emulator_thread.create_key("sandbox")
    client = sync_client(key, base_urls=pacspace_emulator_thread.base_urls)
    try:
        yield client
    finally:
        client.close()
