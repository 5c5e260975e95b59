"""The published Merkle vectors: keccak-256 leaves, nodes and roots, and the proofs the emulator hands out."""

from __future__ import annotations

from decimal import Decimal

import pytest

from pacspace_async import AsyncPacSpace, DeltaInput
from pacspace_async.testing import Emulator, canonical_json, keccak256, leaf_hash, merkle_root, node_hash
from pacspace_async.testing._merkle import ZERO_HASH, from_hex, to_hex

ITEMS = [
    {
        "customerId": "cust_8xKj2m",
        "delta": Decimal("-42.50"),
        "metadata": {"plan": "growth"},
        "reason": "usage_charge",
        "referenceId": "inv_20260211_001",
    },
    {"customerId": "cust_8xKj2m", "delta": 100, "reason": "top_up"},
    {"customerId": "cust_8xKj2m", "delta": Decimal("-1"), "reason": "api_call", "referenceId": "r3"},
]
LEAVES = [
    "0xd32b354e633dbd5f004b980488b3c7c08af67cc76ce4d37ad51361d86c6c96e3",
    "0x82a0ca42f9bdca3fb28a8f6d68bb40669282ad02d05c4d96ed40ceb569f99f1e",
    "0x9a548d38f6d973965765550be450174b2cefb9dbef3972e2ab10711f975d6a83",
]


def test_keccak_is_keccak_not_sha3() -> None:
    assert keccak256(b"").hex() == "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    assert keccak256(b"abc").hex() == "4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45"


@pytest.mark.parametrize(("item", "leaf"), list(zip(ITEMS, LEAVES, strict=True)))
def test_published_leaf_vectors(item: dict[str, object], leaf: str) -> None:
    assert to_hex(leaf_hash(item)) == leaf


def test_roots_use_raw_byte_concatenation() -> None:
    leaves = [from_hex(leaf) for leaf in LEAVES]
    # The node rule the emulator implements: node = keccak("pacspace:node:v1:" + left bytes + right bytes).
    assert to_hex(merkle_root(leaves[:2])) == "0x638b0eaeb7883710f8fff6a818765331b762f17f54c8714ff0cd898bbf9bc48c"
    assert to_hex(merkle_root(leaves)) == "0x628a291cede58e1a3413bf5f7b007e00c5724a96e65d23e28a36f1f2024e1266"
    assert merkle_root(leaves) == node_hash(node_hash(leaves[0], leaves[1]), node_hash(leaves[2], leaves[2]))
    assert merkle_root(leaves[:1]) == leaves[0]
    assert merkle_root([]) == ZERO_HASH


def test_canonical_json_sorts_keys_and_writes_exact_numbers() -> None:
    text = canonical_json({"b": [Decimal("1.50"), Decimal("1E+2"), 3], "a": {"z": "é", "y": None, "x": True}})
    assert text == '{"a":{"x":true,"y":null,"z":"é"},"b":[1.5,100,3]}'


async def test_emitted_deltas_carry_published_hashes_and_a_proof_chain() -> None:
    async with Emulator(verify_delay=None) as emu, emu.client() as pac:
        first = await pac.balance.emit(
            customer_id="cust_8xKj2m",
            delta=Decimal("-42.50"),
            reason="usage_charge",
            reference_id="inv_20260211_001",
            metadata={"plan": "growth"},
        )
        second = await pac.balance.emit(customer_id="cust_8xKj2m", delta=100, reason="top_up")
        batch = await pac.balance.emit_batch(
            [
                DeltaInput(customer_id="cust_8xKj2m", delta=-1, reason="api_call", reference_id="r3"),
                DeltaInput(customer_id="cust_other", delta=5, reason="top_up"),
            ]
        )
        assert first.raw["contentHash"] == LEAVES[0]
        assert second.raw["contentHash"] == LEAVES[1]
        # Each proof hash is node(previousProofHash, batch root), chained per customer.
        assert first.raw["previousProofHash"] == to_hex(ZERO_HASH)
        assert first.receipt_id == first.raw["proofHash"] == to_hex(node_hash(ZERO_HASH, from_hex(LEAVES[0])))
        assert second.raw["previousProofHash"] == first.receipt_id
        stored = emu.deltas(customer_id="cust_8xKj2m")
        assert [d.record_id for d in stored] == [first.record_id, second.record_id, batch.results[0].record_id]
        third = stored[2]
        assert third.content_hash == LEAVES[2]
        assert third.previous_proof_hash == second.receipt_id
        batch_root = merkle_root(from_hex(h) for h in third.item_hashes)
        assert third.item_hashes[0] == LEAVES[2]
        assert len(third.item_hashes) == 2
        assert third.proof_hash == to_hex(node_hash(from_hex(second.receipt_id or ""), batch_root))
        assert [d.sequence_number for d in stored] == [1, 2, 3]

        emu.settle()
        checkpoint = await pac.checkpoints.create(customer_id="cust_8xKj2m")
        assert checkpoint.proof_root == to_hex(merkle_root(from_hex(leaf) for leaf in LEAVES))
        async with AsyncPacSpace(base_urls=emu.base_urls, environment="sandbox") as public_client:
            public = await public_client.verify(first.receipt_id or "")
        assert public.verified
        assert public.records[0]["contentHash"] == LEAVES[0]
