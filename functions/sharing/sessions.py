"""The session broker: the one place a request-serving function gets a department's data session.

The api, analytics and Delta Sharing functions' roles may not assume the data role (infra/spec.py); while serving
a request they ask the broker (the `sessions` function in AWS, this class in the embedded stack)
with the request's token id. The broker vends a session only:

- for the caller's own department, when the authorizer recorded that token for that department
  (the nonces table, which only the authorizer's role may write: functions/identity/nonces.py), or
- for a Delta Sharing recipient (whose bearer token the Delta Sharing function passes on), for the
  owner of its share, on a dataset a grant to its whole department covers, or
- for another department, narrowed by a session policy to one dataset's objects (its versions,
  vault and shared views, and the per-grant views of the caller's department), when that
  department owns the dataset and the policies let the token's principal read it (the same
  ReadData decision every read takes: one rule, one place).

So a function that is made to misbehave can act only for departments whose verified requests it is
serving, and for others only on what those callers may read: AWS enforces it, since the session
is what reaches S3 and KMS. The read itself is still decided, and audited, by the function.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal, Protocol

from functions.catalog.models import Dataset
from functions.core import aws
from functions.core.clock import utc_now
from functions.core.errors import Unauthenticated
from functions.core.scoped import Credentials, Serving, SessionRefused
from functions.identity.models import Caller, Department
from functions.identity.nonces import NonceStore
from functions.sharing.recipients import RecipientRepository, ShareReader, authenticate, recipient_caller

# Sessions of another department's dataset last the shortest STS allows: reused for at most half of
# it, they outlive a read's presigned URLs (5 minutes) and not much more.
NARROWED_SESSION_SECONDS = 900
# A token is honoured this long past its expiry: the request it carried may still be running (the
# API's longest is 29 s).
_REQUEST_GRACE_SECONDS = 60


class Datasets(Protocol):
    def get(self, dataset_id: str) -> Dataset | None: ...


class Policies(Protocol):
    def readable_under(self, caller: Caller, dataset: Dataset) -> tuple[bool, Any]: ...

    def candidates(self, caller: Caller, dataset: Dataset) -> Sequence[Any]: ...

    def permitted(
        self, caller: Caller, action: str, dataset: Dataset, candidates: Sequence[Any], purpose: str = ""
    ) -> list[Any]: ...


class Members(Protocol):
    def of(self, department_id: str, principal_id: str) -> Caller: ...


class Departments(Protocol):
    def get_department(self, department_id: str) -> Department | None: ...


def dataset_session_policy(owner: str, dataset_id: str, reader: str) -> str:
    """What a session acting for `owner` may do while serving `reader`'s read of `dataset_id`: its
    versions and vault, its shared views and the reader's per-grant views of it (read and write), and
    the owner's key (the data role's own policy) through S3 for those objects, for the dataset's data
    key and for the owner's pseudonymisation key (linkage re-keys with it). Any bucket: the data role's
    policy holds it to the data bucket (and the whole to the 2,048 characters AWS takes)."""
    reads = [f"{root}/{owner}/{dataset_id}/" for root in ("curated", "vault")]
    views = [
        f"views/shared/{owner}/{dataset_id}/",
        *(f"views/{kind}/{owner}/{reader}/*/{dataset_id}/" for kind in ("grant", "clear")),
    ]
    key_use = ["kms:Decrypt", "kms:GenerateDataKey"]
    statements = [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": [f"arn:aws:s3:::*/{p}*" for p in reads]},
        {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": [f"arn:aws:s3:::*/{p}*" for p in views]},
        # Listing is how a missing vault is told (functions/sharing/views.py): S3 answers a missing
        # object AccessDenied to a session whose listing is held to prefixes.
        {
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": "arn:aws:s3:::*",
            "Condition": {"StringLike": {"s3:prefix": f"vault/{owner}/{dataset_id}/*"}},
        },
        {"Effect": "Allow", "Action": key_use, "Resource": "*", "Condition": {"StringLike": {"kms:ViaService": "s3.*"}}},
        {
            "Effect": "Allow",
            "Action": key_use,
            "Resource": "*",
            "Condition": {"StringEquals": {"kms:EncryptionContext:dataset": dataset_id}},
        },
        {
            "Effect": "Allow",
            "Action": key_use,
            "Resource": "*",
            "Condition": {"StringEquals": {"kms:EncryptionContext:purpose": "pseudonymisation"}},
        },
    ]
    return json.dumps({"Version": "2012-10-17", "Statement": statements}, separators=(",", ":"))


class SessionBroker:
    def __init__(
        self,
        nonces: NonceStore,
        datasets: Datasets,
        policies: Policies,
        members: Members,
        recipients: RecipientRepository,
        departments: Departments,
        assume: Callable[..., Credentials | None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._nonces = nonces
        self._datasets = datasets
        self._policies = policies
        self._members = members
        self._recipients = recipients
        self._departments = departments
        self._assume = assume
        self._clock = clock

    def vend(self, request: Serving, department: str, dataset_id: str | None) -> Credentials | None:
        if request.kind == "recipient":
            return self._for_recipient(request, department, dataset_id)
        principal = self._nonces.holder(f"{request.department}#{request.token_id}", int(self._clock()) - _REQUEST_GRACE_SECONDS)
        if principal is None:
            raise SessionRefused(f"No verified request of {request.department} holds that token")
        caller = self._members.of(request.department, principal)
        if "suspended" in (caller.department_status, caller.principal_status):
            raise SessionRefused(f"{request.department}/{principal} is suspended")
        if department == request.department:
            return self._assume(department, None, _name(request))
        dataset = self._owned(department, dataset_id)
        readable, _ = self._policies.readable_under(caller, dataset)
        if not readable:
            raise SessionRefused(f"{request.department}/{principal} may not read {dataset_id}")
        return self._narrowed(department, dataset, request)

    def _for_recipient(self, request: Serving, department: str, dataset_id: str | None) -> Credentials | None:
        """A Delta Sharing recipient reads one owner's share: a session of that owner, for a dataset a
        grant to the recipient's whole department lets it read (as functions/sharing/delta.py decides)."""
        try:
            recipient = authenticate(self._recipients, request.token_id, utc_now())
        except Unauthenticated:
            raise SessionRefused("No live recipient holds that token") from None
        if recipient.department != request.department or recipient.owner != department:
            raise SessionRefused(f"That recipient reads {recipient.owner}'s share for {recipient.department}")
        dataset = self._owned(department, dataset_id)
        found = self._departments.get_department(recipient.department)
        reader = recipient_caller(
            ShareReader(recipient.recipient_id, recipient.owner, recipient.department, "", found.status if found else "suspended")
        )
        candidates = [g for g in self._policies.candidates(reader, dataset) if g.facts().grantee_principal is None]
        if not self._policies.permitted(reader, "ReadData", dataset, candidates):
            raise SessionRefused(f"That recipient may not read {dataset_id}")
        return self._narrowed(department, dataset, request)

    def _narrowed(self, department: str, dataset: Dataset, request: Serving) -> Credentials | None:
        policy = dataset_session_policy(department, dataset.dataset_id, request.department)
        return self._assume(department, policy, _name(request), NARROWED_SESSION_SECONDS)

    def _owned(self, department: str, dataset_id: str | None) -> Dataset:
        dataset = self._datasets.get(dataset_id) if dataset_id else None
        if dataset is None or dataset.owner != department:
            raise SessionRefused(f"{department} owns no dataset {dataset_id}")
        return dataset


def _name(request: Serving) -> str:
    """The session's name, which CloudTrail records beside the department it acts for (its tag): whose
    requests it serves (a serving function keeps it for its department's later requests)."""
    return f"{request.department}.{'recipients' if request.kind == 'recipient' else 'requests'}"


class BrokerFunction:
    """The broker as the request-serving functions reach it in AWS: the `sessions` function."""

    lambdas = aws.LazyClient("lambda")

    def __init__(self, function_name: str, lambdas: Any = None) -> None:
        self._function = function_name
        self._lambdas = lambdas

    def __call__(self, request: Serving, department: str, dataset_id: str | None) -> Credentials | None:
        asked = {
            "department": request.department,
            "token_id": request.token_id,
            "kind": request.kind,
            "acting_for": department,
            "dataset": dataset_id,
        }
        response = self.lambdas.invoke(FunctionName=self._function, Payload=json.dumps(asked).encode())
        answer = json.loads(response["Payload"].read())
        if response.get("FunctionError"):
            raise RuntimeError(f"the sessions function failed: {str(answer.get('errorMessage', ''))[:200]}")
        if "refused" in answer:
            raise SessionRefused(str(answer["refused"]))
        credentials = answer.get("credentials")
        return {k: str(v) for k, v in credentials.items()} if credentials else None


def vend_event(broker: SessionBroker, event: dict[str, Any]) -> dict[str, Any]:
    """The sessions function's answer to one ask (BrokerFunction's payload)."""
    kind: Literal["signed", "recipient"] = "recipient" if event.get("kind") == "recipient" else "signed"
    request = Serving(str(event["department"]), str(event["token_id"]), kind)
    dataset = event.get("dataset")
    try:
        return {"credentials": broker.vend(request, str(event["acting_for"]), str(dataset) if dataset else None)}
    except SessionRefused as refused:
        return {"refused": refused.detail}
