"""Project tasks. `nox` alone runs what CI runs: both test sessions, lint and typecheck."""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["tests", "tests_latest_aiohttp", "lint", "typecheck"]

PACKAGES = ["pacspace_async", "pacspace_sync"]


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


@nox.session
def generate(session: nox.Session) -> None:
    """Rewrite pacspace_sync from pacspace_async (commit the result; the drift test checks it)."""
    session.install("-e", ".")
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
