"""API figures on the embedded stack (this machine, one process, moto on loopback):

- requests per second for an authorised catalog read (GET /datasets/{id}), sequential and with
  4 client threads;
- the cost of verifying one signed request (TokenVerifier.verify with the directory and nonce
  lookups answered from memory), against PyJWT's bare ES256 decode;
- the AWS calls one authorised catalog read makes, and one authorised data read (GET
  /datasets/{id}/data) of an unrestricted dataset: by another department when public, and under an
  unrestricted grant; counted with botocore's event hooks on every client of the process.
"""

from __future__ import annotations

import json
import secrets
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

READS = 300
THREADS = 4
WHY = {
    ("dynamodb", "GetItem", "sharing"): "recipient authorizer (once per token in 5 minutes): the token's recipient",
    ("dynamodb", "GetItem", "directory"): "recipient authorizer (once per token in 5 minutes): the department's throttling key",
    ("dynamodb", "BatchGetItem", "sharing"): "the token's recipient and the department's index of grants, its department "
    "and the dataset, in one round trip",
    ("dynamodb", "BatchGetItem", "directory"): "authorizer: department, principal and key of the signer, in one round trip",
    ("dynamodb", "BatchGetItem", "catalog"): "the dataset's catalog entry and the caller's index of grants, in one round trip",
    ("dynamodb", "PutItem", "nonces"): "authorizer: remember the token's jti (conditional write: refuses replays)",
    ("dynamodb", "GetItem"): "the dataset's catalog entry (owner, classification, latest version's files)",
    ("dynamodb", "Query", "sharing"): "the grants between the owner and the caller's department (one key query)",
    ("dynamodb", "Query"): "head of the owner's audit chain (to link the new entry)",
    ("dynamodb", "PutItem", "audit"): "append the decision to the audit chain (conditional on the position)",
    ("dynamodb", "TransactWriteItems", "audit"): "append the decision, conditional on its position and on the grant "
    "it allows still being active (one transaction)",
}


def verify_cost() -> None:
    from functions.identity.binding import TOKEN_TYPE, body_digest
    from functions.identity.models import Department, Principal, PublicKey
    from functions.identity.tokens import TokenVerifier
    from tests.unit.fakes import MemoryDirectory, MemoryNonces
    from tests.unit.fakes import settings as fake_settings

    settings = fake_settings(audience="bench")
    key = ec.generate_private_key(ec.SECP256R1())
    directory = MemoryDirectory()
    directory.departments["transport"] = Department(department_id="transport", name="T", created_at="t")
    directory.principals[("transport", "p")] = Principal(department_id="transport", principal_id="p", roles=["member"])
    jwk = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    directory.keys[("transport", "k")] = PublicKey(
        department_id="transport", principal_id="p", kid="k", alg="ES256", jwk=jwk, created_at="t"
    )
    verifier = TokenVerifier(settings, directory, MemoryNonces())  # type: ignore[arg-type]
    now = int(time.time())
    tokens = [
        jwt.encode(
            {
                "iss": "transport",
                "sub": "p",
                "aud": "bench",
                "iat": now,
                "exp": now + 60,
                "jti": secrets.token_urlsafe(24),
                "htm": "GET",
                "htu": "/datasets/x",
                "bsh": body_digest(b""),
            },
            key,
            algorithm="ES256",
            headers={"kid": "k", "typ": TOKEN_TYPE},
        )
        for _ in range(2000)
    ]
    public = key.public_key()
    samples, bare = [], []
    for token in tokens:
        start = time.perf_counter()
        verifier.verify(token, "GET", "/datasets/x")
        samples.append((time.perf_counter() - start) * 1e6)
        start = time.perf_counter()
        jwt.decode(token, public, algorithms=["ES256"], audience="bench")
        bare.append((time.perf_counter() - start) * 1e6)
    samples.sort()
    bare.sort()
    print(
        f"verify one signed request: p50 {samples[len(samples) // 2]:.0f} µs, p99 {samples[int(len(samples) * 0.99)]:.0f} µs "
        f"(bare PyJWT ES256 decode p50 {bare[len(bare) // 2]:.0f} µs)"
    )


def count_calls(what: str, action: Any) -> None:
    """Run `action` once, printing every AWS call the process made for it (botocore event hooks)."""
    from functions.core import aws

    calls: list[tuple[str, ...]] = []
    lock = threading.Lock()

    def count(model: Any, params: dict[str, Any], **_: Any) -> None:
        # before-call fires for requests sent to AWS only (presigning a URL is local and is not counted).
        if threading.current_thread().name.startswith("pump-"):
            return  # the queue consumers (ingest, triggers) running meanwhile
        body = params.get("body") or b"{}"
        try:
            sent = json.loads(body) if isinstance(body, bytes | str) else {}
        except ValueError:
            sent = {}
        items = sent.get("TransactItems") or [{}]
        first: dict[str, Any] = next(iter(items[0].values()), {}) if items[0] else {}
        table = str(sent.get("TableName") or next(iter(sent.get("RequestItems") or {}), "") or first.get("TableName", ""))
        with lock:
            calls.append((model.service_model.service_name, model.name, table.rsplit("-", 1)[-1]))

    clients = [aws.client(service) for service in ("dynamodb", "s3", "kms", "events", "sns")]
    for client in clients:
        client.meta.events.register("before-call.*.*", count)
    try:
        action()
    finally:
        for client in clients:
            client.meta.events.unregister("before-call.*.*", count)
    print(f"AWS calls for {what}: {len(calls)}")
    for service, operation, table in calls:
        reason = WHY.get((service, operation, table)) or WHY.get((service, operation), "?")
        print(f"  {service}.{operation} ({table}): {reason}")


def count_delta_sharing_query(steward: Any, state: Path) -> None:
    """The AWS calls of one Delta Sharing query (recipient authorizer, the table, the audited read)."""
    import requests

    from cityshare.delta import write_profile

    share = json.loads(write_profile(steward.issue_share_profile("health", 1, "benchmark"), state / "health.share").read_text())
    headers = {"Authorization": f"Bearer {share['bearerToken']}"}
    tables = requests.get(f"{share['endpoint']}/shares/transport/all-tables", headers=headers, timeout=30).json()["items"]
    table = next(t for t in tables if t["name"] == "counts-granted")
    query = f"{share['endpoint']}/shares/transport/schemas/{table['schema']}/tables/{table['name']}/query"
    metadata = query.removesuffix("/query") + "/metadata"
    # The listing above was the token's first request: API Gateway (and the embedded gateway) keep
    # the recipient authorizer's answer for the token from there.
    requests.post(query, headers=headers, json={}, timeout=30).raise_for_status()  # warm
    count_calls("one Delta Sharing query under a grant", lambda: requests.post(query, headers=headers, json={}, timeout=30))
    count_calls("one Delta Sharing metadata request", lambda: requests.get(metadata, headers=headers, timeout=30))
    fresh = json.loads(write_profile(steward.issue_share_profile("health", 1, "first"), state / "first.share").read_text())
    first = {"Authorization": f"Bearer {fresh['bearerToken']}"}
    count_calls("the first Delta Sharing query of a token", lambda: requests.post(query, headers=first, json={}, timeout=30))


def embedded_stack() -> None:
    from cityshare import CityShareClient, Profile
    from cityshare.admin import enrol
    from infra.local.stack import LocalStack

    state = Path(tempfile.mkdtemp(prefix="cityshare-bench-"))
    stack = LocalStack(state, persistent=False)  # the platform measured; keeping state: benchmarks/local_state.py
    endpoints = stack.start()
    try:
        admin_profile = Profile.load(endpoints.profile_path)
        admin = CityShareClient.from_profile(admin_profile)
        admin.register_department("transport", "Transport")
        profile = enrol(admin, admin_profile, "transport", "reader", ["member"], state / "reader.pem")
        reader = CityShareClient.from_profile(profile)
        reader.create_dataset(
            "traffic-flow", "Traffic flow", "internal", {"type": "object", "properties": {"segment_id": {"type": "string"}}}
        )
        reader.get_dataset("traffic-flow")  # warm: clients created, policies parsed

        count_calls("one authorised catalog read", lambda: reader.get_dataset("traffic-flow"))
        admin.register_department("health", "Health")
        analyst = CityShareClient.from_profile(
            enrol(admin, admin_profile, "health", "analyst", ["member"], state / "analyst.pem")
        )
        schema = {"type": "object", "properties": {"segment_id": {"type": "string"}}}
        for dataset_id, classification in (("counts-public", "public"), ("counts-granted", "internal")):
            reader.create_dataset(dataset_id, dataset_id, classification, schema)
            (state / "counts.csv").write_text("segment_id\nS-1\nS-2\n")
            reader.wait_for_upload(dataset_id, reader.upload_file(dataset_id, state / "counts.csv")["upload_id"], 60)
        steward = CityShareClient.from_profile(
            enrol(admin, admin_profile, "transport", "steward", ["member", "steward"], state / "steward.pem")
        )
        steward.grant("counts-granted", "health", "Benchmark of a granted read", "research")
        for dataset_id in ("counts-public", "counts-granted"):
            analyst.data_access(dataset_id)  # warm
        count_calls(
            "one authorised data read of a public dataset by another department", lambda: analyst.data_access("counts-public")
        )
        count_calls("one authorised data read under an unrestricted grant", lambda: analyst.data_access("counts-granted"))
        count_delta_sharing_query(steward, state)

        latencies = []
        start = time.perf_counter()
        for _ in range(READS):
            began = time.perf_counter()
            reader.get_dataset("traffic-flow")
            latencies.append((time.perf_counter() - began) * 1000)
        elapsed = time.perf_counter() - start
        print(
            f"authorised catalog reads, 1 client: {READS / elapsed:.0f} req/s, p50 {statistics.median(latencies):.1f} ms, "
            f"p99 {sorted(latencies)[int(READS * 0.99)]:.1f} ms"
        )

        clients = [CityShareClient.from_profile(profile) for _ in range(THREADS)]
        start = time.perf_counter()
        threads = [
            threading.Thread(target=lambda c=c: [c.get_dataset("traffic-flow") for _ in range(READS // THREADS)]) for c in clients
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - start
        print(
            f"authorised catalog reads, {THREADS} clients: {READS / elapsed:.0f} req/s "
            "(one function instance serves one request at a time, as in Lambda)"
        )
    finally:
        stack.stop()


def main() -> None:
    verify_cost()
    embedded_stack()


if __name__ == "__main__":
    main()
