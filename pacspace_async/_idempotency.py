"""Idempotency keys, namespaced by environment so no key string is ever shared across them."""

from __future__ import annotations

import hashlib
import os
import re

import attrs

from ._environments import Environment
from ._errors import InvalidArgumentError

__all__ = ["IdempotencyKeys", "MAX_KEY_LENGTH"]

MAX_KEY_LENGTH = 255
# Short, readable references are kept as they are; anything else is hashed.
_READABLE = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
_VISIBLE_ASCII = re.compile(r"[\x21-\x7e]+")


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


@attrs.frozen
class IdempotencyKeys:
    """Builds every ``Idempotency-Key`` the client sends, prefixed ``sandbox:``/``production:``.

    >>> keys = IdempotencyKeys(Environment.SANDBOX)
    >>> keys.for_reference("inv_1", operation="balance.delta", scope="cust_1")
    'sandbox:balance.delta:cust_1:inv_1'
    """

    environment: Environment
    prefix: str = attrs.field(init=False, repr=False, eq=False)

    @prefix.default
    def _prefix(self) -> str:
        return f"{self.environment.value}:"

    def for_reference(self, reference: str, *, operation: str, scope: str | None = None) -> str:
        """Deterministic: the same business reference always gives the same key.

        `scope` (the customer, for a delta) keeps equal references of different customers
        apart: ``inv_1`` of ``cust_A`` and ``inv_1`` of ``cust_B`` are two events.
        """
        if not isinstance(reference, str) or not reference:
            raise InvalidArgumentError("reference_id must be a non-empty string")
        parts = (reference,) if scope is None else (scope, reference)
        readable = ":".join(parts)
        # Kept readable only when it reads back one way: a scope holding ':' would not, and
        # "sha256:..." is how hashed keys look.
        if (scope is None or ":" not in scope) and _READABLE.fullmatch(readable) and not readable.startswith("sha256:"):
            return f"{self.prefix}{operation}:{readable}"
        return f"{self.prefix}{operation}:sha256:{_digest(operation, *parts)}"

    def for_call(
        self,
        *,
        operation: str,
        caller_key: str | None = None,
        reference: str | None = None,
        scope: str | None = None,
    ) -> str:
        """The key of one call: the caller's own, else one derived from the business
        reference (within `scope`), else a fresh one."""
        if caller_key is not None:
            return self.from_caller(caller_key)
        if reference is not None:
            return self.for_reference(reference, operation=operation, scope=scope)
        return self.fresh(operation)

    def fresh(self, operation: str) -> str:
        """Random (128 bits, as hex): one logical call, reused on every attempt of it."""
        return f"{self.prefix}{operation}:{os.urandom(16).hex()}"

    def from_caller(self, key: str) -> str:
        """A caller's own key, namespaced the same way.

        A key this client already returned (on a result or an error) is passed through, so
        retrying above the SDK with ``idempotency_key=error.idempotency_key`` sends the very
        same key. A key namespaced for the other environment is refused.
        """
        if not isinstance(key, str) or not key:
            raise InvalidArgumentError("idempotency_key must be a non-empty string")
        if key.startswith(self.prefix):
            if len(key) > MAX_KEY_LENGTH or not _VISIBLE_ASCII.fullmatch(key):
                raise InvalidArgumentError(f"idempotency_key must be at most {MAX_KEY_LENGTH} visible ASCII characters")
            return key
        for other in Environment:
            if other is not self.environment and key.startswith(f"{other.value}:"):
                raise InvalidArgumentError(
                    f"idempotency_key was issued for {other.value}; this client sends to "
                    f"{self.environment.value}, and keys are never shared across environments"
                )
        candidate = f"{self.prefix}{key}"
        # A literal "sha256:..." key would collide with the hashed form of another key.
        if not key.startswith("sha256:") and len(candidate) <= MAX_KEY_LENGTH and _VISIBLE_ASCII.fullmatch(candidate):
            return candidate
        return f"{self.prefix}sha256:{_digest(key)}"
