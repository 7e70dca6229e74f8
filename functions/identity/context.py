"""The verified caller as it travels from the authorizer to the API function (API Gateway's
authorizer context: flat strings only). Kept apart from token verification so the API function
never imports PyJWT or cryptography."""

from __future__ import annotations

from typing import Any

from functions.identity.models import Caller


def authorizer_context(caller: Caller) -> dict[str, str]:
    return {
        "department_id": caller.department_id,
        "principal_id": caller.principal_id,
        "roles": ",".join(caller.roles),
        "department_status": caller.department_status,
        "jti": caller.jti,
        "body_sha256": caller.body_sha256,
    }


def caller_from_context(context: dict[str, Any]) -> Caller:
    return Caller(
        department_id=str(context["department_id"]),
        principal_id=str(context["principal_id"]),
        roles=tuple(r for r in str(context.get("roles", "")).split(",") if r),
        department_status=str(context.get("department_status", "active")),
        jti=str(context["jti"]),
        body_sha256=str(context["body_sha256"]),
    )
