"""Seeded ids (``rec_1f0c...``, ``chk_...``, ``evt_...``): the same seed gives the same sequence."""

from __future__ import annotations

import random

__all__ = ["Ids"]


class Ids:
    """One seeded stream of ids, shared by everything an emulator makes, so a run is reproducible."""

    def __init__(self, seed: int) -> None:
        self._random = random.Random(f"pacspace-emulator-ids|{seed}")

    def new(self, prefix: str, bits: int = 64) -> str:
        return f"{prefix}_{self._random.getrandbits(bits):0{bits // 4}x}"
