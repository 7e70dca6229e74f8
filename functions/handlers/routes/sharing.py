"""Sharing routes: access requests, stewards' decisions, grants, governed reads, and the inbox."""

from __future__ import annotations

from typing import Annotated, Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from functions.handlers.routes.context import DatasetPath, caller, created, documented, public_endpoint, request_id
from functions.handlers.services import inbox, recipients, sharing
from functions.notifications.models import NotificationPage
from functions.sharing.models import (
    AccessRequest,
    AccessRequestCreate,
    AccessRequestList,
    Approval,
    DataAccess,
    Denial,
    Grant,
    GrantCreate,
    GrantList,
    TagGrantCreate,
)
from functions.sharing.recipients import ShareProfile, ShareRecipient, ShareRecipientCreate, ShareRecipientList

router = APIGatewayRouter()

RequestPath = Annotated[str, Path(pattern=r"^r[0-9a-f]{24}$")]
GrantPath = Annotated[str, Path(pattern=r"^g[0-9a-f]{24}$")]
RecipientPath = Annotated[str, Path(pattern=r"^s[0-9a-f]{24}$")]


@router.post(
    "/datasets/<dataset_id>/access-requests",
    summary="Ask the owner's stewards for access",
    tags=["sharing"],
    responses=documented(AccessRequest, 400, 403, 404, status=201),
)
def request_access(dataset_id: DatasetPath, request: AccessRequestCreate) -> Response[AccessRequest]:
    return created(sharing().request_access(caller(router), dataset_id, request, request_id(router)))


@router.get(
    "/access-requests",
    summary="Pending access requests to the caller's department (stewards)",
    tags=["sharing"],
    responses=documented(AccessRequestList, 403),
)
def pending_requests(
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
) -> AccessRequestList:
    return sharing().pending_requests(caller(router), request_id(router), limit, cursor)


@router.post(
    "/datasets/<dataset_id>/access-requests/<access_request_id>/approve",
    summary="Approve as asked or narrowed",
    tags=["sharing"],
    responses=documented(Grant, 400, 403, 404, 409, status=201),
)
def approve(dataset_id: DatasetPath, access_request_id: RequestPath, approval: Approval) -> Response[Grant]:
    return created(sharing().approve(caller(router), dataset_id, access_request_id, approval, request_id(router)))


@router.post(
    "/datasets/<dataset_id>/access-requests/<access_request_id>/deny",
    summary="Deny with a reason",
    tags=["sharing"],
    responses=documented(AccessRequest, 403, 404, 409),
)
def deny(dataset_id: DatasetPath, access_request_id: RequestPath, denial: Denial) -> AccessRequest:
    return sharing().deny(caller(router), dataset_id, access_request_id, denial, request_id(router))


@router.post(
    "/datasets/<dataset_id>/grants",
    summary="Grant directly (stewards of the owner)",
    tags=["sharing"],
    responses=documented(Grant, 400, 403, 404, status=201),
)
def grant(dataset_id: DatasetPath, request: GrantCreate) -> Response[Grant]:
    return created(sharing().grant(caller(router), dataset_id, request, request_id(router)))


@router.get(
    "/datasets/<dataset_id>/grants",
    summary="A dataset's grants (stewards of the owner)",
    tags=["sharing"],
    responses=documented(GrantList, 403, 404),
)
def grants(dataset_id: DatasetPath) -> GrantList:
    return GrantList(grants=sharing().grants(caller(router), dataset_id, request_id(router)))


@router.delete(
    "/datasets/<dataset_id>/grants/<grant_id>",
    summary="Revoke a grant: effective on the next request",
    tags=["sharing"],
    responses=documented(Grant, 403, 404, 409),
)
def revoke(dataset_id: DatasetPath, grant_id: GrantPath) -> Grant:
    return sharing().revoke(caller(router), dataset_id, grant_id, request_id(router))


@router.get(
    "/datasets/<dataset_id>/data",
    summary="Presigned URLs to read a version (whole, or the grant's view)",
    tags=["sharing"],
    responses=documented(DataAccess, 403, 404),
)
def read_data(
    dataset_id: DatasetPath,
    version: Annotated[int | None, Query(ge=1)] = None,
    grant_id: Annotated[str | None, Query(pattern=r"^g[0-9a-f]{24}$")] = None,
    linkage: Annotated[
        str | None,
        Query(
            pattern=r"^g[0-9a-f]{24}$",
            description="A linkage grant your department holds: your own dataset with the identifiers it links re-keyed "
            "into that grant's linkage space",
        ),
    ] = None,
    decrypt: Annotated[
        str | None,
        Query(
            pattern=r"^[a-z_][a-z0-9_]{0,62}(,[a-z_][a-z0-9_]{0,62}){0,49}$",
            description="The owner only: encrypted columns to read in clear, comma-separated (audited)",
        ),
    ] = None,
) -> DataAccess:
    columns = decrypt.split(",") if decrypt else None
    return sharing().read(caller(router), dataset_id, version, grant_id, request_id(router), linkage, decrypt=columns)


@router.post(
    "/grants",
    summary="Grant every dataset of the department carrying given tags, up to a classification (stewards)",
    tags=["sharing"],
    responses=documented(Grant, 400, 403, status=201),
)
def grant_by_tags(request: TagGrantCreate) -> Response[Grant]:
    return created(sharing().grant_by_tags(caller(router), request, request_id(router)))


@router.get(
    "/grants",
    summary="Grants the caller's department gave (stewards) or received",
    tags=["sharing"],
    responses=documented(GrantList, 403),
)
def department_grants(direction: Annotated[Literal["given", "received"], Query()] = "received") -> GrantList:
    return GrantList(grants=sharing().department_grants(caller(router), direction, request_id(router)))


@router.delete(
    "/grants/<grant_id>",
    summary="Revoke any grant the department gave, by id (stewards)",
    tags=["sharing"],
    responses=documented(Grant, 403, 404, 409),
)
def revoke_grant(grant_id: GrantPath) -> Grant:
    return sharing().revoke_grant(caller(router), grant_id, request_id(router))


@router.get(
    "/notifications",
    summary="The department's notifications, oldest first after a cursor (newest page without one)",
    tags=["notifications"],
    responses=documented(NotificationPage, 403),
)
def notifications(
    after: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> NotificationPage:
    return inbox().page(caller(router), after, limit)


@router.post(
    "/share-recipients",
    summary="Issue a Delta Sharing profile to another department (stewards); the token is shown once",
    tags=["sharing"],
    responses=documented(ShareProfile, 400, 403, 404, status=201),
)
def issue_recipient(request: ShareRecipientCreate) -> Response[ShareProfile]:
    endpoint = f"{public_endpoint(router)}/delta-sharing"
    return created(recipients().issue(caller(router), request, endpoint, request_id(router)))


@router.get(
    "/share-recipients",
    summary="The Delta Sharing recipients the department issued (stewards), newest first",
    tags=["sharing"],
    responses=documented(ShareRecipientList, 403),
)
def list_recipients() -> ShareRecipientList:
    return ShareRecipientList(recipients=recipients().recipients(caller(router), request_id(router)))


@router.delete(
    "/share-recipients/<recipient_id>",
    summary="Revoke a Delta Sharing recipient: its token stops at once",
    tags=["sharing"],
    responses=documented(ShareRecipient, 403, 404, 409),
)
def revoke_recipient(recipient_id: RecipientPath) -> ShareRecipient:
    return recipients().revoke(caller(router), recipient_id, request_id(router))
