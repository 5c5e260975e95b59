"""Typed models of PacSpace's answers (attrs, frozen, snake_case; the decoded JSON in ``.raw``)."""

from .balance import (
    BalanceComparison,
    BatchItemResult,
    BatchResult,
    DeltaInput,
    DeltaRecord,
    DeltaStatus,
    DerivedBalance,
    Receipt,
    ScopeLimits,
    SequenceGaps,
    Usage,
)
from .checkpoints import Checkpoint
from .customers import Customer, CustomerListItem, CustomersSummary
from .summaries import FlushReport, SummaryFailure, SummaryProfile, SummaryQueueState
from .verify import ProofVerification, VerificationSummary
from .webhook_deliveries import WebhookDelivery

__all__ = [
    "BalanceComparison",
    "BatchItemResult",
    "BatchResult",
    "Checkpoint",
    "Customer",
    "CustomerListItem",
    "CustomersSummary",
    "DeltaInput",
    "DeltaRecord",
    "DeltaStatus",
    "DerivedBalance",
    "FlushReport",
    "ProofVerification",
    "Receipt",
    "ScopeLimits",
    "SequenceGaps",
    "SummaryFailure",
    "SummaryProfile",
    "SummaryQueueState",
    "Usage",
    "VerificationSummary",
    "WebhookDelivery",
]
