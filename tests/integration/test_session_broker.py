"""The session broker against moto: a request-serving function gets a department's data session only
for a request the authorizer verified (its token in the nonces table), for the caller's own
department whole, and for another department only narrowed to one dataset the policies let the
caller read. The sessions are moto's (STS AssumeRole with the department's tag and the policy);
tests/aws_rules.py checks each AssumeRole against the limits STS applies."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from typing import Any, cast

import pytest
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.client import BaseClient

from functions.catalog.repository import CatalogRepository
from functions.core.scoped import Serving, SessionRefused, serving
from functions.core.settings import Settings
from functions.handlers import wiring
from functions.identity.nonces import NonceStore
from functions.sharing.recipients import RecipientRepository, ShareRecipient, token_digest
from functions.sharing.repository import SharingRepository
from functions.sharing.sessions import BrokerFunction, SessionBroker, dataset_session_policy, vend_event
from infra.local.lambdas import LocalContext
from infra.local.provision import physical_names
from infra.spec import SPEC
from tests.integration.conftest import register_principal
from tests.integration.test_grants_index import grant
from tests.integration.test_repositories import dataset

TOKEN = "t" * 24
names: list[tuple[str | None, int]] = []  # each vended session's name in CloudTrail and its lifetime


@pytest.fixture
def asked(settings: Settings) -> Iterator[list[tuple[str, str | None]]]:
    """The broker as the functions build it, recording each session it vends (department, policy)."""
    catalog = CatalogRepository(settings.catalog_table)
    catalog.create(dataset("air-quality", owner="environment", classification="public"))
    catalog.create(dataset("noise-complaints", owner="environment", classification="confidential"))
    catalog.create(dataset("traffic-flow", owner="transport", classification="confidential"))
    SharingRepository(settings.sharing_table).put_grant(grant("g1"))  # transport -> health, traffic-flow
    register_principal("health", "analyst")
    NonceStore(settings.nonces_table).use_once(f"health#{TOKEN}", int(time.time()) + 60, int(time.time()), "analyst")
    vended: list[tuple[str, str | None]] = []
    real = wiring.data_sessions().credentials

    def recording(department: str, policy: str | None, name: str | None = None, seconds: int = 3600) -> dict[str, str] | None:
        vended.append((department, policy))
        names.append((name, seconds))
        return real(department, policy, name, seconds)

    monkeypatch_broker = wiring.session_broker()
    monkeypatch_broker._assume = recording
    yield vended


def broker() -> SessionBroker:
    return wiring.session_broker()


def test_a_verified_request_gets_its_own_department_whole(asked: list[tuple[str, str | None]]) -> None:
    credentials = broker().vend(Serving("health", TOKEN), "health", None)
    assert credentials and credentials["SessionToken"]
    assert asked == [("health", None)]
    assert names[-1] == ("health.requests", 3600)


def test_another_department_only_for_a_dataset_the_caller_may_read_and_only_that_dataset(
    asked: list[tuple[str, str | None]],
) -> None:
    broker().vend(Serving("health", TOKEN), "environment", "air-quality")  # public: any department reads it
    broker().vend(Serving("health", TOKEN), "transport", "traffic-flow")  # under the live grant g1
    assert [department for department, _ in asked] == ["environment", "transport"]
    assert asked[0][1] == dataset_session_policy("environment", "air-quality", "health")
    assert names[-1] == ("health.requests", 900)  # the shortest session STS gives
    policy = json.loads(asked[1][1] or "")
    resources = [r for s in policy["Statement"] for r in ([s["Resource"]] if isinstance(s["Resource"], str) else s["Resource"])]
    objects = [r for r in resources if r.startswith("arn:aws:s3:::*/")]
    assert objects and all("/transport/traffic-flow/" in r or "/transport/health/" in r for r in objects)
    with pytest.raises(SessionRefused, match="may not read noise-complaints"):
        broker().vend(Serving("health", TOKEN), "environment", "noise-complaints")  # confidential, no grant
    with pytest.raises(SessionRefused, match="owns no dataset"):
        broker().vend(Serving("health", TOKEN), "environment", "traffic-flow")  # not environment's
    with pytest.raises(SessionRefused, match="owns no dataset"):
        broker().vend(Serving("health", TOKEN), "transport", None)
    assert len(asked) == 2


def test_a_revoked_grant_or_a_suspended_department_gets_no_session_of_the_owner(
    settings: Settings, asked: list[tuple[str, str | None]]
) -> None:
    sharing = SharingRepository(settings.sharing_table)
    (live,) = sharing.grants_between("transport", "health")
    sharing.revoke(live, "steward-a", "2026-12-02T00:00:00Z")
    with pytest.raises(SessionRefused):
        broker().vend(Serving("health", TOKEN), "transport", "traffic-flow")
    wiring.directory().set_department_status("health", "suspended")
    with pytest.raises(SessionRefused):
        broker().vend(Serving("health", TOKEN), "environment", "air-quality")
    assert asked == []


def test_no_session_without_a_token_the_authorizer_recorded_for_that_department(
    settings: Settings, asked: list[tuple[str, str | None]]
) -> None:
    for request in (Serving("health", "u" * 24), Serving("transport", TOKEN)):  # unknown; recorded for health
        with pytest.raises(SessionRefused, match="No verified request"):
            broker().vend(request, request.department, None)
    NonceStore(settings.nonces_table).use_once(f"health#{'e' * 24}", int(time.time()) - 120, int(time.time()) - 400, "analyst")
    with pytest.raises(SessionRefused, match="No verified request"):
        broker().vend(Serving("health", "e" * 24), "health", None)  # expired (beyond the request's grace)
    assert asked == []
    answer = vend_event(broker(), {"department": "transport", "token_id": TOKEN, "acting_for": "transport"})
    assert "credentials" not in answer and "No verified request" in answer["refused"]


def test_while_serving_a_request_the_scopes_ask_the_broker_and_name_a_dataset_for_others(
    asked: list[tuple[str, str | None]],
) -> None:
    scopes = wiring.scopes()
    with serving("health", TOKEN):
        scopes.s3("health")
        scopes.s3("environment", "air-quality")
        scopes.kms("environment", "air-quality")  # the same session
        with pytest.raises(SessionRefused, match="only for a dataset"):
            scopes.s3("environment")
        with pytest.raises(SessionRefused):
            scopes.s3("environment", "noise-complaints")
    assert [(d, p is not None) for d, p in asked] == [("health", False), ("environment", True)]
    scopes.s3("environment")  # background work (no request served): the function's own session
    assert len(asked) == 2


RECIPIENT_TOKEN = "s" + "b" * 24 + ".a-recipients-secret"


def _a_recipient(settings: Settings) -> tuple[RecipientRepository, ShareRecipient]:
    """A live Delta Sharing recipient of transport's share, for health."""
    recipients = RecipientRepository(settings.sharing_table)
    stored = ShareRecipient.model_validate(
        {
            "recipient_id": RECIPIENT_TOKEN.partition(".")[0],
            "owner": "transport",
            "department": "health",
            "created_by": "steward-a",
            "created_at": "2026-11-01T00:00:00+00:00",
            "expires_at": "2099-01-01T00:00:00+00:00",
        }
    )
    recipients.put(stored, token_digest(RECIPIENT_TOKEN))
    return recipients, stored


def test_a_delta_sharing_recipient_gets_its_shares_owner_only_for_a_dataset_its_department_was_granted(
    settings: Settings, asked: list[tuple[str, str | None]]
) -> None:
    recipients, stored = _a_recipient(settings)
    reading = Serving("health", RECIPIENT_TOKEN, "recipient")
    broker().vend(reading, "transport", "traffic-flow")  # granted to health as a whole (g1)
    assert asked == [("transport", dataset_session_policy("transport", "traffic-flow", "health"))]
    refusals = [
        (reading, "health", None, "reads transport's share"),  # a recipient acts for no department of its own
        (reading, "environment", "air-quality", "reads transport's share"),  # another owner than its share's
        (Serving("environment", RECIPIENT_TOKEN, "recipient"), "transport", "traffic-flow", "reads transport's share"),
        (Serving("health", RECIPIENT_TOKEN + "x", "recipient"), "transport", "traffic-flow", "No live recipient"),
    ]
    for request, department, dataset_id, why in refusals:
        with pytest.raises(SessionRefused, match=why):
            broker().vend(request, department, dataset_id)
    recipients.revoke(stored, "steward-a", "2026-11-16T00:00:00+00:00")
    with pytest.raises(SessionRefused, match="No live recipient"):
        broker().vend(reading, "transport", "traffic-flow")
    assert len(asked) == 1


def test_the_policy_holds_a_session_to_one_datasets_objects_and_key_uses(asked: list[tuple[str, str | None]]) -> None:
    policy = json.loads(dataset_session_policy("transport", "traffic-flow", "health"))
    objects = [r for s in policy["Statement"] if s["Action"] != "s3:ListBucket" for r in _listed(s["Resource"]) if "s3" in r]
    assert objects and all(r.startswith("arn:aws:s3:::*/") and r.endswith("/traffic-flow/*") for r in objects)
    assert all("/health/" in r for r in objects if "views/grant" in r or "views/clear" in r)  # the reader's own views
    keys = [s for s in policy["Statement"] if any(a.startswith("kms:") for a in _listed(s["Action"]))]
    conditions = [json.dumps(s["Condition"]) for s in keys]
    assert len(keys) == 3 and all(s["Condition"] for s in keys)  # no key use without a condition
    assert any('"kms:EncryptionContext:dataset": "traffic-flow"' in c for c in conditions)  # only this dataset's data key
    assert len(dataset_session_policy("a" * 32, "d" * 63, "b" * 32)) <= 2048  # the longest ids: within what STS takes


def _listed(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


class InvokesTheSessionsFunction:
    """A Lambda client whose Invoke runs the sessions handler, as AWS would: JSON both ways."""

    def invoke(self, FunctionName: str, Payload: bytes) -> dict[str, Any]:  # noqa: N803 - boto3's names
        from functions.handlers.sessions import handler

        answer = handler(json.loads(Payload), cast(LambdaContext, LocalContext("sessions", 512)))
        return {"Payload": io.BytesIO(json.dumps(answer).encode())}


def test_the_sessions_function_answers_over_lambdas_json_as_in_process(
    settings: Settings, asked: list[tuple[str, str | None]]
) -> None:
    """What the api and delta-sharing functions ask in AWS, through the function's own payload."""
    remote = BrokerFunction("cityshare-it-sessions", lambdas=InvokesTheSessionsFunction())
    assert remote(Serving("health", TOKEN), "environment", "air-quality")
    _a_recipient(settings)
    assert remote(Serving("health", RECIPIENT_TOKEN, "recipient"), "transport", "traffic-flow")
    with pytest.raises(SessionRefused, match="may not read noise-complaints"):
        remote(Serving("health", TOKEN), "environment", "noise-complaints")
    assert [d for d, _ in asked] == ["environment", "transport"]


def test_the_broker_calls_only_what_the_sessions_role_may(
    settings: Settings, asked: list[tuple[str, str | None]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """moto enforces no IAM: each DynamoDB call the broker makes is checked against the role's tables."""
    tables = {physical: logical for (kind, logical), physical in physical_names("it").items() if kind == "table"}
    made: set[tuple[str, str]] = set()
    original = BaseClient._make_api_call  # type: ignore[attr-defined]

    def recorded(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        if client.meta.service_model.service_name == "dynamodb":
            for table in [params["TableName"]] if "TableName" in params else list(params.get("RequestItems", {})):
                made.add((tables[table], operation))
        return original(client, operation, params)

    _a_recipient(settings)
    monkeypatch.setattr(BaseClient, "_make_api_call", recorded)
    broker().vend(Serving("health", TOKEN), "health", None)
    broker().vend(Serving("health", TOKEN), "transport", "traffic-flow")
    broker().vend(Serving("health", RECIPIENT_TOKEN, "recipient"), "transport", "traffic-flow")
    monkeypatch.undo()
    allowed = {(table, action) for table, actions in SPEC.function("sessions").tables.items() for action in actions}
    assert made and made <= allowed, made - allowed


def test_a_suspended_principal_gets_no_session_even_of_its_own_department(asked: list[tuple[str, str | None]]) -> None:
    wiring.directory().set_principal_status("health", "analyst", "suspended")
    with pytest.raises(SessionRefused, match="suspended"):
        broker().vend(Serving("health", TOKEN), "health", None)
    assert asked == []
