"""Sharing through the API function under every fault at every AWS call: the client retries each
call with its Idempotency-Key, as the SDK does, until it is answered; whatever failed where, there is
one access request, one grant per approval, one direct grant, revoked once, each announced, and every
retry answered with the first call's result."""

from __future__ import annotations

import hashlib
import importlib
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from functions.catalog.models import Dataset
from functions.catalog.repository import CatalogRepository
from functions.core.idempotency import IdempotencyStore
from functions.core.settings import Settings
from functions.handlers import http, services, wiring
from functions.identity.binding import body_digest
from functions.identity.nonces import NonceStore
from functions.sharing.outbox import OutboxSweeper
from functions.sharing.repository import SharingRepository
from infra.local.lambdas import LocalContext
from tests.datasets import city_schema
from tests.faults.conftest import RENEW_EVERY
from tests.faults.harness import REFUSED_ALIKE, Call, FaultInjector, FunctionStopped, plan
from tests.faults.scenario import MAX_DELIVERIES, NUMBERS, record
from tests.integration.conftest import Aws, register_principal


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class ApiClient:
    """Calls the API function as API Gateway would after the authorizer, and retries as the SDK does."""

    def __init__(self, moto_aws: Aws, settings: Settings, clock: Clock, injector: FaultInjector, function: str = "api") -> None:
        self.function = function  # the module in functions.handlers serving the calls
        self.settings = settings
        self.clock = clock
        self.injector = injector
        self.store = IdempotencyStore(settings.idempotency_table, moto_aws.client("dynamodb"), clock=clock)
        self.nonces = NonceStore(settings.nonces_table, moto_aws.client("dynamodb"))
        self.registered: set[tuple[str, tuple[str, str, str]]] = set()

    def call(
        self, caller: tuple[str, str, str], method: str, path: str, body: dict[str, Any], fault: tuple[int, str] | None
    ) -> Any:
        """Send until answered with a 2xx (at most MAX_DELIVERIES times), the first send under `fault`."""
        handler = importlib.import_module(f"functions.handlers.{self.function}").handler
        key = str(uuid.uuid4())
        raw = json.dumps(body).encode()
        # What the authorizer checked (the caller is in the directory) and recorded of the verified token,
        # against which the broker vends data sessions.
        if (self.settings.directory_table, caller) not in self.registered:
            register_principal(caller[0], caller[1], *caller[2].split(","))
            self.registered.add((self.settings.directory_table, caller))
        now = int(time.time())
        self.nonces.use_once(f"{caller[0]}#{_token_id(key)}", now + 300, now, caller[1])
        answers = []
        for attempt in range(MAX_DELIVERIES):
            if attempt == 0 and fault is not None:
                self.injector.arm(*fault)
            try:
                response = handler(
                    self._event(caller, method, path, raw, key), LocalContext(self.function, 1024, timeout_seconds=29)
                )
            except (FunctionStopped, Exception):
                response = {"statusCode": 502, "body": "{}"}  # API Gateway's answer when the function dies or fails
            finally:
                self.injector.disarm()
            answers.append(response["statusCode"])
            if response["statusCode"] < 300:
                return json.loads(response["body"]), answers
            if json.loads(response["body"] or "{}").get("code") == "idempotency_in_progress":
                self.clock.now += 60  # the dead call's lease runs out
        raise AssertionError(f"{method} {path} never succeeded: {answers}")

    @staticmethod
    def _event(caller: tuple[str, str, str], method: str, path: str, raw: bytes, key: str) -> dict[str, Any]:
        department, principal, roles = caller
        return {
            "resource": path,
            "path": path,
            "httpMethod": method,
            "headers": {"Content-Type": "application/json", "Idempotency-Key": key, "Host": "127.0.0.1"},
            "multiValueHeaders": {},
            "queryStringParameters": None,
            "multiValueQueryStringParameters": None,
            "pathParameters": None,
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "stage": "local",
                "httpMethod": method,
                "path": path,
                "authorizer": {
                    "department_id": department,
                    "principal_id": principal,
                    "roles": roles,
                    "department_status": "active",
                    "jti": _token_id(key),
                    "body_sha256": body_digest(raw),
                },
            },
            "body": raw.decode(),
            "isBase64Encoded": False,
        }


def _token_id(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:32]


ANALYST = ("environment", "analyst", "member")
STEWARD = ("transport", "steward", "member,steward")
REQUEST = {
    "purpose": "Pollution near congested roads",
    "purpose_category": "environment-monitoring",
    "legal_basis": "public-task",
    "columns": ["segment_id", "district", "avg_speed_kmh"],
    "until": "2027-12-31",
}
GRANT = {
    "grantee_department": "health",
    "purpose": "Ambulance routing in congestion",
    "purpose_category": "public-health",
    "legal_basis": "public-task",
    "terms": {"columns": ["segment_id", "avg_speed_kmh"]},
}


def steps(dataset_id: str) -> list[tuple[str, Any]]:
    """The sharing round trip as (name, call(client, fault) -> answer)."""
    state: dict[str, Any] = {}

    def file(client: ApiClient, fault: Any) -> Any:
        state["request"], answers = client.call(ANALYST, "POST", f"/datasets/{dataset_id}/access-requests", REQUEST, fault)
        return answers

    def approve(client: ApiClient, fault: Any) -> Any:
        path = f"/datasets/{dataset_id}/access-requests/{state['request']['request_id']}/approve"
        state["approved"], answers = client.call(STEWARD, "POST", path, {"note": "ok"}, fault)
        return answers

    def grant(client: ApiClient, fault: Any) -> Any:
        state["grant"], answers = client.call(STEWARD, "POST", f"/datasets/{dataset_id}/grants", GRANT, fault)
        return answers

    def revoke(client: ApiClient, fault: Any) -> Any:
        path = f"/datasets/{dataset_id}/grants/{state['grant']['grant_id']}"
        state["revoked"], answers = client.call(STEWARD, "DELETE", path, {}, fault)
        return answers

    return [("file", file), ("approve", approve), ("grant", grant), ("revoke", revoke), ("state", state)]


# Each step after the steps it needs: the request flow and the direct grant flow are independent.
NEEDS = {"file": (), "approve": ("file",), "grant": (), "revoke": ("grant",)}


class ApiRun:
    """Runs of one API function's calls, each retried as the SDK does, against renewable tables."""

    function = "api"

    def __init__(self, moto_aws: Aws, settings: Settings, injector: FaultInjector, monkeypatch: pytest.MonkeyPatch) -> None:
        self.aws = moto_aws
        self.clock = Clock()
        self.injector = injector
        monkeypatch.setattr(http, "idempotency_store", lambda: self.client.store)
        self.renew(settings)

    def renew(self, settings: Settings) -> None:
        self.settings = settings
        self.client = ApiClient(self.aws, settings, self.clock, self.injector, self.function)


class SharingRun(ApiRun):
    def renew(self, settings: Settings) -> None:
        super().renew(settings)
        self.sharing = SharingRepository(settings.sharing_table, self.aws.client("dynamodb"))

    def fresh(self) -> str:
        """A new dataset, and services built afresh (a stopped function's warm state dies with it)."""
        built = (services.access_control, services.catalog, services.sharing_repository, services.sharing, wiring.audit_log)
        for builder in built:
            builder.cache_clear()
        self.number = next(NUMBERS)
        dataset_id = f"traffic-{self.number:04d}"
        CatalogRepository(self.settings.catalog_table).create(
            Dataset.model_validate(
                {
                    "dataset_id": dataset_id,
                    "title": "Traffic flow",
                    "classification": "internal",
                    "schema": city_schema("traffic-flow"),
                    "owner": "transport",
                    "created_at": "2026-11-01T00:00:00+00:00",
                    "updated_at": "2026-11-01T00:00:00+00:00",
                    "created_by": "steward",
                }
            )
        )
        return dataset_id


def check(run: SharingRun, injector: FaultInjector, dataset_id: str, state: dict[str, Any], done: set[str], context: str) -> None:
    """What the steps `done` (file, approve; grant, revoke) must have left, exactly once."""
    statuses = ("pending", "approved", "denied")
    requests = [r for s in statuses for r in run.sharing.requests_to("transport", s) if r.dataset_id == dataset_id]
    filed = [state["request"]["request_id"]] if "file" in done else []
    assert [r.request_id for r in requests] == filed, f"{context}: requests {requests}"
    assert [r.status for r in requests] == [("approved" if "approve" in done else "pending")] * len(filed), context
    grants = [g for g in run.sharing.grants_of("transport") if g.dataset_id == dataset_id]
    by_grantee = {g.grantee_department: g for g in grants}
    assert len(grants) == len(by_grantee) == len(done & {"approve", "grant"}), f"{context}: grants {grants}"
    expected = {("filed", state["request"]["request_id"])} if "file" in done else set()
    if "approve" in done:
        assert by_grantee["environment"].grant_id == state["approved"]["grant_id"], f"{context}: the retry answered another grant"
        expected |= {("approved", state["request"]["request_id"]), ("granted", state["approved"]["grant_id"])}
    if "grant" in done:
        assert by_grantee["health"].grant_id == state["grant"]["grant_id"], context
        expected.add(("granted", state["grant"]["grant_id"]))
    if "revoke" in done:
        assert state["revoked"]["grant_id"] == state["grant"]["grant_id"], context
        assert by_grantee["health"].status == "revoked" and state["revoked"]["status"] == "revoked", context
        expected.add(("revoked", state["grant"]["grant_id"]))
    # The events of each change reach the bus, now or from the outbox.
    OutboxSweeper(run.sharing, _publisher(run), clock=lambda: _far_future()).sweep()
    details = [json.loads(e["Detail"]) for e in injector.published]
    mine = {
        (d["change"], d["access_request_id"] if "access_request_id" in d else d["grant_id"])
        for d in details
        if d.get("dataset_id") == dataset_id
    }
    assert expected <= mine, f"{context}: announced {mine}"
    assert run.sharing.outbox(_far_future().isoformat()) == [], f"{context}: the outbox keeps entries"


def _publisher(run: SharingRun) -> Any:
    from functions.core.events import EventPublisher

    return EventPublisher(run.settings.event_bus, run.aws.client("events"))


def _far_future() -> Any:
    from datetime import UTC, datetime

    return datetime(2100, 1, 1, tzinfo=UTC)


def calls_of(run: SharingRun, injector: FaultInjector) -> list[tuple[str, list[Call]]]:
    dataset_id = run.fresh()
    found = []
    for name, step in steps(dataset_id)[:-1]:
        injector.reset()
        step(run.client, None)
        found.append((name, list(injector.calls)))
    return found


def run_flow(
    run: SharingRun, injector: FaultInjector, name: str, fault: tuple[int, str]
) -> tuple[str, dict[str, Any], set[str], Any]:
    """A fresh dataset; the steps `name` needs, then `name` with `fault` (its calls numbered from its first)."""
    dataset_id = run.fresh()
    flow = dict(steps(dataset_id))
    injector.reset()
    answers: dict[str, Any] = {}
    for needed in NEEDS[name]:
        answers[needed] = flow[needed](run.client, None)
    injector.calls.clear()
    answers[name] = flow[name](run.client, fault)
    record("sharing", injector, fault[1])
    return dataset_id, flow["state"], {*NEEDS[name], name}, answers


def test_every_call_of_sharing_under_every_fault_converges(
    moto_aws: Aws,
    settings: Settings,
    injector: FaultInjector,
    monkeypatch: pytest.MonkeyPatch,
    atomic_conditional_writes: None,
    renew_tables: Callable[[], Settings],
) -> None:
    run = SharingRun(moto_aws, settings, injector, monkeypatch)
    runs = 0
    for name, calls in calls_of(run, injector):
        for index, fault in plan(calls, REFUSED_ALIKE):
            runs += 1
            if runs % RENEW_EVERY == 0:
                run.renew(renew_tables())
            dataset_id, state, done, answers = run_flow(run, injector, name, (index, fault))
            context = f"{fault} at call {index} of {name} ({injector.injected}), answers {answers}"
            check(run, injector, dataset_id, state, done, context)
