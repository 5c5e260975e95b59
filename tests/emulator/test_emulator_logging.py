"""The emulator never prints a request header's value, even for a request it cannot parse."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap

import aiohttp
import pytest

from pacspace_async.testing import Emulator

MARKER = "MARKERsecretNEVERprinted"
OVERSIZED_KEY = "pk_test_emuLong." + MARKER * 500  # ~12 KB: past aiohttp's 8190-byte header limit


async def test_an_oversized_header_is_answered_4xx_and_logged_without_its_value(
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)  # the root logger: every logger's records reach caplog
    async with Emulator() as emu, aiohttp.ClientSession() as session:
        url = emu.sandbox_url + "/api/v1/balance/usage"
        async with session.get(url, headers={"X-Api-Key": OVERSIZED_KEY}) as response:
            status = response.status
    assert 400 <= status < 500
    records = [(record.name, record.getMessage(), record.exc_text or "") for record in caplog.records]
    assert any("LineTooLong" in message for _, message, _ in records), records  # the refusal is still reported
    assert MARKER not in repr(records)
    for record in caplog.records:
        if isinstance(record.exc_info, tuple):
            assert MARKER not in str(record.exc_info[1])
    out, err = capfd.readouterr()
    assert MARKER not in out + err


def test_the_emulator_prints_no_header_value_to_stderr_with_no_logging_configured() -> None:
    # No handler anywhere: Python's last-resort handler writes warnings and errors to stderr,
    # which is what `pacspace emulator` in a terminal shows.
    script = textwrap.dedent(
        f"""
        import asyncio, aiohttp
        from pacspace_async.testing import Emulator

        async def main():
            async with Emulator() as emu, aiohttp.ClientSession() as session:
                url = emu.sandbox_url + "/api/v1/balance/usage"
                async with session.get(url, headers={{"X-Api-Key": {OVERSIZED_KEY!r}}}) as response:
                    print(response.status)

        asyncio.run(main())
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "400"
    assert "LineTooLong" in done.stderr
    assert MARKER not in done.stderr
