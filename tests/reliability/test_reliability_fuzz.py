"""Hypothesis fuzzing of what comes from outside: only the documented error types ever come out.

Already fuzzed elsewhere (not repeated here): `ApiKey.parse` on text (tests/test_credentials.py),
`parse_retry_after` on header dicts and bodies (tests/test_retry_rules.py),
`IdempotencyKeys.for_reference`/`from_caller` for ``balance.delta`` in sandbox
(tests/test_idempotency.py), the JSON codec round trip (tests/test_json_and_models.py) and
webhook verification (tests/test_webhooks.py).

Added here: every wire model through `structure`; `error_from_response`; whole answers (status,
headers, body) through a real socket into every endpoint of the client; idempotency keys for
every operation the SDK sends, in both environments, through the requester; keys given to the
client as text or in a key file (arbitrary bytes).
"""

from __future__ import annotations

import asyncio
import functools
import json
import pickle
import re
import threading
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pacspace_async
import pacspace_async.models as models
from pacspace_async import (
    APIStatusError,
    AsyncPacSpace,
    ConfigurationError,
    Environment,
    InvalidArgumentError,
    KeyProvider,
    PacSpaceError,
)
from pacspace_async._errors import action_for_status, error_from_response
from pacspace_async._idempotency import MAX_KEY_LENGTH
from pacspace_async._models import camel, structure
from pacspace_async._requester import Clock
from pacspace_sync import PacSpace

from .reliability_helpers import outcome

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- JSON values ------------------------------------------------------------------------------

# Models that describe answers (the others are built by the SDK itself, never from the wire).
LOCAL_MODELS = {"DeltaInput", "BatchResult", "FlushReport", "SummaryFailure", "SummaryQueueState"}
WIRE_MODELS = [
    getattr(models, name) for name in models.__all__ if attrs.has(getattr(models, name)) and name not in LOCAL_MODELS
]
FIELD_NAMES = sorted({camel(field.name) for model in WIRE_MODELS for field in attrs.fields(model)})

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.decimals(allow_nan=False, allow_infinity=False, places=None).filter(lambda d: abs(d.adjusted()) < 400),
    st.text(max_size=30),
    st.sampled_from(
        [
            "",
            "2026-11-01T00:00:00Z",
            "2026-11-01T00:00:00.123456789+05:30",
            "2026-13-45",
            "1e400",
            "NaN",
            "QUEUED",
            "VERIFIED",
            "daily",
            Decimal("1E+300"),
            Decimal("-0.000"),
            10**30,
            1e300,
            -1,
            2**63,
        ]
    ),
)
keys = st.one_of(st.sampled_from([*FIELD_NAMES, "data", "success", "statusCode", "error", "code"]), st.text(max_size=8))
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=6)),
    max_leaves=12,
)


def model_shaped(model: type[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """A dict with (some of) the model's own wire names, holding values of any type."""
    names = [camel(field.name) for field in attrs.fields(model)]
    return st.fixed_dictionaries({}, optional=dict.fromkeys(names, json_values))


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), model=st.sampled_from(WIRE_MODELS))
def test_structure_gives_the_model_or_a_pacspace_error(model: type[Any], data: st.DataObject) -> None:
    value = data.draw(st.one_of(model_shaped(model), json_values))
    result, error = outcome(lambda: structure(value, model), PacSpaceError)
    if error is not None:
        assert "\n" not in str(error)
        assert model.__name__ in str(error)
    else:
        assert isinstance(result, model)
        repr(result)


def test_wire_models_are_the_answer_models() -> None:
    names = {model.__name__ for model in WIRE_MODELS}
    assert {"DeltaRecord", "BatchItemResult", "DerivedBalance", "Receipt", "Checkpoint", "ProofVerification"} <= names
    assert not names & LOCAL_MODELS


# --- error_from_response ---------------------------------------------------------------------

secrets_text = st.text(alphabet="abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789-_", min_size=12, max_size=40)
free_text = st.text(max_size=40)  # any unicode, line breaks of every kind included


@st.composite
def error_bodies(draw: st.DrawFn) -> tuple[object, str | None, str]:
    """An error body, the secret of a key the server echoed into its message (if any), that key."""
    secret = draw(st.one_of(st.none(), secrets_text.map(lambda text: "~" + text)))  # "~": in no fixed text
    message: object = draw(st.one_of(free_text, json_values))
    token = "-"
    if secret is not None:
        public = draw(st.text(alphabet="abcdef0123456789", max_size=8))
        prefix = draw(st.sampled_from(["pk_test_", "pk_live_"]))
        after = draw(st.sampled_from(["", " ", ",", "\n", ")"]))
        token = f"{prefix}{public}.{secret}"
        message = f"{draw(free_text)} {token}{after}"
    fields = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "message": st.just(message),
                "code": st.one_of(free_text, json_values, st.sampled_from(["CADENCE_LIMIT", "IDEMPOTENCY_KEY_REUSED"])),
                "customerId": st.one_of(free_text, json_values),
                "retryAfterSeconds": json_values,
            },
        )
    )
    shape = draw(st.sampled_from(["flat", "nested", "list-message", "any"]))
    if shape == "nested":
        body: object = {"error": fields, **draw(st.dictionaries(keys, json_values, max_size=2))}
    elif shape == "list-message":
        body = {**fields, "message": [message, draw(free_text)]}
    elif shape == "any":
        body = draw(json_values) if secret is None else {"error": message}
    else:
        body = fields
    return body, secret, token


@FUZZ
@given(
    status=st.integers(min_value=300, max_value=599),
    body_and_secret=error_bodies(),
    request_id=st.one_of(st.none(), free_text),
    idempotency_key=st.one_of(st.none(), free_text),
    retry_after=st.one_of(st.none(), st.floats(min_value=0, allow_infinity=False)),
    retries=st.integers(min_value=0, max_value=50),
)
def test_error_from_response_is_always_a_one_line_api_status_error(
    status: int,
    body_and_secret: tuple[object, str | None, str],
    request_id: str | None,
    idempotency_key: str | None,
    retry_after: float | None,
    retries: int,
) -> None:
    body, secret, token = body_and_secret
    error = error_from_response(
        status=status,
        body=body,
        method="POST",
        path="/api/v1/balance/delta",
        request_id=request_id,
        idempotency_key=idempotency_key,
        retries_taken=retries,
        key_id="pk_test_pubFuzz",
        retry_after=retry_after,
    )
    assert isinstance(error, APIStatusError)
    assert error.status == status
    assert error.action is action_for_status(status)
    text = str(error)
    assert len(text.splitlines()) == 1, text
    assert text.startswith(f"{status} POST /api/v1/balance/delta")
    assert text.endswith(f"action={error.action.name}")
    # The server echoed a key into its message: its secret is not shown (unless the same text
    # also came from somewhere else, bare, which no redaction can know about).
    elsewhere = f"{body!r} {request_id} {idempotency_key}".replace(token, "")
    if secret is not None and secret not in elsewhere:
        assert secret not in text
        assert secret not in repr(error)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == text
    hash(error)


# --- whole answers through a real socket, into every endpoint ----------------------------------


class ScriptedServer:
    """An HTTP server in a thread of its own, answering every request with `answer`."""

    def __init__(self) -> None:
        self.answer: tuple[int, dict[str, str], bytes] = (200, {}, b"{}")
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the scripted server did not start")

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        status, headers, body = self.answer
        return web.Response(status=status, headers=headers, body=body)

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)

        async def start() -> None:
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", self._handle)
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

        self._loop.run_until_complete(start())
        ready.set()
        self._loop.run_forever()
        if self._runner is not None:
            self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


class VirtualTime:
    """Waits take no real time: the clock jumps instead (real time still counts for the deadline)."""

    def __init__(self) -> None:
        self.offset = 0.0
        self._real = Clock().monotonic

    def monotonic(self) -> float:
        return self._real() + self.offset

    async def sleep(self, seconds: float) -> None:
        self.offset += seconds
        await asyncio.sleep(0)


@pytest.fixture(scope="module")
def scripted() -> Iterator[tuple[ScriptedServer, PacSpace]]:
    server = ScriptedServer()
    pac = PacSpace(
        "pk_test_pubFuzz.fuzzSECRETvalue123", base_urls={"sandbox": server.url}, max_retries=1, timeout=5, deadline=0.5
    )
    time = VirtualTime()
    pac._bind(pac._wrapped._with_clock(Clock(monotonic=time.monotonic, sleep=time.sleep)), pac._portal)
    try:
        yield server, pac
    finally:
        pac.close()
        server.stop()


CALLS: dict[str, Callable[[PacSpace], object]] = {
    "emit": lambda pac: pac.balance.emit(customer_id="c", delta=1, reason="r"),
    "emit_batch": lambda pac: pac.balance.emit_batch([{"customer_id": "c", "delta": 1, "reason": "r"}]),
    "status": lambda pac: pac.balance.status("rec_1"),
    "derive": lambda pac: pac.balance.derive("c"),
    "compare": lambda pac: pac.balance.compare("c", your_balance=1, their_balance=2),
    "usage": lambda pac: pac.balance.usage(),
    "gaps": lambda pac: pac.balance.gaps("c"),
    "limits": lambda pac: pac.balance.limits(),
    "receipt": lambda pac: pac.balance.receipt("c"),
    "invoice_proof": lambda pac: pac.balance.invoice_proof("c"),
    "checkpoint": lambda pac: pac.checkpoints.create(customer_id="c", period="2026-01"),
    "checkpoints": lambda pac: pac.checkpoints.list().first_page(),
    "customers": lambda pac: pac.customers.list().first_page(),
    "customer": lambda pac: pac.customers.get("c"),
    "customers_summary": lambda pac: pac.customers.summary(),
    "deliveries": lambda pac: pac.webhook_deliveries.list().first_page(),
    "retry_delivery": lambda pac: pac.webhook_deliveries.retry("evt_1"),
    "verify": lambda pac: pac.verify("0xab"),
}


def _envelope(value: Any) -> st.SearchStrategy[Any]:
    return st.sampled_from([value, {"success": True, "data": value}, {"statusCode": 200, "data": value}])


answer_bodies = st.one_of(
    json_values.flatmap(_envelope).map(lambda value: json.dumps(value, default=str).encode()),
    st.fixed_dictionaries(
        {"code": st.sampled_from(["IDEMPOTENCY_PENDING", "CADENCE_LIMIT", "RATE_LIMITED", "X"])},
        optional={"retryAfterSeconds": json_values, "message": free_text, "error": json_values},
    ).map(lambda value: json.dumps(value, default=str).encode()),
    st.binary(max_size=60),
    st.sampled_from([b"", b"null", b"[]", b'{"data": null, "success": true}', b"<html>502</html>", b"\xff\xfe"]),
)
header_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30)
answer_headers = st.dictionaries(
    st.sampled_from(["Retry-After", "retry-after-ms", "X-Request-Id", "request-id", "Content-Type", "Location"]),
    st.one_of(header_text, st.sampled_from(["0", "1.5", "-3", "1e9", "Wed, 21 Oct 2015 07:28:00 GMT", "nan"])),
    max_size=3,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    call=st.sampled_from(sorted(CALLS)),
    status=st.sampled_from(
        [
            200,
            201,
            202,
            204,
            301,
            302,
            304,
            307,
            400,
            401,
            402,
            403,
            404,
            408,
            409,
            412,
            418,
            422,
            429,
            500,
            502,
            503,
            504,
            599,
        ]
    ),
    headers=answer_headers,
    body=answer_bodies,
)
def test_every_endpoint_gives_a_result_or_a_pacspace_error_whatever_the_answer(
    scripted: tuple[ScriptedServer, PacSpace], call: str, status: int, headers: dict[str, str], body: bytes
) -> None:
    server, pac = scripted
    server.answer = (status, headers, b"" if status in (204, 304) else body)
    result, error = outcome(lambda: CALLS[call](pac), PacSpaceError)
    if error is not None:
        assert len(str(error).splitlines()) == 1
        assert "fuzzSECRETvalue123" not in str(error) + repr(error)
    else:
        assert result is not None
        repr(result)


@pytest.mark.parametrize("status", [200, 500])
def test_a_deeply_nested_answer_gives_a_pacspace_error(scripted: tuple[ScriptedServer, PacSpace], status: int) -> None:
    server, pac = scripted
    server.answer = (status, {}, b"[" * 5000 + b"]" * 5000)
    with pytest.raises(PacSpaceError):
        pac.balance.usage()


# --- idempotency keys for every operation the SDK sends ----------------------------------------

RESOURCES = Path(pacspace_async.__file__).parent / "resources"
OPERATIONS = sorted(
    {match for path in RESOURCES.glob("*.py") for match in re.findall(r'operation="([^"]+)"', path.read_text())}
)
VISIBLE_ASCII = re.compile(r"[\x21-\x7e]+")


@functools.cache
def requester_for(environment: Environment) -> Any:
    return AsyncPacSpace(f"{environment.key_prefix}pubFuzz.fuzzSECRET")._requester


def test_the_operations_are_found() -> None:
    assert {"balance.delta", "balance.delta.batch", "balance.checkpoint"} <= set(OPERATIONS)


@FUZZ
@given(
    environment=st.sampled_from(list(Environment)),
    operation=st.sampled_from(OPERATIONS),
    caller_key=st.one_of(st.none(), st.text(max_size=300), st.sampled_from(["sandbox:k", "production:k", "sha256:x"])),
    reference=st.one_of(st.none(), st.text(max_size=300)),
)
def test_idempotency_keys_are_well_formed_for_every_operation_and_environment(
    environment: Environment, operation: str, caller_key: str | None, reference: str | None
) -> None:
    requester = requester_for(environment)
    key, error = outcome(
        lambda: requester.idempotency.for_call(caller_key=caller_key, reference=reference, operation=operation),
        InvalidArgumentError,
    )
    if key is None:
        # Only an empty value, or a key claiming the other environment's namespace, is refused.
        assert caller_key is not None or reference == ""
        assert "\n" not in str(error)
        return
    assert len(key) <= MAX_KEY_LENGTH
    assert VISIBLE_ASCII.fullmatch(key), key
    assert key.startswith(f"{environment.value}:")
    again = requester.idempotency.for_call(caller_key=caller_key, reference=reference, operation=operation)
    if caller_key is None and reference is None:
        assert again != key  # fresh
        assert key.startswith(f"{environment.value}:{operation}:")
    else:
        assert again == key  # deterministic
        # A key handed back (from a result or an error) is sent again unchanged.
        assert requester.idempotency.for_call(caller_key=key, reference=None, operation=operation) == key


# --- keys given as text or in a file -------------------------------------------------------------


@st.composite
def key_texts(draw: st.DrawFn) -> tuple[str, str]:
    """Text that may or may not be a valid key, and a secret-looking part of it.

    The part carries a ``~``, which no refusal message contains: finding it in one means the
    message echoed the input.
    """
    marked = "~" + draw(secrets_text)
    prefix = draw(st.sampled_from(["pk_test_", "pk_live_", "pk_", "sk_live_", "PK_TEST_", "", "pk_test_pk_live_"]))
    public = draw(st.text(max_size=12))
    separator = draw(st.sampled_from([".", "..", "", " .", ". ", ".\n"]))
    before = draw(st.sampled_from(["", " ", "\n", "\ufeff", "\t"]))
    after = draw(st.one_of(st.sampled_from(["", "\n", "\r\n", " ", ".x", "\x00"]), st.text(max_size=6)))
    return f"{before}{prefix}{public}{separator}{marked}{after}", marked


def _check_outcome(client: AsyncPacSpace | None, error: BaseException | None, marked: str) -> None:
    if client is None:
        # Refused: a configuration error that shows no part of the input.
        assert isinstance(error, ConfigurationError), repr(error)
        assert marked not in str(error)
        assert marked not in repr(error)
        assert "\n" not in str(error)
        return
    # Accepted: the key's real secret (after its one dot) is never shown.
    source = client._requester.credentials._source
    assert source is not None
    key = source.load_now() if isinstance(source, KeyProvider) else source
    secret = key.header_value().split(".", 1)[1]
    if len(secret) < 8:  # too short to tell apart from ordinary text
        return
    for shown in (repr(client), str(key), repr(key), key.redacted, repr(source)):
        assert secret not in shown.replace(key.key_id, "")


@FUZZ
@given(text_and_marked=key_texts(), environment=st.sampled_from([None, "sandbox", "production"]))
def test_a_key_given_as_text_builds_a_client_or_a_configuration_error(
    text_and_marked: tuple[str, str], environment: str | None
) -> None:
    text, marked = text_and_marked
    client, error = outcome(lambda: AsyncPacSpace(text, environment=environment), PacSpaceError)
    _check_outcome(client, error, marked)


@pytest.fixture(scope="module")
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("keys")


@FUZZ
@given(text_and_marked=key_texts(), encoding=st.sampled_from(["utf-8", "utf-16", "latin-1", "junk"]))
def test_a_key_file_of_any_bytes_builds_a_client_or_a_configuration_error(
    key_dir: Path, text_and_marked: tuple[str, str], encoding: str
) -> None:
    text, marked = text_and_marked
    path = key_dir / "key"
    if encoding == "junk":
        path.write_bytes(b"\xff\xfe\x00" + text.encode("utf-8", "surrogatepass"))
    else:
        path.write_bytes(text.encode(encoding, "replace"))
    client, error = outcome(lambda: AsyncPacSpace(KeyProvider.from_file(path)), PacSpaceError)
    _check_outcome(client, error, marked)


# Regression: found by this suite (pac.key_id was None for a provider until the first request,
# although the key is read at construction); fixed by passing the key read there to Credentials.
@pytest.mark.parametrize("kind", ["file", "env", "callable"])
def test_a_client_with_a_key_provider_shows_its_key_id_from_the_start(
    kind: str, key_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (key_dir / "provider-key").write_text("pk_test_pubProvider.providerSECRET\n")
    monkeypatch.setenv("PROVIDER_KEY", "pk_test_pubProvider.providerSECRET")
    provider = {
        "file": lambda: KeyProvider.from_file(key_dir / "provider-key"),
        "env": lambda: KeyProvider.from_env("PROVIDER_KEY"),
        "callable": lambda: KeyProvider.from_callable(lambda: "pk_test_pubProvider.providerSECRET"),
    }[kind]()
    client = AsyncPacSpace(provider)
    assert client.key_id == "pk_test_pubProvider"  # documented: None only without a key
