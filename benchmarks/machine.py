"""What the numbers were measured on."""

from __future__ import annotations

import os
import platform
import ssl
import sys
from importlib import metadata
from typing import Any

__all__ = ["describe_machine"]

PACKAGES = (
    "pacspace",
    "aiohttp",
    "yarl",
    "multidict",
    "attrs",
    "cattrs",
    "anyio",
    "pacspace-sdk",
    "requests",
    "urllib3",
    "trustme",
    "uvloop",
)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _cpu_mhz() -> str | None:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("cpu MHz"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def describe_machine() -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpu_model": _cpu_model(),
        "cpu_mhz": _cpu_mhz(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": affinity,
        "memory_gib": _memory_gib(),
        "os": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "python_build": sys.version.replace("\n", " "),
        "openssl": ssl.OPENSSL_VERSION,
        "event_loop": "asyncio (default selector loop; uvloop not used)",
        "packages": versions,
    }
