"""Typed models of PacSpace's answers (attrs, frozen, snake_case; the decoded JSON in ``.raw``)."""

from .balance import DeltaRecord, DeltaStatus
from .verify import ProofVerification, VerificationSummary

__all__ = ["DeltaRecord", "DeltaStatus", "ProofVerification", "VerificationSummary"]
