"""API figures on the embedded stack (this machine, one process, moto on loopback):

- requests per second for an authorised catalog read (GET /datasets/{id}), sequential and with
  4 client threads;
- the cost of verifying one signed request (TokenVerifier.verify with the directory and nonce
  lookups answered from memory), against PyJWT's bare ES256 decode;
- the AWS calls one authorised catalog read makes, counted with botocore's event hooks.
"""

from __future__ import annotations

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
    ("dynamodb", "BatchGetItem"): "authorizer: department, principal and key of the signer, in one round trip",
    ("dynamodb", "PutItem", "nonces"): "authorizer: remember the token's jti (conditional write: refuses replays)",
    ("dynamodb", "GetItem"): "api: the dataset's catalog entry (owner and classification decide access)",
    ("dynamodb", "Query"): "api: head of the owner's audit chain (to link the new entry)",
    ("dynamodb", "PutItem", "audit"): "api: append the decision to the audit chain (conditional on the position)",
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


def embedded_stack() -> None:
    from cityshare import CityShareClient, Profile
    from cityshare.keys import generate_key
    from functions.core import aws
    from infra.local.stack import LocalStack

    state = Path(tempfile.mkdtemp(prefix="cityshare-bench-"))
    stack = LocalStack(state)
    endpoints = stack.start()
    try:
        admin_profile = Profile.load(endpoints.profile_path)
        admin = CityShareClient.from_profile(admin_profile)
        admin.register_department("transport", "Transport")
        admin.put_principal("transport", "reader", ["member"])
        key = admin.add_key("transport", "reader", generate_key(state / "reader.pem"))
        profile = admin_profile.as_principal("transport", "reader", str(state / "reader.pem"), key["kid"])
        reader = CityShareClient.from_profile(profile)
        reader.create_dataset(
            "traffic-flow", "Traffic flow", "internal", {"type": "object", "properties": {"segment_id": {"type": "string"}}}
        )
        reader.get_dataset("traffic-flow")  # warm: clients created, policies parsed

        calls: list[tuple[str, ...]] = []
        lock = threading.Lock()

        def count(model: Any, params: dict[str, Any], **_: Any) -> None:
            table = str(params.get("TableName") or next(iter(params.get("RequestItems") or {}), ""))
            with lock:
                calls.append((model.service_model.service_name, model.name, table.rsplit("-", 1)[-1]))

        aws.client("dynamodb").meta.events.register("before-parameter-build.*.*", count)
        reader.get_dataset("traffic-flow")
        print(f"AWS calls for one authorised catalog read: {len(calls)}")
        for service, operation, table in calls:
            reason = WHY.get((service, operation, table)) or WHY.get((service, operation), "?")
            print(f"  {service}.{operation} ({table}): {reason}")
        aws.client("dynamodb").meta.events.unregister("before-parameter-build.*.*", count)

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
