"""Keccak-256 proofs as the Balance API computes them: leaves, nodes, Merkle roots, and the chain.

- leaf  = keccak256(b"pacspace:item:v1:" + canonical JSON of the item, UTF-8)
- node  = keccak256(b"pacspace:node:v1:" + left + right), where `left` and `right` are the raw
  32-byte digests (the API's documentation leaves open whether raw bytes or hex text are
  joined; the emulator joins raw bytes, and says so here so a real proof can be checked)
- root  = pair left to right in insertion order; an odd level repeats its last node; one leaf is
  its own root; no leaves give 32 zero bytes

Canonical JSON: keys sorted at every level, no whitespace (``","`` and ``":"``), non-ASCII kept
as UTF-8 (like ``JSON.stringify``), numbers without exponent and without trailing zeros
(``-42.50`` → ``-42.5``, ``1E+2`` → ``100``).

Keccak-256 is the original Keccak padding (Ethereum's), not SHA3-256, and comes from
pycryptodome, installed by ``pip install 'pacspace[emulator]'``. It is imported on first use,
so ``import pacspace_async`` never needs it.
"""

from __future__ import annotations

import decimal
import importlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

__all__ = [
    "ITEM_PREFIX",
    "NODE_PREFIX",
    "ZERO_HASH",
    "canonical_json",
    "chain_proof",
    "exact_sum",
    "from_hex",
    "keccak256",
    "leaf_hash",
    "merkle_root",
    "node_hash",
    "number_text",
    "require_keccak",
    "to_hex",
]

ITEM_PREFIX = b"pacspace:item:v1:"
NODE_PREFIX = b"pacspace:node:v1:"
ZERO_HASH = bytes(32)

_INSTALL_HINT = (
    "the PacSpace emulator computes keccak-256 proofs with pycryptodome, which is not installed: "
    "pip install 'pacspace[emulator]'"
)
_keccak_new: Callable[..., Any] | None = None


def require_keccak() -> None:
    """Import pycryptodome's keccak now; raise ImportError naming the install line if missing."""
    global _keccak_new
    if _keccak_new is not None:
        return
    try:
        module = importlib.import_module("Crypto.Hash.keccak")
    except ImportError as exc:
        raise ImportError(_INSTALL_HINT) from exc
    _keccak_new = module.new


def keccak256(data: bytes) -> bytes:
    """Keccak-256 (``0x01`` padding): ``keccak256(b"")`` is ``c5d24601...5d85a470``."""
    if _keccak_new is None:
        require_keccak()
    assert _keccak_new is not None
    digest: bytes = _keccak_new(digest_bits=256, data=data).digest()
    return digest


def to_hex(digest: bytes) -> str:
    """``0x`` and 64 lowercase hex digits."""
    return "0x" + digest.hex()


def from_hex(text: str) -> bytes:
    """The 32 bytes of ``0x``-prefixed hex (ValueError otherwise)."""
    if not isinstance(text, str) or not text.startswith("0x") or len(text) != 66:
        raise ValueError(f"not a 0x-prefixed 32-byte hex value: {text!r}")
    return bytes.fromhex(text[2:])


# Money is never rounded: sums and normal forms use as many digits as the numbers have (the
# default context keeps 28 and would round, and then hash, a longer amount).
EXACT = decimal.Context(prec=decimal.MAX_PREC, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN)


def exact_sum(values: Iterable[Decimal], start: Decimal = Decimal(0)) -> Decimal:
    """`start` plus `values`, never rounded.

    Exact only here, not for a whole request: a wider context set on the request's task would
    be copied into the timers and tasks it starts, and into a user's `fail_rule`.
    """
    with decimal.localcontext(EXACT):
        return sum(values, start)


def number_text(value: Decimal | int) -> str:
    """A JSON number with no exponent and no trailing zeros: ``-42.50`` → ``-42.5``."""
    if isinstance(value, bool):
        raise TypeError("a bool is not a number")
    if isinstance(value, int):
        return str(value)
    if not value.is_finite():
        raise ValueError(f"{value} is not a finite number")
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(EXACT), "f")


def _encode(value: Any, out: list[str], sort_keys: bool, default: Callable[[Any], Any] | None) -> None:
    if value is None or isinstance(value, bool):
        out.append(json.dumps(value))
    elif isinstance(value, (int, Decimal)):
        out.append(number_text(value))
    elif isinstance(value, float):
        out.append(number_text(Decimal(repr(value))))
    elif isinstance(value, str):
        out.append(json.dumps(value, ensure_ascii=False))
    elif isinstance(value, Mapping):
        out.append("{")
        for index, key in enumerate(sorted(value) if sort_keys else value):
            if not isinstance(key, str):
                raise TypeError(f"JSON object keys must be strings, got {key!r}")
            if index:
                out.append(",")
            out.append(json.dumps(key, ensure_ascii=False))
            out.append(":")
            _encode(value[key], out, sort_keys, default)
        out.append("}")
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _encode(item, out, sort_keys, default)
        out.append("]")
    elif default is not None:
        _encode(default(value), out, sort_keys, None)
    else:
        raise TypeError(f"{type(value).__name__} is not JSON")


def json_text(value: Any, *, sort_keys: bool = False, default: Callable[[Any], Any] | None = None) -> str:
    """Compact JSON with exact numbers; `default` turns other objects into JSON values."""
    out: list[str] = []
    _encode(value, out, sort_keys, default)
    return "".join(out)


def canonical_json(value: Any) -> str:
    """Sorted keys, compact, UTF-8 text, exact numbers (see the module docstring)."""
    return json_text(value, sort_keys=True)


def leaf_hash(item: Mapping[str, Any]) -> bytes:
    """``keccak256("pacspace:item:v1:" + canonicalJSON(item))``: a delta's content hash."""
    return keccak256(ITEM_PREFIX + canonical_json(item).encode("utf-8"))


def node_hash(left: bytes, right: bytes) -> bytes:
    """``keccak256("pacspace:node:v1:" + left + right)`` over the raw 32-byte digests."""
    return keccak256(NODE_PREFIX + left + right)


def merkle_root(leaves: Iterable[bytes]) -> bytes:
    """The root over leaf digests in order; odd levels repeat their last node; empty → zeros."""
    level: Sequence[bytes] = list(leaves)
    if not level:
        return ZERO_HASH
    while len(level) > 1:
        if len(level) % 2:
            level = [*level, level[-1]]
        level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def chain_proof(previous_proof: bytes, batch_root: bytes) -> bytes:
    """A delta's proof hash: its batch's root chained to the customer's previous proof hash.

    The API documents that a proof hash covers the verification batch and links to the previous
    one, not how; the emulator uses ``node(previousProofHash, batchRoot)``.
    """
    return node_hash(previous_proof, batch_root)
