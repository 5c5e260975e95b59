"""A real Postgres for the tests: one server per run, a fresh database per test.

The server comes from `PACSPACE_TEST_POSTGRES_URL` (an existing server, as a URL whose user
may create databases) or else from the `pgserver` package, whose wheel ships the Postgres
binaries and starts them in a temporary directory (as another user when run as root). When
neither works the tests fail under CI, so they are never skipped unnoticed; elsewhere they
are skipped with the reason.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

URL_VARIABLE = "PACSPACE_TEST_POSTGRES_URL"
OFF_VARIABLE = "PACSPACE_TEST_POSTGRES"


def _unavailable(reason: str) -> None:
    message = f"no Postgres for the outbox tests: {reason}"
    if os.environ.get("CI"):
        pytest.fail(f"{message} (under CI the Postgres tests must run)", pytrace=False)
    pytest.skip(f"{message}; install the test extra (pgserver) or set {URL_VARIABLE}")


def with_database(url: str, name: str) -> str:
    """The same server and user, another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The URL of a database on a running server, for creating the tests' own databases."""
    if os.environ.get(OFF_VARIABLE) == "skip":
        # Declared by the test session itself (pgserver ships no wheel for that Python), and
        # reported in pytest's summary: not a silent skip.
        pytest.skip(f"Postgres tests turned off for this session by {OFF_VARIABLE}=skip")
    given = os.environ.get(URL_VARIABLE)
    if given:
        yield given
        return
    try:
        with warnings.catch_warnings():  # platformdirs, on a machine without XDG_RUNTIME_DIR
            warnings.simplefilter("ignore")
            import pgserver
    except ImportError as error:
        _unavailable(f"the pgserver package is not installed ({error})")
        raise AssertionError("unreachable") from None
    # Not under pytest's tmp_path: its directories are private to root, and the server may
    # run as another user; a short path also keeps the Unix socket's name within its limit.
    directory = tempfile.mkdtemp(prefix="pacspace-pg-")
    server: Any = None
    try:
        try:
            server = pgserver.get_server(directory, cleanup_mode="stop")  # type: ignore[attr-defined]
        except Exception as error:
            _unavailable(f"pgserver could not start a server ({type(error).__name__}: {error})")
        yield str(server.get_uri())
    finally:
        if server is not None:
            server.cleanup()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty database for one test, dropped after it."""
    import psycopg

    name = f"pacspace_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield with_database(postgres_server, name)
    finally:
        with psycopg.connect(postgres_server, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
