"""Public proof verification: ``GET /api/v1/verify/{proofRoot}``, never with a key."""

from __future__ import annotations

from collections.abc import Mapping

from .._environments import Environment
from .._errors import InvalidArgumentError
from .._models import structure
from ..models.verify import ProofVerification
from ._args import path_segment
from ._base import AsyncAPIResource, call_options

__all__ = ["AsyncVerification", "VERIFY_SOURCES"]

VERIFY_SOURCES = ("db", "chain", "both")


class AsyncVerification(AsyncAPIResource):
    async def verify(
        self,
        proof_root: str,
        *,
        source: str | None = None,
        environment: Environment | str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> ProofVerification:
        if source is not None and source not in VERIFY_SOURCES:
            raise InvalidArgumentError(f"source must be one of {', '.join(VERIFY_SOURCES)}, got {source!r}")
        response = await self._get(
            f"/api/v1/verify/{path_segment('proof_root', proof_root)}",
            call_options(timeout, max_retries, extra_headers),
            query={"source": source},
            authenticated=False,
            environment=None if environment is None else Environment.coerce(environment),
        )
        return structure(response.data, ProofVerification, of=response)
