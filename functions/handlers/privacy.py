"""The privacy function: differentially private releases of bounded, grouped aggregates (OpenDP, in a
layer of its own). Called synchronously by the functions that build aggregated views; it reads and
writes nothing, and returns only the noisy groups (functions/privacy/release.py)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.core.observability import logger
from functions.privacy.release import ReleaseRequest, packed, release, unpacked


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = release(ReleaseRequest.model_validate(unpacked(event)))
    logger.info("private release", extra={"groups": len(result.counts), "epsilon": result.epsilon})
    return packed(result.model_dump_json())
