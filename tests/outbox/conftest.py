"""Fixtures of the outbox tests: a real Postgres server for the Postgres store."""

from .postgres_server import postgres_server, postgres_url

__all__ = ["postgres_server", "postgres_url"]
