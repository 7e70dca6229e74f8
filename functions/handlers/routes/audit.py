"""Audit routes: a department's stewards read its hash-chained trail."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from functions.governance.audit import AuditPage, AuditSealAnswer
from functions.handlers.routes.context import caller, documented, request_id
from functions.handlers.services import audit

router = APIGatewayRouter()


@router.get(
    "/audit", summary="Entries of a department's audit chain, in order", tags=["audit"], responses=documented(AuditPage, 403)
)
def read_audit(
    department: Annotated[str | None, Query(pattern=r"^[a-z][a-z0-9-]{1,31}$", description="Default: the caller's")] = None,
    after: Annotated[int, Query(ge=0, description="Return entries after this sequence number")] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> AuditPage:
    who = caller(router)
    return audit().read(who, department or who.department_id, after, limit, request_id(router))


@router.get(
    "/audit/seal",
    summary="A chain's latest seal, signed by the platform's sealer, and the seal key's public half",
    tags=["audit"],
    responses=documented(AuditSealAnswer, 403),
)
def read_audit_seal(
    department: Annotated[str | None, Query(pattern=r"^[a-z][a-z0-9-]{1,31}$", description="Default: the caller's")] = None,
) -> AuditSealAnswer:
    who = caller(router)
    return audit().seal(who, department or who.department_id, request_id(router))
