"""Directory routes: the platform admin registers departments, principals and keys; anyone asks who they are."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from functions.governance.directory import (
    DepartmentCreate,
    DepartmentDetail,
    DepartmentStatusChange,
    Identity,
    KeyAdd,
    PrincipalPut,
    PrincipalStatusChange,
)
from functions.handlers.routes.context import caller, created, documented, request_id
from functions.handlers.services import directory_service
from functions.identity.models import Department, Principal, PublicKey

router = APIGatewayRouter()

DepartmentPath = Annotated[str, Path(pattern=r"^[a-z][a-z0-9-]{1,31}$")]
PrincipalPath = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9._-]{0,62}$")]
KeyPath = Annotated[str, Path(pattern=r"^[A-Za-z0-9._-]{1,128}$")]


@router.get(
    "/me",
    summary="The caller's identity and roles, as the directory holds them",
    tags=["directory"],
    responses=documented(Identity, 403),
)
def whoami() -> Identity:
    return directory_service().whoami(caller(router), request_id(router))


@router.post(
    "/admin/departments", summary="Register a department", tags=["admin"], responses=documented(Department, 403, 409, status=201)
)
def register_department(request: DepartmentCreate) -> Response[Department]:
    department = directory_service().register_department(caller(router), request, request_id(router))
    return created(department)


@router.get("/admin/departments", summary="List departments", tags=["admin"], responses=documented(list[Department], 403))
def list_departments() -> list[Department]:
    return directory_service().list_departments(caller(router), request_id(router))


@router.get(
    "/admin/departments/<department_id>",
    summary="A department with its principals and keys",
    tags=["admin"],
    responses=documented(DepartmentDetail, 403, 404),
)
def describe_department(department_id: DepartmentPath) -> DepartmentDetail:
    return directory_service().describe_department(caller(router), department_id, request_id(router))


@router.patch(
    "/admin/departments/<department_id>",
    summary="Suspend or reinstate a department",
    tags=["admin"],
    responses=documented(Department, 400, 403, 404),
)
def set_department_status(department_id: DepartmentPath, change: DepartmentStatusChange) -> Department:
    return directory_service().set_department_status(caller(router), department_id, change, request_id(router))


@router.put(
    "/admin/departments/<department_id>/principals/<principal_id>",
    summary="Register a principal or change its roles",
    tags=["admin"],
    responses=documented(Principal, 400, 403, 404),
)
def put_principal(department_id: DepartmentPath, principal_id: PrincipalPath, request: PrincipalPut) -> Principal:
    return directory_service().put_principal(caller(router), department_id, principal_id, request, request_id(router))


@router.patch(
    "/admin/departments/<department_id>/principals/<principal_id>",
    summary="Suspend or reinstate a principal",
    tags=["admin"],
    responses=documented(Principal, 400, 403, 404),
)
def set_principal_status(department_id: DepartmentPath, principal_id: PrincipalPath, change: PrincipalStatusChange) -> Principal:
    return directory_service().set_principal_status(caller(router), department_id, principal_id, change, request_id(router))


@router.post(
    "/admin/departments/<department_id>/principals/<principal_id>/keys",
    summary="Register a public key (JWK) for a principal",
    tags=["admin"],
    responses=documented(PublicKey, 400, 403, 404, 409, status=201),
)
def add_key(department_id: DepartmentPath, principal_id: PrincipalPath, request: KeyAdd) -> Response[PublicKey]:
    key = directory_service().add_key(caller(router), department_id, principal_id, request, request_id(router))
    return created(key)


@router.delete(
    "/admin/departments/<department_id>/keys/<kid>",
    summary="Retire a key",
    tags=["admin"],
    responses=documented(None, 403, 404, status=204),
)
def retire_key(department_id: DepartmentPath, kid: KeyPath) -> Response[None]:
    directory_service().retire_key(caller(router), department_id, kid, request_id(router))
    return Response(status_code=204, body=None)
