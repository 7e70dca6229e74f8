"""AWS-side tests against moto (in-process): the spec's resources, created as the local stack does."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from functions.audit.chain import AuditLog
from functions.catalog.models import Dataset
from functions.catalog.repository import CatalogRepository
from functions.core import aws
from functions.core.settings import Settings, get_settings
from functions.handlers import services, wiring
from functions.identity.directory import DirectoryRepository
from functions.identity.models import Caller
from functions.ingest.models import Upload, UploadRequest
from functions.ingest.repository import IngestRepository
from functions.ingest.service import IngestService
from functions.ingest.uploads import new_upload_id
from functions.sharing.models import AccessRequestCreate
from functions.sharing.service import SharingService
from infra.local.fidelity import make_conditional_writes_atomic
from infra.local.provision import physical_names, provision
from infra.spec import function_environment
from tests.aws_rules import AwsRules, role_in
from tests.datasets import city_schema


@dataclass
class Aws:
    session: Any
    names: dict[tuple[str, str], str]
    queue_urls: dict[str, str]
    clients: dict[str, Any] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        """One client per service (making a client costs tens of milliseconds)."""
        if service not in self.clients:
            self.clients[service] = self.session.client(service)
        return self.clients[service]

    def table(self, name: str) -> str:
        return self.names[("table", name)]


@pytest.fixture
def atomic_conditional_writes() -> None:
    """Concurrency tests need DynamoDB's atomic conditional writes, which moto lacks (see infra/local/fidelity.py)."""
    make_conditional_writes_atomic()


@pytest.fixture
def moto_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    for variable in [v for v in os.environ if v.startswith("AWS_")]:
        monkeypatch.delenv(variable)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    with mock_aws():
        aws.reset_clients()
        session = boto3.session.Session()
        # Calls with policy documents are checked against the rules AWS applies and moto does not.
        with AwsRules(role_exists=role_in(session.client("iam"))).active():
            names = physical_names("it")
            queue_urls = provision(session, names)
            yield Aws(session, names, queue_urls)
    aws.reset_clients()


@pytest.fixture
def settings(moto_aws: Aws, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """The functions' environment, as the stacks set it, pointing at the moto resources."""
    environment = function_environment(moto_aws.names, stage="it", audience="it")
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    forget_built_services()
    provision_departments(*CITY)
    yield get_settings()
    forget_built_services()


def forget_built_services() -> None:
    """Forget every service the handlers built once per process (their clients and table names
    belong to one moto): the settings, each cached builder of functions.handlers, the clients."""
    get_settings.cache_clear()
    for name, module in list(sys.modules.items()):
        if name.startswith("functions.handlers") and module is not None:
            for value in list(vars(module).values()):
                if callable(getattr(value, "cache_clear", None)):
                    value.cache_clear()
    aws.reset_clients()


# The departments the tests' data belongs to, registered and provisioned (each its own KMS key).
CITY = ("environment", "transport", "health", "public-safety", "city-management", "platform")


def register_principal(department: str, principal: str = "p", *roles: str) -> None:
    """A principal with an active key in the directory: what background work (rules, derived
    datasets, subscriptions) acts as, and is refused without."""
    from functions.identity.models import Principal, PublicKey

    directory = DirectoryRepository(get_settings().directory_table)
    directory.put_principal(Principal(department_id=department, principal_id=principal, roles=list(roles or ("member",))))
    key = PublicKey(
        department_id=department,
        principal_id=principal,
        kid=f"{department}-{principal}",
        alg="ES256",
        jwk={"kty": "EC", "crv": "P-256", "x": f"{department}-{principal}", "y": "y"},  # a stand-in: each its own,
        created_at="t",
    )
    if key.kid not in {k.kid for k in directory.list_keys(department)}:
        directory.add_key(key)


def provision_departments(*departments: str) -> None:
    from functions.identity.models import Department
    from functions.identity.provisioning import Provisioner

    directory = DirectoryRepository(get_settings().directory_table)
    for department in departments:
        if directory.get_department(department) is None:
            directory.create_department(Department(department_id=department, name=department.title(), created_at="t"))
        Provisioner(directory, "it").provision(department)
        register_principal(department)


def published_events(moto_aws: Aws) -> list[dict[str, Any]]:
    """What reached the events queue through the bus and its rule."""
    sqs = moto_aws.client("sqs")
    messages = sqs.receive_message(QueueUrl=moto_aws.queue_urls["events"], MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]


def assert_matches_published_schema(envelope: dict[str, Any]) -> None:
    """An event as it left the bus matches the JSON Schema CityShare publishes for its type."""
    import jsonschema

    schemas = Path(__file__).resolve().parents[2] / "schemas" / "events"
    jsonschema.validate(envelope["detail"], json.loads((schemas / f"{envelope['detail-type']}.json").read_text()))


def member(department: str, principal: str, *roles: str) -> Caller:
    return Caller(
        department_id=department, principal_id=principal, roles=roles or ("member",), jti="j" * 16, body_sha256="x" * 43
    )


STEWARDS = (member("transport", "steward-a", "member", "steward"), member("transport", "steward-b", "member", "steward"))
ANALYST = member("environment", "analyst")


@pytest.fixture
def sharing(settings: Settings, atomic_conditional_writes: None) -> Iterator[SharingService]:
    builders = [services.access_control, services.catalog, services.sharing_repository, services.sharing, wiring.audit_log]
    for builder in builders:
        builder.cache_clear()
    CatalogRepository(settings.catalog_table).create(
        Dataset.model_validate(
            {
                "dataset_id": "traffic-flow",
                "title": "Traffic flow",
                "classification": "internal",
                "schema": city_schema("traffic-flow"),
                "owner": "transport",
                "created_at": "2026-11-01T00:00:00+00:00",
                "updated_at": "2026-11-01T00:00:00+00:00",
                "created_by": "steward-a",
            }
        )
    )
    yield services.sharing()
    for builder in builders:
        builder.cache_clear()


def ask(sharing: SharingService) -> str:
    request = AccessRequestCreate(
        purpose="Pollution near congested roads",
        purpose_category="environment-monitoring",
        legal_basis="public-task",
        columns=["segment_id", "district", "avg_speed_kmh"],
        until="2027-12-31",
    )
    return sharing.request_access(ANALYST, "traffic-flow", request).request_id


# -- ingest of air-quality uploads (the ingest function's service, against moto)
CSV = b"station_id,district,measured_at,pm25\nAQ-001,Centre,2026-11-04T08:00:00Z,12.5\nAQ-002,Harbour,2026-11-04T08:00:00Z,80.1\n"


@pytest.fixture
def service(moto_aws: Aws, settings: Settings) -> IngestService:
    dynamodb = moto_aws.client("dynamodb")
    CatalogRepository(settings.catalog_table, dynamodb).create(
        Dataset.model_validate(
            {
                "dataset_id": "air-quality",
                "title": "Air",
                "classification": "public",
                "schema": city_schema("air-quality"),
                "owner": "environment",
                "created_at": "t",
                "updated_at": "t",
                "created_by": "sensors",
            }
        )
    )
    return IngestService(
        settings,
        IngestRepository(settings.catalog_table, dynamodb),
        CatalogRepository(settings.catalog_table, dynamodb),
        wiring.key_service(),
        AuditLog(settings.audit_table, dynamodb),
        wiring.scopes(),
        wiring.department_keys(),
        moto_aws.client("events"),
    )


def land(moto_aws: Aws, settings: Settings, data: bytes = CSV) -> str:
    upload_id = new_upload_id()
    key = f"landing/environment/air-quality/{upload_id}/data.csv"
    IngestRepository(settings.catalog_table, moto_aws.client("dynamodb")).create_upload(
        Upload(
            upload_id=upload_id,
            dataset_id="air-quality",
            owner="environment",
            created_by="sensors",
            created_at="t",
            request=UploadRequest(filename="data.csv", format="csv", size_bytes=len(data)),
            landing_key=key,
        )
    )
    moto_aws.client("s3").put_object(Bucket=settings.data_bucket, Key=key, Body=data)
    return key


def versions(service: IngestService) -> list[int]:
    return [v.version for v in service._uploads.list_versions("air-quality")]


def commit_version(settings: Settings, dataset_id: str, owner: str, number: int, files: list[str], rows: int) -> None:
    """A version committed as ingest commits it (its dataset's latest version must be number - 1)."""
    from functions.catalog.profiles import DatasetProfile
    from functions.ingest.models import DatasetVersion, IngestReport

    uploads = IngestRepository(settings.catalog_table)
    upload = Upload(
        upload_id=new_upload_id(),
        dataset_id=dataset_id,
        owner=owner,
        created_by="p",
        created_at="t",
        request=UploadRequest(filename="data.csv", format="csv", size_bytes=1),
        landing_key=f"landing/{owner}/{dataset_id}/x/data.csv",
    )
    uploads.create_upload(upload)
    assert uploads.mark_processing(upload, "t", "atest")
    version = DatasetVersion(
        dataset_id=dataset_id,
        version=number,
        owner=owner,
        upload_id=upload.upload_id,
        created_at="t",
        rows=rows,
        files=files,
        bytes=1,
        content_sha256="0" * 64,
        profile=DatasetProfile(rows=rows, columns={}),
        report=IngestReport(rows_read=rows, rows_accepted=rows),
        output_schema={},
    )
    uploads.commit_version(version, "t", "atest")
    uploads.settled(dataset_id, upload.upload_id, "published")
