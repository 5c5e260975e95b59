"""The rotation drill of `pacspace demo`: agents emit while the key file changes (a mistyped key,
then the new one), the client cuts over after a probe, the old key is revoked, no call fails."""

from __future__ import annotations

import io
import re
from collections import Counter

from pacspace_async._client import PROBE_PATH
from pacspace_async._demo import Screen, rotation_drill
from pacspace_async.testing import Emulator


async def test_the_drill_cuts_over_under_load_with_zero_failed_calls() -> None:
    out = io.StringIO()
    async with Emulator(verify_delay=None) as emu:
        outcome = await rotation_drill(Screen(out, plain=True), emu)
        requests = emu.requests
    text = out.getvalue()
    assert outcome.ok, text
    assert ", 0 failed;" in outcome.result
    emits = [r for r in requests if r.path != PROBE_PATH]
    assert all(r.status == 201 for r in emits)
    by_key = Counter(r.key_id for r in emits)
    assert len(by_key) == 2  # both keys carried traffic, and the counts are in the summary
    for key_id, count in by_key.items():
        assert f"{key_id}: {count}" in outcome.result
    new_id = list(by_key)[1]  # first seen first: the old key
    probes = [r.status for r in requests if r.path == PROBE_PATH]
    assert probes == [401, 200]  # the mistyped key, then the real one (both carry the new key's id)
    assert all(r.key_id == new_id for r in requests if r.path == PROBE_PATH)
    assert "probe refused (401 INVALID_API_KEY)" in text
    assert "operator told 1x (on_auth_error) and 1 warning logged" in text
    assert re.search(r"pk_(test|live)_\w+\.", text) is None  # keys are shown by id only, never a secret
