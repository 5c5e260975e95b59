"""`ApiKey`: the exact shape of a PacSpace key, and the one place its secret is read.

The secret half of a key is read at exactly one place, `ApiKey.header_value`, which builds
the ``X-Api-Key`` header. Everything else sees `key_id` or `redacted`.
"""

from __future__ import annotations

import attrs

from ._environments import Environment
from ._errors import InvalidApiKeyError
from ._redact import REDACTED

__all__ = ["MAX_API_KEY_LENGTH", "ApiKey"]

# Far above any real key (a prefix, a public id and a secret of a few dozen characters each),
# far below the header line limits of servers and proxies (8 KB in aiohttp, nginx, many load
# balancers): a longer text is a pasted file or the wrong variable, and sent as a header it
# would be refused as a bad request (telling an agent to change its arguments) and may be
# echoed, secret included, into the logs of whatever refused it.
MAX_API_KEY_LENGTH = 512

_PREFIXES = {environment.key_prefix: environment for environment in Environment}


def _refuse(text: str, why: str, source: str) -> InvalidApiKeyError:
    # Only the length and the rule broken: any slice of a malformed key may be its secret.
    return InvalidApiKeyError(
        f"invalid API key from {source} ({len(text)} characters): {why}; "
        "expected the form pk_{test|live}_<publicId>.<secret>"
    )


def _split(text: object, source: str) -> tuple[Environment, str, str]:
    """The environment, public id and secret of a well-formed key, or the rule it breaks."""
    if not isinstance(text, str):
        raise InvalidApiKeyError(f"the API key from {source} must be a str, not {type(text).__name__}")
    if not text:
        raise _refuse(text, "it is empty (leave api_key unset for public calls only)", source)
    if len(text) > MAX_API_KEY_LENGTH:
        raise _refuse(text, f"it is longer than {MAX_API_KEY_LENGTH} characters, more than any PacSpace key", source)
    if any(ch.isspace() for ch in text):
        raise _refuse(text, "it contains whitespace (a trailing newline from a file or a paste?)", source)
    if not text.isascii() or not text.isprintable():
        raise _refuse(text, "it contains characters that are not visible ASCII", source)
    environment = _PREFIXES.get(text[:8])
    if environment is None:
        raise _refuse(text, "it must start with pk_test_ (sandbox) or pk_live_ (production)", source)
    dots = text.count(".")
    if dots != 1:
        raise _refuse(text, f"it must contain exactly one '.' between public id and secret, found {dots}", source)
    public_id, secret = text[8:].split(".")
    if not public_id:
        raise _refuse(text, "the public id before '.' is empty", source)
    if not secret:
        raise _refuse(text, "the secret after '.' is empty", source)
    return environment, public_id, secret


@attrs.frozen(repr=False)
class ApiKey:
    """A parsed PacSpace key. Shows only ``pk_live_PUBLICID.****`` when printed.

    >>> key = ApiKey.parse("pk_test_abc123.s3cr3t")
    >>> key.environment.value, key.key_id, str(key)
    ('sandbox', 'pk_test_abc123', 'pk_test_abc123.****')
    """

    environment: Environment
    public_id: str
    _secret: str = attrs.field(alias="secret")

    def __attrs_post_init__(self) -> None:
        # Built directly rather than parsed: hold it to the same rules, so no header can be
        # smuggled in through a public id or secret.
        if not isinstance(self.environment, Environment) or not isinstance(self.public_id, str):
            raise InvalidApiKeyError("ApiKey(environment, public_id, secret) needs an Environment and strings")
        _split(f"{self.environment.key_prefix}{self.public_id}.{self._secret}", "ApiKey(...)")

    @classmethod
    def parse(cls, text: str, *, source: str = "api_key") -> ApiKey:
        """Check the exact shape ``pk_{test|live}_{publicId}.{secret}``; never echo the input."""
        return cls(*_split(text, source))

    @property
    def key_id(self) -> str:
        """``pk_live_PUBLICID``: safe to log and to show an operator."""
        return f"{self.environment.key_prefix}{self.public_id}"

    @property
    def redacted(self) -> str:
        return f"{self.key_id}.{REDACTED}"

    def header_value(self) -> str:
        """The full key, for the ``X-Api-Key`` header only."""
        return f"{self.key_id}.{self._secret}"

    def __repr__(self) -> str:
        return f"ApiKey({self.redacted!r})"

    def __str__(self) -> str:
        return self.redacted
