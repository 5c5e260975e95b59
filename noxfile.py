"""Project tasks. `nox` alone runs what CI runs: both test sessions, lint and typecheck."""

from __future__ import annotations

import glob
import os
import subprocess
import sys

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["tests", "tests_latest_aiohttp", "tests_other_pythons", "lint", "typecheck"]

PACKAGES = ["pacspace_async", "pacspace_sync"]


def _other_pythons() -> list[str]:
    """The oldest supported (>= 3.10) and the newest released Python on this machine, besides nox's own.

    Found on PATH and among pyenv's installs; each is asked its version (a pyenv shim of a
    version that is not active fails and is skipped). None found: the session is skipped.
    """
    pyenv = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    candidates = [f"python3.{minor}" for minor in range(10, 20)]
    candidates += sorted(glob.glob(os.path.join(pyenv, "versions", "3.*", "bin", "python3")))
    found: dict[tuple[int, int], str] = {}
    for candidate in candidates:
        try:
            answer = subprocess.run(
                [candidate, "-c", "import sys; print(*sys.version_info[:2], sys.version_info.releaselevel)"],
                capture_output=True,
                text=True,
                timeout=5,
                check=True,
            )
            major_text, minor_text, level = answer.stdout.split()
            version = (int(major_text), int(minor_text))
        except (OSError, subprocess.SubprocessError, ValueError):  # absent, broken, or odd output
            continue
        if level == "final" and version >= (3, 10) and version != sys.version_info[:2]:
            found.setdefault(version, candidate)
    if not found:
        return []
    versions = sorted(found)
    return [found[version] for version in sorted({versions[0], versions[-1]})]


OTHER_PYTHONS = _other_pythons()


@nox.session
def tests(session: nox.Session) -> None:
    """The whole suite, on aiohttp < 3.14 (what aioresponses needs)."""
    session.install("-e", ".[test]")
    session.run("pytest", *(session.posargs or ["-q"]))


@nox.session
def tests_latest_aiohttp(session: nox.Session) -> None:
    """Every test that needs no aioresponses, on the newest aiohttp release (what users get)."""
    session.install("-e", ".[test-core]")
    session.install("--upgrade", "aiohttp")
    session.run("python", "-c", "import aiohttp; print('aiohttp', aiohttp.__version__)")
    session.run("pytest", "-q", "--ignore=tests/mocked", *session.posargs)


@nox.session(python=OTHER_PYTHONS or None)
def tests_other_pythons(session: nox.Session) -> None:
    """The tests of `tests_latest_aiohttp` on the oldest supported and the newest Python found."""
    if not OTHER_PYTHONS:
        session.skip("no Python >= 3.10 other than nox's own on this machine")
    minor = session.run("python", "-c", "import sys; print(sys.version_info[1])", silent=True)
    if int(str(minor).strip()) >= 13:
        # pgserver (a real Postgres in a wheel) ships none for this Python: the Postgres tests
        # run in the other sessions and are reported skipped here, with this reason.
        session.env["PACSPACE_TEST_POSTGRES"] = "skip"
    tests_latest_aiohttp(session)


@nox.session
def generate(session: nox.Session) -> None:
    """Rewrite pacspace_sync from pacspace_async (commit the result; the drift test checks it).

    `-- --check` only reports whether it is up to date. ruff lays the generated code out: the
    drift test compares byte for byte, so it must be the ruff release the suite runs with.
    """
    session.install("-e", ".", "ruff>=0.17,<0.18")
    session.run("python", "tools/generate_sync.py", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks against raw aiohttp, pacspace-sdk 0.7.0 and requests (`-- --quick` for a short run)."""
    session.install("-e", ".[test-core]", "pacspace-sdk==0.7.0", "requests", "trustme")
    session.run("python", "-m", "benchmarks", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over the whole tree."""
    session.install("ruff")
    session.run("ruff", "check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on both packages."""
    session.install("-e", ".[test]", "mypy")
    session.run("mypy", "--strict", *(f"--package={package}" for package in PACKAGES))
