"""Delta Sharing recipients: bearer tokens a department's stewards issue to another department, so
that department's analysts read, from their own tools (pandas, Spark, Power BI), exactly what the
owner's live grants give them.

A token is `<recipient id>.<secret>`; CityShare keeps only its SHA-256, so a leak of the table
leaks no token. A token is scoped to one (owner, recipient department) pair, expires, can be
revoked at once, and unlocks the Delta Sharing endpoints only (never CityShare's signed API).
Every read under it is still decided by the Cedar policies and audited in the owner's chain.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import ConfigDict, Field

from functions.core.clock import utc_now
from functions.core.dynamo import DynamoTable, from_item, is_conditional_failure, to_item
from functions.core.errors import Conflict, InvalidRequest, NotFound, Unauthenticated
from functions.core.model import Model
from functions.identity.models import Caller, DepartmentId
from functions.policy.access import AccessControl

RECIPIENT_ID = re.compile(r"^s[0-9a-f]{24}$")
MAX_LIFETIME_DAYS = 365


class ShareRecipientCreate(Model):
    """What a steward asks for: a token for one recipient department."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    department: DepartmentId = Field(description="The department whose analysts will read")
    expires_in_days: int = Field(default=90, ge=1, le=MAX_LIFETIME_DAYS)
    label: str = Field(default="", max_length=200, description="What it is for, e.g. the tool or team using it")


class ShareRecipient(Model):
    """An issued token, as the owner's stewards see it (never the token itself)."""

    recipient_id: str
    owner: str
    department: str
    label: str = ""
    created_by: str
    created_at: str
    expires_at: str
    status: Literal["active", "revoked"] = "active"
    revoked_at: str | None = None
    revoked_by: str | None = None

    def live(self, now: str) -> bool:
        return self.status == "active" and self.expires_at > now


class ShareRecipientList(Model):
    recipients: list[ShareRecipient]


class ShareProfile(Model):
    """The Delta Sharing profile file (shareCredentialsVersion 1), shown once when issued."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    share_credentials_version: int = Field(default=1, alias="shareCredentialsVersion")
    endpoint: str
    bearer_token: str = Field(alias="bearerToken")
    expiration_time: str = Field(alias="expirationTime")
    recipient: ShareRecipient


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _key(recipient_id: str) -> dict[str, str]:
    return {"pk": f"RECIPIENT#{recipient_id}", "sk": "RECIPIENT"}


class RecipientRepository(DynamoTable):
    """In the sharing table: `RECIPIENT#<id>`, listed per owner through `by_owner_status`
    (`<owner>#recipients`, created_at)."""

    def put(self, recipient: ShareRecipient, digest: str) -> None:
        record = dict(
            recipient.model_dump(exclude_none=True),
            token_sha256=digest,
            owner_status=f"{recipient.owner}#recipients",
            **_key(recipient.recipient_id),
        )
        self.client.put_item(TableName=self._table, Item=to_item(record), ConditionExpression="attribute_not_exists(pk)")

    def get(self, recipient_id: str) -> tuple[ShareRecipient, str] | None:
        response = self.client.get_item(TableName=self._table, Key=self.key(recipient_id), ConsistentRead=True)
        return self.from_stored(response["Item"]) if "Item" in response else None

    def key(self, recipient_id: str) -> dict[str, Any]:
        """A recipient's key, for a BatchGetItem beside other items."""
        return to_item(_key(recipient_id))

    @staticmethod
    def from_stored(item: dict[str, Any]) -> tuple[ShareRecipient, str]:
        """A recipient and its token's SHA-256, from its item as DynamoDB returned it."""
        record = from_item(item)
        digest = str(record.pop("token_sha256"))
        values = {k: v for k, v in record.items() if k not in {"pk", "sk", "owner_status"}}
        return ShareRecipient.model_validate(values), digest

    def of_owner(self, owner: str) -> list[ShareRecipient]:
        recipients = []
        for page in self.client.get_paginator("query").paginate(
            TableName=self._table,
            IndexName="by_owner_status",
            KeyConditionExpression="owner_status = :s",
            ExpressionAttributeValues=to_item({":s": f"{owner}#recipients"}),
        ):
            for item in page["Items"]:
                record = from_item(item)
                values = {k: v for k, v in record.items() if k not in {"pk", "sk", "owner_status", "token_sha256"}}
                recipients.append(ShareRecipient.model_validate(values))
        return recipients

    def revoke(self, recipient: ShareRecipient, by: str, now: str) -> None:
        try:
            self.client.update_item(
                TableName=self._table,
                Key=to_item(_key(recipient.recipient_id)),
                UpdateExpression="SET #status = :revoked, revoked_at = :now, revoked_by = :by",
                ConditionExpression="#status = :active",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=to_item({":revoked": "revoked", ":active": "active", ":now": now, ":by": by}),
            )
        except Exception as error:
            if is_conditional_failure(error):
                raise Conflict(f"Recipient {recipient.recipient_id} is already revoked") from None
            raise


@dataclass(frozen=True)
class ShareReader:
    """Who reads, as the recipient authorizer verified it: one recipient department, one owner's
    share, and the SHA-256 of the token presented with this request. API Gateway caches the
    authorizer's answer, so each request confirms the token and its department again
    (`RecipientLookup`) before anything is read; `department_status` is then the directory's now."""

    recipient_id: str
    owner: str
    department: str
    token_sha256: str = ""
    department_status: str = "active"


def recipient_caller(recipient: ShareReader) -> Caller:
    """The recipient department as a caller: a member, with nothing a person's roles would add."""
    return Caller(
        department_id=recipient.department,
        principal_id=f"recipient-{recipient.recipient_id}",
        roles=("member",),
        department_status=recipient.department_status,
        jti=recipient.recipient_id.ljust(16, "0"),
        body_sha256="-" * 43,
    )


def authenticate(repository: RecipientRepository, token: str, now: str) -> ShareRecipient:
    """The live recipient a bearer token stands for; Unauthenticated (with why, for the audit) otherwise."""
    recipient_id, _, secret = token.partition(".")
    if not RECIPIENT_ID.match(recipient_id) or not secret or len(token) > 256:
        raise Unauthenticated("malformed_token")
    return live_recipient(repository.get(recipient_id), token_digest(token), now)


def live_recipient(found: tuple[ShareRecipient, str] | None, digest: str, now: str) -> ShareRecipient:
    """The stored recipient if the presented token's digest is its token's and it is live now;
    Unauthenticated (with why, for the audit) otherwise."""
    if found is None or not hmac.compare_digest(found[1], digest):
        raise Unauthenticated("unknown_token")
    recipient = found[0]
    if recipient.status != "active":
        raise Unauthenticated("revoked_token")
    if recipient.expires_at <= now:
        raise Unauthenticated("token_expired")
    return recipient


class RecipientService:
    def __init__(
        self,
        repository: RecipientRepository,
        access: AccessControl,
        department_exists: Callable[[str], bool],
        clock: Callable[[], str] = utc_now,
    ) -> None:
        self._repository = repository
        self._access = access
        self._department_exists = department_exists
        self._clock = clock

    def issue(self, caller: Caller, request: ShareRecipientCreate, endpoint: str, request_id: str = "") -> ShareProfile:
        self._manage(caller, request_id, {"recipient_department": request.department, "days": request.expires_in_days})
        if request.department == caller.department_id:
            raise InvalidRequest("A department reads its own data whole: a share is for another department")
        if not self._department_exists(request.department):
            raise NotFound(f"No department {request.department}")
        now = datetime.fromisoformat(self._clock().replace("Z", "+00:00"))
        recipient = ShareRecipient(
            recipient_id=f"s{secrets.token_hex(12)}",
            owner=caller.department_id,
            department=request.department,
            label=request.label,
            created_by=caller.principal_id,
            created_at=now.isoformat(timespec="seconds"),
            expires_at=(now + timedelta(days=request.expires_in_days)).astimezone(UTC).isoformat(timespec="seconds"),
        )
        token = f"{recipient.recipient_id}.{secrets.token_urlsafe(32)}"
        self._repository.put(recipient, token_digest(token))
        expiration = recipient.expires_at.replace("+00:00", "Z")
        return ShareProfile(endpoint=endpoint, bearer_token=token, expiration_time=expiration, recipient=recipient)

    def recipients(self, caller: Caller, request_id: str = "") -> list[ShareRecipient]:
        self._manage(caller, request_id, {"list": "recipients"})
        return sorted(self._repository.of_owner(caller.department_id), key=lambda r: r.created_at, reverse=True)

    def revoke(self, caller: Caller, recipient_id: str, request_id: str = "") -> ShareRecipient:
        self._manage(caller, request_id, {"recipient": recipient_id})
        found = self._repository.get(recipient_id) if RECIPIENT_ID.match(recipient_id) else None
        if found is None or found[0].owner != caller.department_id:
            raise NotFound(f"Your department issued no recipient {recipient_id}")
        recipient = found[0]
        now = self._clock()
        self._repository.revoke(recipient, caller.principal_id, now)
        return recipient.model_copy(update={"status": "revoked", "revoked_at": now, "revoked_by": caller.principal_id})

    def _manage(self, caller: Caller, request_id: str, details: dict[str, Any]) -> None:
        refusal = "Only the department's data stewards issue and revoke its share recipients"
        self._access.require_steward(caller, request_id, details, refusal)
