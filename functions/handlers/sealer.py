"""The sealer function: on a schedule, archives each chain's new audit entries to the Object Lock
bucket and signs its head (functions/audit/sealing.py). The only function that may use the seal
key or write the archive."""

from __future__ import annotations

from collections import Counter
from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.audit.sealing import AuditSealer
from functions.core.observability import logger
from functions.handlers.wiring import audit_log, audit_seals, directory

PLATFORM_CHAIN = "platform"


def chains() -> list[str]:
    """Every department's chain (the platform's is a department's too, made at bootstrap)."""
    return sorted({PLATFORM_CHAIN, *(department.department_id for department in directory().list_departments())})


@cache
def sealer() -> AuditSealer:
    return AuditSealer(audit_log(), *audit_seals(), chains)


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    outcomes = sealer().seal_all()
    logger.info("audit chains sealed", extra={"outcomes": outcomes})
    return dict(Counter(outcomes.values()))
