"""Idempotency keys, namespaced by environment (docs/architecture.md: Idempotency)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pacspace_async._environments import Environment
from pacspace_async._errors import ErrorAction, InvalidArgumentError
from pacspace_async._idempotency import MAX_KEY_LENGTH, IdempotencyKeys

SANDBOX = IdempotencyKeys(Environment.SANDBOX)
PRODUCTION = IdempotencyKeys(Environment.PRODUCTION)
VISIBLE_ASCII = re.compile(r"[\x21-\x7e]+")
OPERATION = "balance.delta"  # the operation the SDK uses (resources/balance.py)
operations = st.sampled_from([OPERATION])


def assert_well_formed(key: str, keys: IdempotencyKeys) -> None:
    assert len(key) <= MAX_KEY_LENGTH
    assert VISIBLE_ASCII.fullmatch(key), key
    assert key.startswith(keys.prefix)


def test_max_length_and_prefixes() -> None:
    assert MAX_KEY_LENGTH == 255
    assert SANDBOX.prefix == "sandbox:"
    assert PRODUCTION.prefix == "production:"


def test_same_reference_gives_the_same_key() -> None:
    first = SANDBOX.for_reference("inv_1", operation=OPERATION)
    assert first == IdempotencyKeys(Environment.SANDBOX).for_reference("inv_1", operation=OPERATION)
    assert first == "sandbox:balance.delta:inv_1"


def test_same_reference_differs_between_environments() -> None:
    sandbox = SANDBOX.for_reference("inv_1", operation=OPERATION)
    production = PRODUCTION.for_reference("inv_1", operation=OPERATION)
    assert sandbox != production
    assert production == "production:balance.delta:inv_1"


def test_different_operations_give_different_keys() -> None:
    assert SANDBOX.for_reference("r", operation="a.b") != SANDBOX.for_reference("r", operation="a.c")


@pytest.mark.parametrize(
    "reference",
    [
        "x" * 129,
        "inv 1",
        "inv/1",
        "caf\u00e9",
        "line\nbreak",
        "inv_1\n",
        "tab\there",
        "\x00",
        "\U0001f600" * 200,
        "a" * 10_000,
    ],
)
def test_long_or_unsafe_references_are_hashed(reference: str) -> None:
    key = SANDBOX.for_reference(reference, operation=OPERATION)
    assert_well_formed(key, SANDBOX)
    assert re.fullmatch(r"sandbox:balance\.delta:sha256:[0-9a-f]{64}", key), key
    assert key == SANDBOX.for_reference(reference, operation=OPERATION)


def test_readable_reference_at_the_limit_is_kept() -> None:
    reference = "A-z_0.9:" * 16  # 128 characters of the readable alphabet
    assert SANDBOX.for_reference(reference, operation=OPERATION) == f"sandbox:balance.delta:{reference}"


def test_similar_unsafe_references_do_not_collide() -> None:
    assert SANDBOX.for_reference("inv 1", operation=OPERATION) != SANDBOX.for_reference("inv 2", operation=OPERATION)


@pytest.mark.parametrize("reference", ["", None, 12, b"inv_1"])
def test_empty_or_non_string_reference_is_refused(reference: object) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        SANDBOX.for_reference(reference, operation=OPERATION)  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError)
    assert info.value.action is ErrorAction.FIX_INPUT


@given(reference=st.text(min_size=1, max_size=400), operation=operations)
def test_reference_keys_are_short_visible_ascii_and_deterministic(reference: str, operation: str) -> None:
    sandbox = SANDBOX.for_reference(reference, operation=operation)
    production = PRODUCTION.for_reference(reference, operation=operation)
    assert_well_formed(sandbox, SANDBOX)
    assert_well_formed(production, PRODUCTION)
    assert sandbox != production
    assert sandbox == SANDBOX.for_reference(reference, operation=operation)


@given(a=st.text(min_size=1, max_size=200), b=st.text(min_size=1, max_size=200))
def test_distinct_references_give_distinct_keys(a: str, b: str) -> None:
    if a != b:
        assert SANDBOX.for_reference(a, operation=OPERATION) != SANDBOX.for_reference(b, operation=OPERATION)


def test_a_reference_cannot_forge_the_hashed_key_of_another() -> None:
    # Regression: "sha256:<hex>" is readable, and used to be kept verbatim, equal to another key.
    hashed = SANDBOX.for_reference("inv 1", operation=OPERATION)  # hashed: contains a space
    forged = hashed.removeprefix("sandbox:balance.delta:")  # "sha256:<64 hex>", all readable characters
    assert forged != "inv 1"
    assert SANDBOX.for_reference(forged, operation=OPERATION) != hashed


def test_fresh_keys_differ_and_carry_the_prefix() -> None:
    keys = {SANDBOX.fresh(OPERATION) for _ in range(50)}
    assert len(keys) == 50
    for key in keys:
        assert_well_formed(key, SANDBOX)
        assert key.startswith("sandbox:balance.delta:")
    assert PRODUCTION.fresh(OPERATION).startswith("production:balance.delta:")


def test_a_fresh_key_carries_128_random_bits_as_hex() -> None:
    tail = SANDBOX.fresh(OPERATION).removeprefix("sandbox:balance.delta:")
    assert re.fullmatch(r"[0-9a-f]{32}", tail), tail


# --- caller keys --------------------------------------------------------------------------


def test_from_caller_plain_key_gets_the_prefix() -> None:
    assert SANDBOX.from_caller("my-key-1") == "sandbox:my-key-1"
    assert PRODUCTION.from_caller("my-key-1") == "production:my-key-1"


def test_from_caller_passes_through_a_key_already_namespaced_for_this_environment() -> None:
    for key in (
        SANDBOX.for_reference("inv_1", operation=OPERATION),
        SANDBOX.for_reference("inv 1", operation=OPERATION),
        SANDBOX.fresh(OPERATION),
        SANDBOX.from_caller("x" * 1000),
        "sandbox:anything",
    ):
        # retrying with error.idempotency_key sends the very same key
        assert SANDBOX.from_caller(key) == key


def test_from_caller_refuses_a_key_of_the_other_environment() -> None:
    production_key = PRODUCTION.for_reference("inv_1", operation=OPERATION)
    with pytest.raises(InvalidArgumentError, match="production"):
        SANDBOX.from_caller(production_key)
    with pytest.raises(InvalidArgumentError, match="sandbox"):
        PRODUCTION.from_caller(SANDBOX.fresh(OPERATION))


@pytest.mark.parametrize("key", ["", None, 5, b"k"])
def test_from_caller_refuses_empty_or_non_string(key: object) -> None:
    with pytest.raises(InvalidArgumentError):
        SANDBOX.from_caller(key)  # type: ignore[arg-type]


def test_from_caller_refuses_an_overlong_key_with_this_environments_prefix() -> None:
    with pytest.raises(InvalidArgumentError, match=str(MAX_KEY_LENGTH)):
        SANDBOX.from_caller("sandbox:" + "x" * MAX_KEY_LENGTH)
    with pytest.raises(InvalidArgumentError):
        SANDBOX.from_caller("sandbox:has space")


@pytest.mark.parametrize("key", ["k" * 300, "k" * (MAX_KEY_LENGTH - len("sandbox:") + 1), "with space", "caf\u00e9"])
def test_from_caller_long_or_unsafe_key_is_hashed(key: str) -> None:
    sent = SANDBOX.from_caller(key)
    assert_well_formed(sent, SANDBOX)
    assert re.fullmatch(r"sandbox:sha256:[0-9a-f]{64}", sent), sent
    assert sent == SANDBOX.from_caller(key)
    assert sent != SANDBOX.from_caller(key + "!")


def test_from_caller_longest_key_that_fits_is_kept() -> None:
    key = "k" * (MAX_KEY_LENGTH - len("sandbox:"))
    assert SANDBOX.from_caller(key) == "sandbox:" + key


def test_a_caller_key_cannot_forge_the_hashed_key_of_another() -> None:
    long_key = "order-" + "x" * 300
    hashed = SANDBOX.from_caller(long_key)  # sandbox:sha256:<64 hex>
    forged = hashed.removeprefix("sandbox:")  # a different caller key: "sha256:<64 hex>"
    assert forged != long_key
    assert SANDBOX.from_caller(forged) != hashed


@given(st.text(min_size=1, max_size=400))
def test_from_caller_is_well_formed_and_idempotent(key: str) -> None:
    try:
        sent = SANDBOX.from_caller(key)
    except InvalidArgumentError:
        # only keys claiming an environment's namespace may be refused
        assert key.startswith(("sandbox:", "production:"))
        return
    assert_well_formed(sent, SANDBOX)
    assert SANDBOX.from_caller(sent) == sent


def test_a_scope_keeps_equal_references_of_different_customers_apart() -> None:
    a = SANDBOX.for_reference("inv_1", operation="balance.delta", scope="cust_A")
    b = SANDBOX.for_reference("inv_1", operation="balance.delta", scope="cust_B")
    assert a == "sandbox:balance.delta:cust_A:inv_1"
    assert a != b
    # a customer id holding ':' could be read two ways, so it is hashed
    odd = SANDBOX.for_reference("c", operation="balance.delta", scope="a:b")
    assert odd.startswith("sandbox:balance.delta:sha256:")
    assert odd != SANDBOX.for_reference("b:c", operation="balance.delta", scope="a")
    assert SANDBOX.for_call(operation="balance.delta", reference="inv_1", scope="cust_A") == a
    assert SANDBOX.for_call(operation="balance.delta", caller_key="mine") == "sandbox:mine"
    assert SANDBOX.for_call(operation="balance.delta").startswith("sandbox:balance.delta:")
