"""authorize() figures (issues: Sharing; One decision path): the Cedar decision with grants as
entities — the caller's candidate grants (those between the owner and the caller's department,
fetched by key) each decided in one batch call, with the time in the context — against a bare
cedarpy decision on the same entities and request, p50/p99 in µs, with 100 and with 50,000 grants
in the platform (only the candidates enter a decision, so the total must not matter; target: p99
within 3x the bare decision, and at most 1.5x growth from 100 to 50,000). The key query that fetches
the candidates is timed too (moto, in-process).
"""

from __future__ import annotations

import os
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

import boto3
import cedarpy
from moto import mock_aws

from functions.catalog.models import Dataset
from functions.catalog.service import dataset_resource
from functions.identity.models import Caller
from functions.policy.engine import PolicyEngine, _actor_entities, principal_key, uid
from functions.sharing.models import Grant
from functions.sharing.repository import SharingRepository
from infra.local.provision import physical_names, provision

ROOT = Path(__file__).resolve().parents[1]
DECISIONS = 5000


def grant(number: int, grantee: str, dataset_id: str, owner: str) -> Grant:
    return Grant.model_validate(
        {
            "grant_id": f"g{number:024x}",
            "dataset_id": dataset_id,
            "owner": owner,
            "grantee_department": grantee,
            "purpose": "Benchmark grant for the authorisation figures",
            "purpose_category": "research",
            "created_by": "steward",
            "created_at": "2026-11-01T00:00:00+00:00",
        }
    )


def percentiles(samples: list[float]) -> str:
    samples.sort()
    return f"p50 {statistics.median(samples):6.0f} µs, p99 {samples[int(len(samples) * 0.99)]:6.0f} µs"


def main() -> None:
    engine = PolicyEngine(ROOT / "policies")
    caller = Caller(department_id="environment", principal_id="analyst", roles=("member",), jti="j" * 16, body_sha256="x" * 43)
    dataset = Dataset.model_validate(
        {
            "dataset_id": "traffic-flow",
            "title": "Traffic",
            "classification": "confidential",
            "schema": {"type": "object", "properties": {"a": {"type": "string"}}},
            "owner": "transport",
            "created_at": "t",
            "updated_at": "t",
            "created_by": "p",
        }
    )
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="eu-west-1")
    os.environ.pop("AWS_ENDPOINT_URL", None)
    for total in (100, 50_000):
        with mock_aws():
            session = boto3.session.Session()
            names = physical_names("bench")
            provision(session, names)
            repository = SharingRepository(names[("table", "sharing")], session.client("dynamodb"))
            table = session.resource("dynamodb").Table(names[("table", "sharing")])
            with table.batch_writer() as writer:
                for number in range(total):
                    grantee = "environment" if number == 0 else f"dept-{number % 300}"
                    owner = "transport" if number % 50 == 0 else f"owner-{number % 40}"
                    item = grant(number, grantee, "traffic-flow" if number % 50 == 0 else f"dataset-{number % 997}", owner)
                    writer.put_item(
                        Item={
                            "pk": f"OWNER#{item.owner}",
                            "sk": f"GRANT#{item.grantee_department}#{item.grant_id}",
                            "terms": item.terms.model_dump_json(),
                            **item.model_dump(exclude_none=True, exclude={"terms"}),
                        }
                    )
            fetch = []
            for _ in range(200):
                start = time.perf_counter()
                candidates = repository.grants_between("transport", "environment")
                fetch.append((time.perf_counter() - start) * 1e6)
            facts = [g.facts() for g in candidates]
            resource = dataset_resource(dataset)
            now = datetime(2026, 11, 26, tzinfo=UTC)
            decide, bare = [], []
            entities = (
                _actor_entities(caller)
                + [
                    {
                        "uid": uid("Dataset", "traffic-flow"),
                        "attrs": {**resource.attrs, "owner": {"__entity": uid("Department", "transport")}},
                        "parents": [],
                    }
                ]
                + [f.entity() for f in facts]
            )
            request = {
                "principal": uid("Principal", principal_key(caller)),
                "action": uid("Action", "ReadData"),
                "resource": uid("Dataset", "traffic-flow"),
                "context": {
                    "now": int(now.timestamp()),
                    "purpose": "read",
                    "grant": {"__entity": uid("Grant", facts[0].grant_id)},
                },
            }
            policies = engine._policies
            schema = engine._schema
            for _ in range(DECISIONS):
                start = time.perf_counter()
                decisions = engine.decide_each(caller, "ReadData", resource, now, "read", [None, *facts])
                decide.append((time.perf_counter() - start) * 1e6)
                start = time.perf_counter()
                answer = cedarpy.is_authorized(request, policies, entities, schema)
                bare.append((time.perf_counter() - start) * 1e6)
            assert not decisions[0].allowed and all(d.allowed for d in decisions[1:]) and answer.allowed
            print(
                f"{total:>6} grants in the platform ({len(facts)} candidate): authorize() {percentiles(decide)} | "
                f"bare cedarpy on the same entities {percentiles(bare)} | "
                f"fetching the candidates by key (moto in-process) {percentiles(fetch)}"
            )


if __name__ == "__main__":
    main()
