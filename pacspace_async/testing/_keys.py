"""API keys as the emulator issues and checks them: ``pk_{test|live}_{publicId}.{secret}``.

The key format is parsed here, not with the SDK's key parser: a server that shared the
client's parser would accept whatever the client wrongly accepts.
"""

from __future__ import annotations

import hmac
import re
import secrets
from collections.abc import Iterable, Mapping

import attrs

from .._environments import Environment
from ._wire import ApiError

__all__ = ["PERMISSIONS", "KeyRecord", "authenticate", "key_id_of", "new_key"]

PERMISSIONS: frozenset[str] = frozenset(
    {
        "balance:write",  # POST /balance/delta, /balance/delta/batch
        "balance:read",  # GET /balance/delta/{id}, /balance/derive/{id}, /balance/gaps/{id}; POST /balance/compare
        "checkpoints:write",  # POST /balance/checkpoint
        "checkpoints:read",  # GET /balance/checkpoints
        "receipts:read",  # GET /balance/receipt/{id}, /balance/invoice-proof/{id}
        "customers:read",  # GET /balance/customers, /customers/summary, /customers/{id}
        "usage:read",  # GET /balance/usage, /balance/limits
        "webhooks:read",  # GET /balance/webhooks
        "webhooks:write",  # POST /balance/webhooks/{eventId}/retry
    }
)

_KEY = re.compile(r"(pk_test_|pk_live_)([^.\s]+)\.(\S+)")


@attrs.define
class KeyRecord:
    environment: Environment
    public_id: str
    secret: str = attrs.field(repr=False)
    permissions: frozenset[str] | None  # None: every permission
    revoked: bool = False

    @property
    def key_id(self) -> str:
        return f"{self.environment.key_prefix}{self.public_id}"

    @property
    def full_key(self) -> str:
        return f"{self.key_id}.{self.secret}"

    def allows(self, permission: str) -> bool:
        return self.permissions is None or permission in self.permissions


def new_key(environment: Environment, permissions: Iterable[str] | None) -> KeyRecord:
    """A fresh random key of `environment`; `permissions` None means all of `PERMISSIONS`."""
    allowed = None if permissions is None else frozenset(permissions)
    if allowed is not None and isinstance(permissions, str):
        raise TypeError("permissions must be a collection of names, e.g. {'balance:read'}")
    unknown = sorted((allowed or frozenset()) - PERMISSIONS)
    if unknown:
        raise ValueError(f"unknown permissions {unknown}; known: {sorted(PERMISSIONS)}")
    return KeyRecord(environment, "emu" + secrets.token_hex(6), secrets.token_urlsafe(24), allowed)


def key_id_of(header: str | None) -> str | None:
    """``pk_test_PUBLICID`` of a key header, for the request log (never the secret)."""
    match = None if header is None else _KEY.fullmatch(header.strip())
    return None if match is None else match.group(1) + match.group(2)


def authenticate(
    header: str | None,
    keys: Mapping[str, KeyRecord],
    environment: Environment,
    permission: str,
    resource: str,
) -> KeyRecord:
    """The key record behind an ``X-Api-Key`` header, if it may use `resource`; else 401 or 403."""
    if not header:
        raise ApiError(401, "MISSING_API_KEY", "this endpoint needs an X-Api-Key header")
    match = _KEY.fullmatch(header.strip())
    if match is None:
        raise ApiError(401, "INVALID_API_KEY", "the X-Api-Key is not of the form pk_{test|live}_{publicId}.{secret}")
    prefix, public_id, secret = match.groups()
    key_id = prefix + public_id
    key_environment = Environment.SANDBOX if prefix == "pk_test_" else Environment.PRODUCTION
    if key_environment is not environment:
        raise ApiError(
            401,
            "WRONG_ENVIRONMENT",
            f"key {key_id} is a {key_environment.value} key; this is the {environment.value} API",
            keyId=key_id,
        )
    record = keys.get(key_id)
    if record is None or not hmac.compare_digest(record.secret.encode(), secret.encode()):
        raise ApiError(401, "INVALID_API_KEY", f"key {key_id} is not valid", keyId=key_id)
    if record.revoked:
        raise ApiError(401, "API_KEY_REVOKED", f"key {key_id} was revoked", keyId=key_id)
    if not record.allows(permission):
        raise ApiError(
            403,
            "PERMISSION_DENIED",
            f"key {key_id} may not use {resource}: it lacks the {permission} permission",
            keyId=key_id,
            resource=resource,
            permission=permission,
        )
    return record
