"""The exception tree, and the mapping from an HTTP answer to the right exception.

Every error says what an agent should do next (`action`), and carries what an operator needs
to find the request again (`request_id`, `idempotency_key`, `key_id`) — never a secret.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from ._redact import redact, redact_json
from ._status import ErrorAction, action_for_status

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "CadenceLimitError",
    "ConfigurationError",
    "ConflictError",
    "ContractNotDeployedError",
    "EnvironmentMismatchError",
    "ErrorAction",
    "IdempotencyConflictError",
    "InsufficientCreditsError",
    "InvalidApiKeyError",
    "InvalidArgumentError",
    "InvalidScopeCombinationError",
    "MissingApiKeyError",
    "NotFoundError",
    "PacSpaceError",
    "PermissionDeniedError",
    "RateLimitError",
    "ScopeTooWideError",
    "ServerError",
    "ServiceUnavailableError",
    "UnprocessableEntityError",
    "VerificationTimeoutError",
    "WebhookVerificationError",
    "reworded",
]


def _restore(cls: type[PacSpaceError], args: tuple[Any, ...], state: dict[str, Any]) -> PacSpaceError:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class PacSpaceError(Exception):
    """Base class of every error the SDK raises on purpose."""

    default_action: ErrorAction = ErrorAction.ALERT_OPERATOR

    def __init__(
        self,
        message: str,
        *,
        action: ErrorAction | None = None,
        idempotency_key: str | None = None,
    ) -> None:
        message = redact(message)
        super().__init__(message)
        self.message = message
        self.action = action or self.default_action
        self.idempotency_key = idempotency_key

    @property
    def retryable(self) -> bool:
        """True when sending the same request again (same idempotency key) may succeed."""
        return self.action in (ErrorAction.RETRY, ErrorAction.WAIT_AND_RETRY)

    def __str__(self) -> str:
        return self.message

    # Keyword-only constructors defeat Exception's default pickling (it replays `args`).
    def __reduce__(self) -> tuple[Any, ...]:
        return (_restore, (type(self), self.args, dict(self.__dict__)))


# --- local refusals -------------------------------------------------------------------------


class ConfigurationError(PacSpaceError, ValueError):
    """The client is set up wrongly (key, environment, base URL): an operator must fix it."""


class InvalidApiKeyError(ConfigurationError):
    """The key is not of the form ``pk_{test|live}_{publicId}.{secret}``."""


class EnvironmentMismatchError(ConfigurationError):
    """A key, an environment and a base URL that disagree; nothing was sent."""


class MissingApiKeyError(ConfigurationError):
    """An authenticated call on a client that has no key; nothing was sent."""


class InvalidArgumentError(PacSpaceError, ValueError):
    """An argument was refused before anything was sent."""

    default_action = ErrorAction.FIX_INPUT


class VerificationTimeoutError(PacSpaceError, TimeoutError):
    """A delta did not reach a final status within the wait; it is still recorded."""

    default_action = ErrorAction.WAIT_AND_RETRY

    def __init__(self, message: str, *, record_id: str, last_status: str | None) -> None:
        super().__init__(message)
        self.record_id = record_id
        self.last_status = last_status


class WebhookVerificationError(PacSpaceError, ValueError):
    """A webhook delivery failed verification: reject it (answer 400)."""

    default_action = ErrorAction.FIX_INPUT


# --- failures on the way to PacSpace --------------------------------------------------------


class APIConnectionError(PacSpaceError):
    """No HTTP answer: the connection failed or dropped. Safe to retry with the same key."""

    default_action = ErrorAction.RETRY

    def __init__(
        self,
        message: str,
        *,
        method: str,
        path: str,
        idempotency_key: str | None = None,
        retries_taken: int = 0,
        action: ErrorAction | None = None,
    ) -> None:
        super().__init__(
            f"{message} [{method} {path}, retries_taken={retries_taken}]",
            action=action,
            idempotency_key=idempotency_key,
        )
        self.method = method
        self.path = path
        self.retries_taken = retries_taken


class APITimeoutError(APIConnectionError):
    """The attempt timed out, or the call ran past its deadline."""


# --- HTTP answers that are errors -----------------------------------------------------------


class APIStatusError(PacSpaceError):
    """PacSpace answered with an error status."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: str | None,
        method: str,
        path: str,
        request_id: str | None = None,
        idempotency_key: str | None = None,
        retries_taken: int = 0,
        body: Any = None,
        key_id: str | None = None,
        retry_after: float | None = None,
        customer_id: str | None = None,
        action: ErrorAction | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.method = method
        self.path = path
        self.request_id = request_id
        self.retries_taken = retries_taken
        self.body = redact_json(body)
        self.key_id = key_id
        self.retry_after = retry_after
        self.customer_id = customer_id
        action = action or action_for_status(status)
        super().__init__(
            _one_line(self, message, action, idempotency_key),
            action=action,
            idempotency_key=idempotency_key,
        )


class BadRequestError(APIStatusError):
    """400: the request was refused as invalid; fix the input."""


class InvalidScopeCombinationError(BadRequestError):
    """400 INVALID_SCOPE_COMBINATION: scope arguments that cannot be combined."""


class ScopeTooWideError(BadRequestError):
    """400 SCOPE_TOO_WIDE: the window is larger than the account allows (see balance.limits())."""


class AuthenticationError(APIStatusError):
    """401: the key is missing, invalid, revoked or of the other environment. Never retried."""


class InsufficientCreditsError(APIStatusError):
    """402: the plan's allowance is used up; writes fail until the plan changes."""


class PermissionDeniedError(APIStatusError):
    """403: the key is valid but may not use this resource. Never retried."""


class NotFoundError(APIStatusError):
    """404."""


class ConflictError(APIStatusError):
    """409: the request conflicts with the current state."""


class IdempotencyConflictError(ConflictError):
    """409: the idempotency key was already used with a different request body."""


class ContractNotDeployedError(APIStatusError):
    """412: no contract is deployed for this environment yet."""


class UnprocessableEntityError(APIStatusError):
    """422: well-formed but semantically invalid."""


class RateLimitError(APIStatusError):
    """429: too many requests; wait `retry_after` seconds."""


class CadenceLimitError(RateLimitError):
    """429 CADENCE_LIMIT: this customer was written to too recently; wait `retry_after`."""


class ServerError(APIStatusError):
    """5xx."""


class ServiceUnavailableError(ServerError):
    """503: maintenance or overload."""


# --- the mapping ----------------------------------------------------------------------------

_BY_STATUS: Mapping[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    402: InsufficientCreditsError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    412: ContractNotDeployedError,
    422: UnprocessableEntityError,
    429: RateLimitError,
    503: ServiceUnavailableError,
}

# A code only refines the class of the status it belongs to.
_BY_STATUS_AND_CODE: Mapping[tuple[int, str], type[APIStatusError]] = {
    (400, "INVALID_SCOPE_COMBINATION"): InvalidScopeCombinationError,
    (400, "SCOPE_TOO_WIDE"): ScopeTooWideError,
    (429, "CADENCE_LIMIT"): CadenceLimitError,
}


def error_class_for(status: int, code: str | None) -> type[APIStatusError]:
    """The most specific class for a status and a server error code."""
    if code is not None:
        by_code = _BY_STATUS_AND_CODE.get((status, code))
        if by_code is not None:
            return by_code
        if status == 409 and code.startswith("IDEMPOTENCY"):
            return IdempotencyConflictError
    cls = _BY_STATUS.get(status)
    if cls is not None:
        return cls
    if status >= 500:
        return ServerError
    return APIStatusError


def error_fields(body: object) -> Mapping[str, Any]:
    """The error object of a body: nested ``{"error": {...}}`` or flat ``{"code", ...}``."""
    if not isinstance(body, Mapping):
        return {}
    nested = body.get("error")
    if isinstance(nested, Mapping):
        return nested
    return body


def error_code(body: object) -> str | None:
    code = error_fields(body).get("code")
    return code if isinstance(code, str) and code else None


def error_message(body: object, status: int) -> str:
    """The server's message (lists joined with "; "), else a generic one."""
    fields = error_fields(body)
    for candidate in (fields.get("message"), _get(body, "message"), _get(body, "error")):
        if isinstance(candidate, list):
            candidate = "; ".join(str(part) for part in candidate)
        if isinstance(candidate, str) and candidate:
            return candidate
    return f"request failed with HTTP {status}"


def _get(body: object, name: str) -> object:
    return body.get(name) if isinstance(body, Mapping) else None


def error_from_response(
    *,
    status: int,
    body: object,
    method: str,
    path: str,
    request_id: str | None,
    idempotency_key: str | None,
    retries_taken: int,
    key_id: str | None,
    retry_after: float | None,
) -> APIStatusError:
    """Build the exception for an error answer (pure: no I/O)."""
    code = error_code(body)
    cls = error_class_for(status, code)
    customer_id = error_fields(body).get("customerId")
    return cls(
        error_message(body, status),
        status=status,
        code=code,
        method=method,
        path=path,
        request_id=request_id,
        idempotency_key=idempotency_key,
        retries_taken=retries_taken,
        body=body,
        key_id=key_id,
        retry_after=retry_after,
        customer_id=customer_id if isinstance(customer_id, str) else None,
    )


_HINTS: Mapping[int, str] = {
    401: "the key was refused; check it or rotate it (not retried)",
    402: "the plan's allowance is used up",
    403: "this key may not use this resource; grant the permission or use another key (not retried)",
    412: "deploy a contract for this environment first",
}


StatusErrorT = TypeVar("StatusErrorT", bound=APIStatusError)


def reworded(error: StatusErrorT, message: str) -> StatusErrorT:
    """The same error (class, status, code, ids, body, action) saying `message` instead of the
    server's text: for when the SDK knows better what the caller did (pure: no I/O)."""
    return type(error)(
        message,
        status=error.status,
        code=error.code,
        method=error.method,
        path=error.path,
        request_id=error.request_id,
        idempotency_key=error.idempotency_key,
        retries_taken=error.retries_taken,
        body=error.body,
        key_id=error.key_id,
        retry_after=error.retry_after,
        customer_id=error.customer_id,
        action=error.action,
    )


def seconds_for_people(seconds: float) -> str:
    """A wait as a person reads it: ``2.995314121246338`` → ``"3.0s"``.

    The attribute keeps the exact value for code; a wait that is not zero never reads "0.0s".
    """
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        return str(seconds)  # not a number of seconds: shown as it is rather than hidden
    if 0 < seconds < 0.1:
        seconds = 0.1
    return f"{seconds:.1f}s"


def _one_line(error: APIStatusError, message: str, action: ErrorAction, idempotency_key: str | None) -> str:
    parts = [f"{error.status} {error.method} {error.path}: {' '.join(message.split())}"]
    hint = _HINTS.get(error.status)
    if error.status < 400:
        hint = "redirects are never followed with a key attached; check base_urls"
    if hint:
        parts.append(f"— {hint}")
    details = [
        f"{name}={' '.join(str(value).split())}"
        for name, value in (
            ("code", error.code),
            ("key_id", error.key_id),
            ("customer_id", error.customer_id),
            ("retry_after", None if error.retry_after is None else seconds_for_people(error.retry_after)),
            ("request_id", error.request_id),
            ("idempotency_key", idempotency_key),
            ("retries_taken", error.retries_taken or None),
        )
        if value is not None
    ]
    if details:
        parts.append(f"({', '.join(details)})")
    parts.append(f"action={action.name}")
    return " ".join(parts)
