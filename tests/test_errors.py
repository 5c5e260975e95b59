"""The exception tree and the mapping from HTTP answers (docs/architecture.md, "Errors")."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from pacspace_async import errors
from pacspace_async._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    CadenceLimitError,
    ConfigurationError,
    ConflictError,
    ContractNotDeployedError,
    EnvironmentMismatchError,
    ErrorAction,
    IdempotencyConflictError,
    InsufficientCreditsError,
    InvalidApiKeyError,
    InvalidArgumentError,
    InvalidScopeCombinationError,
    MissingApiKeyError,
    NotFoundError,
    PacSpaceError,
    PermissionDeniedError,
    RateLimitError,
    ScopeTooWideError,
    ServerError,
    ServiceUnavailableError,
    UnprocessableEntityError,
    VerificationTimeoutError,
    WebhookVerificationError,
    error_from_response,
)

SECRET = "S3CR3Tzz"
PATH = "/api/v1/balance/delta"


def make(status: int, body: object = None, **extra: Any) -> APIStatusError:
    arguments: dict[str, Any] = {
        "status": status,
        "body": body,
        "method": "POST",
        "path": PATH,
        "request_id": "req_123",
        "idempotency_key": "sandbox:balance.delta:inv_1",
        "retries_taken": 0,
        "key_id": "pk_test_pub",
        "retry_after": None,
    }
    arguments.update(extra)
    return error_from_response(**arguments)


def nested(code: str, message: str = "m", **more: Any) -> dict[str, Any]:
    return {"success": False, "error": {"code": code, "message": message, **more}}


FIX, ALERT, RETRY, WAIT = (
    ErrorAction.FIX_INPUT,
    ErrorAction.ALERT_OPERATOR,
    ErrorAction.RETRY,
    ErrorAction.WAIT_AND_RETRY,
)

MAPPING = [
    # status, body, class, action
    (400, None, BadRequestError, FIX),
    (400, nested("VALIDATION_ERROR"), BadRequestError, FIX),
    (400, nested("INVALID_SCOPE_COMBINATION"), InvalidScopeCombinationError, FIX),
    (400, {"code": "SCOPE_TOO_WIDE", "message": "m"}, ScopeTooWideError, FIX),
    (401, nested("INVALID_API_KEY"), AuthenticationError, ALERT),
    (402, nested("INSUFFICIENT_CREDITS"), InsufficientCreditsError, FIX),
    (403, nested("FORBIDDEN"), PermissionDeniedError, ALERT),
    (404, nested("CUSTOMER_NOT_FOUND"), NotFoundError, FIX),
    (408, None, APIStatusError, RETRY),
    (409, nested("ALREADY_EXISTS"), ConflictError, FIX),
    (409, nested("IDEMPOTENCY_CONFLICT"), IdempotencyConflictError, FIX),
    (412, nested("CONTRACT_NOT_DEPLOYED"), ContractNotDeployedError, FIX),
    (422, nested("UNPROCESSABLE"), UnprocessableEntityError, FIX),
    (429, nested("RATE_LIMITED"), RateLimitError, WAIT),
    (429, None, RateLimitError, WAIT),
    (429, nested("CADENCE_LIMIT", customerId="cust_9", retryAfterSeconds=5), CadenceLimitError, WAIT),
    (500, None, ServerError, RETRY),
    (502, nested("BAD_GATEWAY"), ServerError, RETRY),
    (503, None, ServiceUnavailableError, RETRY),
    (504, None, ServerError, RETRY),
    (418, None, APIStatusError, FIX),
]


@pytest.mark.parametrize(("status", "body", "cls", "action"), MAPPING)
def test_status_maps_to_class_and_action(status: int, body: object, cls: type, action: ErrorAction) -> None:
    error = make(status, body)
    assert type(error) is cls
    assert isinstance(error, APIStatusError)
    assert isinstance(error, PacSpaceError)
    assert error.status == status
    assert error.action is action
    assert error.retryable is (action in (RETRY, WAIT))
    assert error.method == "POST"
    assert error.path == PATH
    assert error.request_id == "req_123"
    assert error.idempotency_key == "sandbox:balance.delta:inv_1"
    assert error.body == body


def test_the_code_only_refines_its_own_status() -> None:
    assert type(make(500, nested("CADENCE_LIMIT"))) is ServerError
    assert type(make(404, nested("SCOPE_TOO_WIDE"))) is NotFoundError
    assert type(make(429, nested("IDEMPOTENCY_CONFLICT"))) is RateLimitError


def test_cadence_limit_carries_customer_id_and_retry_after() -> None:
    error = make(429, nested("CADENCE_LIMIT", customerId="cust_9", retryAfterSeconds=5), retry_after=5.0)
    assert isinstance(error, CadenceLimitError)
    assert isinstance(error, RateLimitError)
    assert error.code == "CADENCE_LIMIT"
    assert error.customer_id == "cust_9"
    assert error.retry_after == 5.0
    assert "customer_id=cust_9" in str(error)
    flat = make(429, {"code": "CADENCE_LIMIT", "customerId": "cust_8"})
    assert isinstance(flat, CadenceLimitError)
    assert flat.customer_id == "cust_8"
    assert make(429, nested("CADENCE_LIMIT", customerId=12)).customer_id is None


def test_subclass_relationships() -> None:
    assert issubclass(InvalidScopeCombinationError, BadRequestError)
    assert issubclass(ScopeTooWideError, BadRequestError)
    assert issubclass(IdempotencyConflictError, ConflictError)
    assert issubclass(CadenceLimitError, RateLimitError)
    assert issubclass(ServiceUnavailableError, ServerError)
    assert issubclass(APITimeoutError, APIConnectionError)
    for cls in (InvalidApiKeyError, EnvironmentMismatchError, MissingApiKeyError):
        assert issubclass(cls, ConfigurationError)
    for cls in (ConfigurationError, InvalidArgumentError, WebhookVerificationError):
        assert issubclass(cls, PacSpaceError)
        assert issubclass(cls, ValueError)
    assert not issubclass(APIStatusError, ValueError)
    assert errors.RateLimitError is RateLimitError
    assert InvalidArgumentError("x").action is FIX
    assert APIConnectionError("x", method="GET", path="/p").action is RETRY


# --- messages -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message", "code"),
    [
        ({"error": {"code": "X1", "message": "nested message"}}, "nested message", "X1"),
        ({"success": False, "error": {"code": "X2", "message": "nested message"}}, "nested message", "X2"),
        ({"code": "X3", "message": "flat message"}, "flat message", "X3"),
        ({"statusCode": 400, "error": "Bad Request", "message": ["a", "b"]}, "a; b", None),
        ({"statusCode": 400, "error": "Bad Request", "message": "one"}, "one", None),
        ({"statusCode": 400, "error": "Bad Request"}, "Bad Request", None),
        ({"error": {"code": "X4"}, "message": "outer"}, "outer", "X4"),
    ],
)
def test_message_extraction(body: object, message: str, code: str | None) -> None:
    error = make(400, body)
    assert f": {message} " in str(error)
    assert error.code == code


@pytest.mark.parametrize("body", [None, "", "plain text", [1, 2], {}, {"message": ""}, {"message": []}])
def test_message_without_a_usable_body(body: object) -> None:
    error = make(500, body)
    assert "request failed with HTTP 500" in str(error)
    assert error.code is None


def test_str_is_one_line_with_method_path_status_action() -> None:
    error = make(403, nested("FORBIDDEN", "this key\nmay not\r\n  write"))
    text = str(error)
    assert "\n" not in text
    assert "\r" not in text
    assert "403" in text
    assert "POST" in text
    assert PATH in text
    assert "ALERT_OPERATOR" in text
    assert "this key may not write" in text
    assert "pk_test_pub" in text  # the key identity, for 403
    assert "req_123" in text


@pytest.mark.parametrize(("status", "body", "cls", "action"), MAPPING)
def test_every_mapped_error_str_is_one_line(status: int, body: object, cls: type, action: ErrorAction) -> None:
    text = str(make(status, body))
    assert "\n" not in text
    assert str(status) in text
    assert f"action={action.name}" in text


def test_str_stays_one_line_with_a_hostile_code() -> None:
    # Regression: only the message used to be collapsed onto one line, not code or customer_id.
    error = make(429, {"error": {"code": "CADENCE_LIMIT\nFAKE", "customerId": "c\n1", "message": "m"}})
    assert "\n" not in str(error)
    assert "code=CADENCE_LIMIT FAKE" in str(error)
    assert error.code == "CADENCE_LIMIT\nFAKE"  # the attribute keeps what the server sent


def test_server_message_with_a_key_is_redacted() -> None:
    error = make(401, nested("INVALID_API_KEY", f"key pk_live_x.{SECRET} is disabled"))
    assert SECRET not in str(error)
    assert SECRET not in repr(error)
    assert SECRET not in error.message
    assert "pk_live_x.****" in str(error)


def test_connection_error_str() -> None:
    error = APITimeoutError("timed out", method="GET", path="/p", idempotency_key="k", retries_taken=2)
    assert str(error) == "timed out [GET /p, retries_taken=2]"
    assert error.retryable
    assert error.idempotency_key == "k"


def test_local_errors_redact_too() -> None:
    assert SECRET not in str(InvalidArgumentError(f"bad pk_test_a.{SECRET}"))


# --- pickling and hashing -----------------------------------------------------------------


@pytest.mark.parametrize(("status", "body", "cls", "action"), MAPPING)
def test_api_errors_pickle(status: int, body: object, cls: type, action: ErrorAction) -> None:
    error = make(status, body, retry_after=1.5, retries_taken=2)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is cls
    for name in (
        "status",
        "code",
        "action",
        "message",
        "idempotency_key",
        "request_id",
        "method",
        "path",
        "retries_taken",
        "retry_after",
        "customer_id",
        "key_id",
        "body",
    ):
        assert getattr(copy, name) == getattr(error, name), name
    assert copy.retryable == error.retryable
    assert str(copy) == str(error)
    assert copy.args == error.args
    assert isinstance(hash(error), int)
    assert isinstance(hash(copy), int)


@pytest.mark.parametrize(
    "error",
    [
        PacSpaceError("base"),
        ConfigurationError("config"),
        InvalidApiKeyError("bad key"),
        EnvironmentMismatchError("mismatch"),
        MissingApiKeyError("none"),
        InvalidArgumentError("arg", idempotency_key="k"),
        WebhookVerificationError("sig"),
        VerificationTimeoutError("slow", record_id="rec_1", last_status="PROCESSING"),
        APIConnectionError("down", method="POST", path=PATH, idempotency_key="k", retries_taken=1),
        APITimeoutError("slow", method="GET", path="/p"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_local_errors_pickle_and_hash(error: PacSpaceError) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert vars(copy) == vars(error)
    assert str(copy) == str(error)
    assert copy.action is error.action
    assert {error: 1}[error] == 1
    assert isinstance(hash(copy), int)


def test_batch_progress_is_only_on_batch_errors_and_survives_pickling() -> None:
    from pacspace_async._batch_error import with_batch_progress
    from pacspace_async.models import BatchItemResult, BatchResult

    error = errors.RateLimitError("slow down", status=429, code=None, method="POST", path="/api/v1/balance/delta/batch")
    assert not hasattr(error, "batch_progress")
    assert not hasattr(errors.PacSpaceError("x"), "batch_progress")
    recorded = BatchItemResult(index=0, status="QUEUED", record_id="rec_1")
    batched = with_batch_progress(error, BatchResult((recorded,), 1, 0, ("sandbox:k",)))
    assert isinstance(batched, errors.RateLimitError)
    copy = pickle.loads(pickle.dumps(batched))
    assert isinstance(copy, errors.BatchError)
    assert copy.batch_progress == batched.batch_progress
