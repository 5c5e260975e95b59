"""The PacSpace emulator: the Balance API as a real local HTTP server, for tests and demos.

>>> from pacspace_async.testing import Emulator, Faults
>>> async with Emulator(faults=Faults(rate=0.3)) as emu:            # doctest: +SKIP
...     async with emu.client() as pac:
...         await pac.balance.emit(customer_id="cust_1", delta=Decimal("-1"), reason="usage")

Needs ``pip install 'pacspace[emulator]'`` (pycryptodome, for keccak-256 proofs). pytest
fixtures: ``pacspace_emulator``, ``pacspace_client``, ``pacspace_emulator_thread`` and
``pacspace_sync_client`` (see `pacspace_async.testing.pytest_plugin`).
"""

from ._deliveries import DeliveryAttempt, WebhookDeliveryRecord
from ._emulator import Emulator
from ._faults import FAULT_KINDS, Faults, HeldAnswers
from ._keys import PERMISSIONS
from ._merkle import canonical_json, keccak256, leaf_hash, merkle_root, node_hash
from ._outage import OUTAGE_KINDS, Outage
from ._records import EmulatedCheckpoint, EmulatedDelta, RequestRecord
from ._settings import FailRule

__all__ = [
    "FAULT_KINDS",
    "OUTAGE_KINDS",
    "PERMISSIONS",
    "DeliveryAttempt",
    "EmulatedCheckpoint",
    "EmulatedDelta",
    "Emulator",
    "FailRule",
    "Faults",
    "HeldAnswers",
    "Outage",
    "RequestRecord",
    "WebhookDeliveryRecord",
    "canonical_json",
    "keccak256",
    "leaf_hash",
    "merkle_root",
    "node_hash",
]
