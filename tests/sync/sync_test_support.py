"""The shared test helpers of ``tests/conftest.py``, imported by path.

``from conftest import ...`` resolves to whichever conftest module pytest imported last, and
other test folders have their own; loading the file under its own name keeps these tests immune.
The fixtures themselves (``loopback``) still come from pytest's own loading of that conftest.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

_NAME = "pacspace_tests_shared_conftest"
_PATH = Path(__file__).resolve().parents[1] / "conftest.py"


def _load() -> ModuleType:
    module = sys.modules.get(_NAME)
    if module is None:
        spec = importlib.util.spec_from_file_location(_NAME, _PATH)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[_NAME] = module
        spec.loader.exec_module(module)
    return module


_shared = _load()
SANDBOX_KEY: str = _shared.SANDBOX_KEY
SECRETS: tuple[str, ...] = _shared.SECRETS
LoopbackServer = _shared.LoopbackServer
ok = _shared.ok
delta_record = _shared.delta_record

__all__ = ["SANDBOX_KEY", "SECRETS", "LoopbackServer", "delta_record", "ok"]
