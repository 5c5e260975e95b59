"""Verified key rotation: `rotate_key(new, verify=True)` and `KeyProvider.from_file(verify=True)`.

A new key is sent once, on a cheap read, before the client cuts over to it; a refused key leaves
the old one in use. Everything runs against the emulator over real sockets.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from pacspace_async import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AsyncPacSpace,
    AuthenticationError,
    Environment,
    EnvironmentMismatchError,
    KeyProvider,
    PermissionDeniedError,
)
from pacspace_async.testing import Emulator

PROBE = "/api/v1/balance/usage"
EMIT: dict[str, Any] = {"customer_id": "cust_rot", "delta": Decimal("-1"), "reason": "usage"}


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(verify_delay=None) as emulator:
        yield emulator


def key_id(key: str) -> str:
    return key.split(".", 1)[0]


def secret(key: str) -> str:
    return key.split(".", 1)[1]


def sent_with(emu: Emulator, key: str, path: str | None = None) -> list[int | None]:
    """The statuses of the requests the emulator received with `key` (on `path`)."""
    return [r.status for r in emu.requests if r.key_id == key_id(key) and (path is None or r.path == path)]


class KeyFile:
    """A key file whose every write is seen as a change (mtime moved on by a whole second)."""

    def __init__(self, path: Path, key: str) -> None:
        self.path = path
        self.tick = 0
        self.write(key)

    def write(self, text: str) -> None:
        self.path.write_text(text + "\n")
        self.tick += 1
        stamp = 1_700_000_000_000_000_000 + self.tick * 1_000_000_000
        os.utime(self.path, ns=(stamp, stamp))


# --- rotate_key(verify=True) ------------------------------------------------------------------


async def test_an_accepted_key_is_probed_once_then_used(emu: Emulator) -> None:
    old, new = emu.create_key(), emu.create_key()
    async with AsyncPacSpace(old, base_urls=emu.base_urls) as pac:
        await pac.balance.emit(**EMIT)
        await pac.rotate_key(new, verify=True)
        assert pac.key_id == key_id(new)
        await pac.balance.emit(**EMIT)
    log = [(r.key_id, r.method, r.path, r.status) for r in emu.requests]
    assert log == [
        (key_id(old), "POST", "/api/v1/balance/delta", 201),
        (key_id(new), "GET", PROBE, 200),
        (key_id(new), "POST", "/api/v1/balance/delta", 201),
    ]


@pytest.mark.parametrize("refusal", ["revoked", "unknown secret", "no permission"])
async def test_a_refused_key_raises_with_its_id_and_the_old_key_stays(emu: Emulator, refusal: str) -> None:
    old = emu.create_key()
    if refusal == "revoked":
        new = emu.create_key()
        emu.revoke_key(new)
    elif refusal == "unknown secret":  # a typo in the secret half
        new = emu.create_key()[:-3] + "xyz"
    else:
        new = emu.create_key(permissions={"balance:write"})
    expected: type[APIStatusError] = PermissionDeniedError if refusal == "no permission" else AuthenticationError
    hooked: list[APIStatusError] = []
    async with AsyncPacSpace(old, base_urls=emu.base_urls, on_auth_error=hooked.append) as pac:
        with pytest.raises(expected) as info:
            await pac.rotate_key(new, verify=True)
        assert pac.key_id == key_id(old)
        await pac.balance.emit(**EMIT)
    error = info.value
    assert error.key_id == key_id(new)
    assert f"PacSpace refused the key {key_id(new)}" in str(error)
    assert f"{key_id(old)} stays in use" in str(error)
    assert error.request_id is not None
    assert error.path == PROBE
    assert secret(new) not in str(error) + repr(error.body) + repr(error.__context__)
    assert hooked == []  # the caller holds the error; the hook is for refusals nobody else sees
    assert sent_with(emu, new) == [error.status]  # one probe, never retried
    assert sent_with(emu, old) == [201]


async def test_a_key_of_the_other_environment_is_refused_before_anything_is_sent(emu: Emulator) -> None:
    old, production = emu.create_key(), emu.create_key(Environment.PRODUCTION)
    async with AsyncPacSpace(old, base_urls=emu.base_urls) as pac:
        with pytest.raises(EnvironmentMismatchError, match="stays in use"):
            await pac.rotate_key(production, verify=True)
        assert pac.key_id == key_id(old)
    assert emu.requests == []


async def test_an_unreachable_api_is_a_connection_error_and_the_old_key_stays(emu: Emulator) -> None:
    old, new = emu.create_key(), emu.create_key()
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()  # nothing listens there now
    async with AsyncPacSpace(old, base_urls={"sandbox": f"http://127.0.0.1:{port}"}) as pac:
        with pytest.raises(APIConnectionError) as info:
            await pac.rotate_key(new, verify=True)
        assert pac.key_id == key_id(old)
    assert info.value.retries_taken == 0
    assert secret(new) not in str(info.value)


async def test_the_probe_keeps_to_the_clients_timeout_and_is_sent_once() -> None:
    connections = 0
    hold = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await hold.wait()  # never answers
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        async with AsyncPacSpace("pk_test_old.oldSECRET", base_urls={"sandbox": url}, timeout=0.2) as pac:
            with pytest.raises(APITimeoutError):
                await pac.rotate_key("pk_test_new.newSECRET", verify=True)
            assert pac.key_id == "pk_test_old"
    finally:
        hold.set()
        server.close()
        await server.wait_closed()
    assert connections == 1


async def test_requests_during_the_probe_keep_the_old_key(emu: Emulator) -> None:
    old, new = emu.create_key(), emu.create_key()
    emu.inject("slow", path=PROBE, seconds=0.3)
    async with AsyncPacSpace(old, base_urls=emu.base_urls) as pac:
        rotation = asyncio.ensure_future(pac.rotate_key(new, verify=True))
        while not sent_with(emu, new) and not rotation.done():
            await pac.balance.emit(**EMIT)  # sent while the probe waits
        await rotation
        await pac.balance.emit(**EMIT)
    assert sent_with(emu, old, "/api/v1/balance/delta")
    assert all(s == 201 for s in sent_with(emu, old))
    assert sent_with(emu, new) == [200, 201]


async def test_verify_false_stays_the_plain_swap(emu: Emulator) -> None:
    old, new = emu.create_key(), emu.create_key()
    emu.revoke_key(new)
    async with AsyncPacSpace(old, base_urls=emu.base_urls) as pac:
        await pac.rotate_key(new)
        assert pac.key_id == key_id(new)
    assert emu.requests == []


async def test_verify_must_be_a_bool(emu: Emulator) -> None:
    async with AsyncPacSpace(emu.create_key(), base_urls=emu.base_urls) as pac:
        with pytest.raises(ValueError, match="verify must be True or False"):
            await pac.rotate_key(emu.create_key(), verify="yes")  # type: ignore[arg-type]


# --- KeyProvider.from_file(verify=True) -------------------------------------------------------


async def test_a_refused_file_key_keeps_the_old_one_and_is_told_once_then_a_good_file_is_used(
    emu: Emulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="pacspace")
    old, revoked, good = emu.create_key(), emu.create_key(), emu.create_key()
    emu.revoke_key(revoked)
    file = KeyFile(tmp_path / "key", old)
    hooked: list[APIStatusError] = []
    provider = KeyProvider.from_file(file.path, check_interval=0.0, verify=True)
    async with AsyncPacSpace(provider, base_urls=emu.base_urls, on_auth_error=hooked.append) as pac:
        await pac.balance.emit(**EMIT)
        file.write(revoked)
        for _ in range(3):
            await pac.balance.emit(**EMIT)
        assert pac.key_id == key_id(old)
        assert [type(e) for e in hooked] == [AuthenticationError]
        assert hooked[0].key_id == key_id(revoked)
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1
        assert key_id(revoked) in warnings[0]
        assert f"still using {key_id(old)}" in warnings[0]

        file.write(good)
        await pac.balance.emit(**EMIT)
        assert pac.key_id == key_id(good)
        emu.revoke_key(old)  # the last step of a rotation: nothing fails
        await pac.balance.emit(**EMIT)
    assert sent_with(emu, old) == [201] * 4
    assert sent_with(emu, revoked) == [401]  # one probe; the refused key never carried traffic
    assert sent_with(emu, good) == [200, 201, 201]
    assert len(hooked) == 1
    logged = caplog.text + "".join(str(e) for e in hooked)
    assert not any(secret(k) in logged for k in (old, revoked, good))


async def test_the_same_refused_key_written_again_is_probed_again_but_told_once(
    emu: Emulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="pacspace")
    old, pending = emu.create_key(), emu.create_key(permissions={"balance:write"})
    file = KeyFile(tmp_path / "key", old)
    hooked: list[APIStatusError] = []
    provider = KeyProvider.from_file(file.path, check_interval=0.0, verify=True)
    async with AsyncPacSpace(provider, base_urls=emu.base_urls, on_auth_error=hooked.append) as pac:
        file.write(pending)
        await pac.balance.emit(**EMIT)
        file.write(pending)  # written again (a touch): checked again, not told again
        await pac.balance.emit(**EMIT)
        assert pac.key_id == key_id(old)
    assert sent_with(emu, pending) == [403, 403]
    assert [type(e) for e in hooked] == [PermissionDeniedError]
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1


@pytest.mark.parametrize("content", ["production key", "not a key"])
async def test_a_file_key_that_cannot_be_used_is_refused_without_a_request(
    emu: Emulator, tmp_path: Path, caplog: pytest.LogCaptureFixture, content: str
) -> None:
    caplog.set_level(logging.WARNING, logger="pacspace")
    old = emu.create_key()
    file = KeyFile(tmp_path / "key", old)
    provider = KeyProvider.from_file(file.path, check_interval=0.0, verify=True)
    async with AsyncPacSpace(provider, base_urls=emu.base_urls) as pac:
        file.write(emu.create_key(Environment.PRODUCTION) if content == "production key" else "pk_test_half")
        await pac.balance.emit(**EMIT)
        await pac.balance.emit(**EMIT)
        assert pac.key_id == key_id(old)
    assert [r.key_id for r in emu.requests] == [key_id(old)] * 2
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert f"still using {key_id(old)}" in warnings[0]


async def test_a_file_key_that_could_not_be_checked_is_checked_again(emu: Emulator, tmp_path: Path) -> None:
    old, new = emu.create_key(), emu.create_key()
    file = KeyFile(tmp_path / "key", old)
    provider = KeyProvider.from_file(file.path, check_interval=0.0, verify=True)
    hooked: list[APIStatusError] = []
    async with AsyncPacSpace(provider, base_urls=emu.base_urls, on_auth_error=hooked.append) as pac:
        emu.inject("503", path=PROBE)
        file.write(new)
        await pac.balance.emit(**EMIT)
        assert pac.key_id == key_id(old)
        await pac.balance.emit(**EMIT)
        assert pac.key_id == key_id(new)
    assert sent_with(emu, new) == [503, 200, 201]
    assert hooked == []


async def test_a_401_on_the_old_key_makes_the_file_key_be_checked(emu: Emulator, tmp_path: Path) -> None:
    # The operator revoked the old key before the file change was noticed (a long interval).
    old, new = emu.create_key(), emu.create_key()
    file = KeyFile(tmp_path / "key", old)
    provider = KeyProvider.from_file(file.path, check_interval=3600.0, verify=True)
    async with AsyncPacSpace(provider, base_urls=emu.base_urls) as pac:
        await pac.balance.emit(**EMIT)
        file.write(new)
        emu.revoke_key(old)
        with pytest.raises(AuthenticationError):
            await pac.balance.emit(**EMIT)
        await pac.balance.emit(**EMIT)
        assert pac.key_id == key_id(new)
    assert sent_with(emu, new) == [200, 201]


async def test_verify_false_providers_behave_as_before(emu: Emulator, tmp_path: Path) -> None:
    old, revoked = emu.create_key(), emu.create_key()
    emu.revoke_key(revoked)
    file = KeyFile(tmp_path / "key", old)
    async with AsyncPacSpace(KeyProvider.from_file(file.path, check_interval=0.0), base_urls=emu.base_urls) as pac:
        file.write(revoked)
        with pytest.raises(AuthenticationError):
            await pac.balance.emit(**EMIT)
    assert PROBE not in [r.path for r in emu.requests]


def test_the_sync_client_uses_a_verifying_file_provider(tmp_path: Path) -> None:
    from pacspace_sync import KeyProvider as SyncKeyProvider
    from pacspace_sync import PacSpace

    assert SyncKeyProvider is KeyProvider
    with Emulator(verify_delay=None) as emu:
        old, revoked, good = emu.create_key(), emu.create_key(), emu.create_key()
        emu.revoke_key(revoked)
        file = KeyFile(tmp_path / "key", old)
        provider = SyncKeyProvider.from_file(file.path, check_interval=0.0, verify=True)
        hooked: list[APIStatusError] = []
        with PacSpace(provider, base_urls=emu.base_urls, on_auth_error=hooked.append) as pac:
            file.write(revoked)
            pac.balance.emit(**EMIT)
            assert pac.key_id == key_id(old)
            file.write(good)
            pac.balance.emit(**EMIT)
            assert pac.key_id == key_id(good)
        assert len(hooked) == 1
        assert sent_with(emu, revoked) == [401]


async def test_a_vanished_key_file_keeps_the_key_in_use(
    emu: Emulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A secret store that deletes and rewrites the file, observed in between.
    caplog.set_level(logging.WARNING, logger="pacspace")
    old, new = emu.create_key(), emu.create_key()
    file = KeyFile(tmp_path / "key", old)
    provider = KeyProvider.from_file(file.path, check_interval=0.0, verify=True)
    async with AsyncPacSpace(provider, base_urls=emu.base_urls) as pac:
        file.path.unlink()
        await pac.balance.emit(**EMIT)
        await pac.balance.emit(**EMIT)
        assert pac.key_id == key_id(old)
        file.write(new)
        await pac.balance.emit(**EMIT)
        assert pac.key_id == key_id(new)
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
