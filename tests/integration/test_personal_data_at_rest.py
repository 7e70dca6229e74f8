"""Personal data at rest, against moto: originals deleted once published (tagged for a short
retention once rejected), pseudonyms in each department's own token space (the audit's lookup-table
attack recovers nothing), linkage only under a grant, decrypting views per grant and short-lived."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow.parquet as pq
import pytest
import requests

from functions.audit.chain import AuditLog
from functions.catalog.models import Dataset
from functions.catalog.repository import CatalogRepository
from functions.core.errors import InvalidRequest, NotFound
from functions.core.settings import Settings
from functions.handlers import services, wiring
from functions.ingest.models import Upload, UploadRequest
from functions.ingest.repository import IngestRepository
from functions.ingest.service import REJECTED_TAG, IngestService
from functions.ingest.uploads import new_upload_id
from functions.policy.actors import Actors
from functions.sharing.liveness import GrantLiveness
from functions.sharing.models import GrantCreate, GrantTerms
from functions.sharing.placement import ViewJanitor
from functions.sharing.service import SharingService
from infra.spec import REJECTED_UPLOAD_TAG
from tests.datasets import city_schema
from tests.integration.conftest import Aws, member

TRANSPORT_STEWARD = member("transport", "steward", "member", "steward")
SAFETY = member("public-safety", "officer")
CITY_STEWARD = member("city-management", "steward", "member", "steward")
PLATES = ["AB123CD", "ZX999YY", "KL555MN", "TAXI001", "DIPLOMATIC-00042"]  # the last one too long for a block
READS = "camera_id,read_at,plate,confidence,lane\n" + "".join(
    f"CAM-0001,2026-11-04T08:0{n}:00Z,{plate},0.9,1\n" for n, plate in enumerate(PLATES)
)
FINES = "fine_id,issued_at,district,plate,offence,amount_eur\n" + "".join(
    f"F-0000000{n},2026-11-04T09:00:00Z,Centre,{plate},parking,60\n"
    for n, plate in enumerate(["AB123CD", "TAXI001", "QQ000QQ", "DIPLOMATIC-00042"])
)


def _dataset(dataset_id: str, owner: str, schema: str, classification: str = "internal") -> Dataset:
    return Dataset.model_validate(
        {
            "dataset_id": dataset_id,
            "title": dataset_id,
            "classification": classification,
            "schema": city_schema(schema),
            "owner": owner,
            "created_at": "t",
            "updated_at": "t",
            "created_by": "p",
        }
    )


@pytest.fixture
def city(moto_aws: Aws, settings: Settings) -> Iterator[tuple[IngestService, SharingService]]:
    builders = [
        services.access_control,
        services.catalog,
        services.sharing_repository,
        services.sharing,
        services._view_builder,
        wiring.audit_log,
    ]
    for builder in builders:
        builder.cache_clear()
    catalog = CatalogRepository(settings.catalog_table)
    for dataset in (
        _dataset("plate-reads", "transport", "plate-reads"),
        _dataset("parking-fines", "public-safety", "parking-fines"),
        _dataset("candidate-plates", "city-management", "plate-reads"),
        _dataset("service-requests", "city-management", "service-requests"),
    ):
        catalog.create(dataset)
    dynamodb = moto_aws.client("dynamodb")
    ingest = IngestService(
        settings,
        IngestRepository(settings.catalog_table, dynamodb),
        catalog,
        wiring.key_service(),
        AuditLog(settings.audit_table, dynamodb),
        wiring.scopes(),
        wiring.department_keys(),
        moto_aws.client("events"),
    )
    yield ingest, services.sharing()
    for builder in builders:
        builder.cache_clear()


def publish(moto_aws: Aws, settings: Settings, ingest: IngestService, dataset_id: str, owner: str, data: str) -> str:
    upload_id = new_upload_id()
    key = f"landing/{owner}/{dataset_id}/{upload_id}/data.csv"
    IngestRepository(settings.catalog_table).create_upload(
        Upload(
            upload_id=upload_id,
            dataset_id=dataset_id,
            owner=owner,
            created_by="p",
            created_at="t",
            request=UploadRequest(filename="data.csv", format="csv", size_bytes=len(data.encode())),
            landing_key=key,
        )
    )
    moto_aws.client("s3").put_object(Bucket=settings.data_bucket, Key=key, Body=data.encode())
    ingest.process(settings.data_bucket, key)
    return key


def curated_rows(moto_aws: Aws, settings: Settings, dataset_id: str) -> list[dict[str, Any]]:
    files = CatalogRepository(settings.catalog_table).get(dataset_id).latest_files  # type: ignore[union-attr]
    body = moto_aws.client("s3").get_object(Bucket=settings.data_bucket, Key=files[0])["Body"].read()
    return pq.read_table(io.BytesIO(body)).to_pylist()


def all_objects(moto_aws: Aws, settings: Settings, prefix: str) -> dict[str, bytes]:
    s3 = moto_aws.client("s3")
    listed = s3.list_objects_v2(Bucket=settings.data_bucket, Prefix=prefix).get("Contents", [])
    return {o["Key"]: s3.get_object(Bucket=settings.data_bucket, Key=o["Key"])["Body"].read() for o in listed}


def view_rows(access: Any) -> list[dict[str, Any]]:
    return [
        row for file in access.files for row in pq.read_table(io.BytesIO(requests.get(file.url, timeout=10).content)).to_pylist()
    ]


def test_no_plate_is_kept_in_clear_once_published_or_rejected(moto_aws: Aws, settings: Settings, city: Any) -> None:
    ingest, _ = city
    landing = publish(moto_aws, settings, ingest, "plate-reads", "transport", READS)
    s3 = moto_aws.client("s3")
    assert "Contents" not in s3.list_objects_v2(Bucket=settings.data_bucket, Prefix=landing)  # the original is gone
    stored = all_objects(moto_aws, settings, "")
    assert set(k.split("/")[0] for k in stored) == {"curated", "vault"}
    for key, body in stored.items():
        for plate in PLATES:
            assert plate.encode() not in body, key  # vault sealed, curated tokens
    rejected = publish(moto_aws, settings, ingest, "plate-reads", "transport", READS + "CAM-0001,nope,SECRET99,0.9,1\n")
    tags = s3.get_object_tagging(Bucket=settings.data_bucket, Key=rejected)["TagSet"]
    assert {(t["Key"], t["Value"]) for t in tags} == {REJECTED_TAG} and REJECTED_TAG == REJECTED_UPLOAD_TAG
    quarantine = all_objects(moto_aws, settings, "quarantine/")
    assert quarantine and all(b"SECRET99" not in body for body in quarantine.values())
    upload = IngestRepository(settings.catalog_table).get_upload("plate-reads", rejected.split("/")[3])
    assert upload is not None and upload.status == "rejected" and "SECRET99" not in upload.model_dump_json()


def test_a_department_uploading_candidate_plates_recovers_nothing(moto_aws: Aws, settings: Settings, city: Any) -> None:
    ingest, _ = city
    publish(moto_aws, settings, ingest, "plate-reads", "transport", READS)
    candidates = "camera_id,read_at,plate,confidence,lane\n" + "".join(
        f"CAM-0002,2026-11-04T08:00:00Z,{plate},0.5,1\n" for plate in [*PLATES, *(f"ZZ{n:03d}ZZ" for n in range(200))]
    )
    publish(moto_aws, settings, ingest, "candidate-plates", "city-management", candidates)
    lookup = {row["plate"] for row in curated_rows(moto_aws, settings, "candidate-plates")}
    transport_tokens = {row["plate"] for row in curated_rows(moto_aws, settings, "plate-reads")}
    assert len(transport_tokens) == len(PLATES) and not transport_tokens & lookup


def test_linkage_joins_both_sides_under_a_grant_and_nowhere_else(moto_aws: Aws, settings: Settings, city: Any) -> None:
    ingest, sharing = city
    publish(moto_aws, settings, ingest, "plate-reads", "transport", READS)
    publish(moto_aws, settings, ingest, "parking-fines", "public-safety", FINES)  # before any linkage grant
    until = (datetime.now(UTC) + timedelta(days=30)).isoformat(timespec="seconds")

    def grant(terms: GrantTerms, legal_basis: str = "legal-obligation") -> Any:
        request = GrantCreate(
            grantee_department="public-safety",
            purpose="Match fines with camera reads for enforcement",
            purpose_category="public-safety",
            legal_basis=legal_basis,  # type: ignore[arg-type]
            terms=terms,
        )
        return sharing.grant(TRANSPORT_STEWARD, "plate-reads", request)

    plain = grant(GrantTerms(expires_at=until))
    unlinked = {row["plate"] for row in view_rows(sharing.read(SAFETY, "plate-reads", None, plain.grant_id))}
    other = grant(GrantTerms(expires_at=until))
    elsewhere = {row["plate"] for row in view_rows(sharing.read(SAFETY, "plate-reads", None, other.grant_id))}
    owners = {row["plate"] for row in curated_rows(moto_aws, settings, "plate-reads")}
    own = {row["plate"] for row in curated_rows(moto_aws, settings, "parking-fines")}
    assert len(unlinked) == len(PLATES) and not unlinked & own  # two token spaces: nothing joins
    # Tokens per grant: two plain grants' views do not join, nor with the owner's own tokens.
    assert len(elsewhere) == len(PLATES) and not elsewhere & unlinked and not unlinked & owners

    with pytest.raises(InvalidRequest, match="legal basis"):
        grant(GrantTerms(linked_columns=["plate"], linked_datasets=["parking-fines"], expires_at=until), legal_basis="none")
    with pytest.raises(InvalidRequest, match="expiry"):
        grant(GrantTerms(linked_columns=["plate"], linked_datasets=["parking-fines"]))
    with pytest.raises(InvalidRequest, match="linked_datasets"):
        grant(GrantTerms(linked_columns=["plate"], expires_at=until))
    linkage = grant(GrantTerms(linked_columns=["plate"], linked_datasets=["parking-fines"], expires_at=until))
    reads = view_rows(sharing.read(SAFETY, "plate-reads", None, linkage.grant_id))
    # A version published before the linkage was granted is not re-keyed: only what it was granted for.
    with pytest.raises(InvalidRequest, match="before linkage grant"):
        sharing.read(SAFETY, "parking-fines", None, None, linkage=linkage.grant_id)
    publish(moto_aws, settings, ingest, "parking-fines", "public-safety", FINES)
    fines = view_rows(sharing.read(SAFETY, "parking-fines", None, None, linkage=linkage.grant_id))
    joined = {r["plate"] for r in reads} & {f["plate"] for f in fines}
    assert len(joined) == 3  # AB123CD, TAXI001 and the long plate are in both; QQ000QQ only in fines
    assert all(len(token) == 32 for token in joined) and not joined & own and not joined & unlinked
    # The plain grant's view and the linkage view line up row for row, yet share no token: no dictionary.
    assert not {r["plate"] for r in reads} & unlinked
    # Only the datasets the grant names are re-keyed: a candidate list of the grantee's is not.
    catalog = CatalogRepository(settings.catalog_table)
    catalog.create(_dataset("candidates", "public-safety", "plate-reads"))
    publish(moto_aws, settings, ingest, "candidates", "public-safety", READS)
    with pytest.raises(InvalidRequest, match="links parking-fines, not candidates"):
        sharing.read(SAFETY, "candidates", None, None, linkage=linkage.grant_id)
    # Another department's own data is never re-keyed with public safety's linkage grant.
    with pytest.raises(NotFound, match="linkage grant"):
        sharing.read(CITY_STEWARD, "candidate-plates", None, None, linkage=linkage.grant_id)
    # Revocation ends the linkage and deletes its per-grant views.
    assert [k for k in all_objects(moto_aws, settings, "views/grant/")]
    sharing.revoke(TRANSPORT_STEWARD, "plate-reads", linkage.grant_id)
    assert not all_objects(moto_aws, settings, f"views/grant/transport/public-safety/{linkage.grant_id}/")
    with pytest.raises(NotFound, match="linkage grant"):
        sharing.read(SAFETY, "parking-fines", None, None, linkage=linkage.grant_id)


def test_decrypting_views_are_per_grant_and_swept_after_a_day(moto_aws: Aws, settings: Settings, city: Any) -> None:
    ingest, sharing = city
    rows = "request_id,opened_at,category,district,address,phone,latitude,longitude,status\n"
    rows += "SR-00000001,2026-11-04T08:00:00Z,pothole,Harbour,12 Market Street,+44 7700 900123,51.456789,-2.587654,open\n"
    publish(moto_aws, settings, ingest, "service-requests", "city-management", rows)
    request = GrantCreate(
        grantee_department="public-safety",
        purpose="Attend reported hazards at their address",
        purpose_category="public-safety",
        legal_basis="vital-interests",
        terms=GrantTerms(columns=["request_id", "address"], decrypt_columns=["address"]),
    )
    grant = sharing.grant(CITY_STEWARD, "service-requests", request)
    assert view_rows(sharing.read(SAFETY, "service-requests", None, grant.grant_id))[0]["address"] == "12 Market Street"
    clear = all_objects(moto_aws, settings, "views/clear/")
    assert list(clear) and all(f"/{grant.grant_id}/" in key for key in clear)
    assert not all_objects(moto_aws, settings, "views/shared/")
    janitor = ViewJanitor(settings.data_bucket, wiring.scopes(), lister=moto_aws.client("s3"))
    repository = services.sharing_repository()
    catalog = CatalogRepository(settings.catalog_table)
    liveness = GrantLiveness(services.catalog(), Actors(wiring.directory()), repository, catalog)
    assert janitor.sweep(liveness.live, datetime.now(UTC)) == 0  # live and fresh: kept
    assert janitor.sweep(liveness.live, datetime.now(UTC) + timedelta(hours=25)) == 1
    assert not all_objects(moto_aws, settings, "views/clear/")


def test_private_releases_spend_one_budget_per_grantee_and_dataset(moto_aws: Aws, settings: Settings, city: Any) -> None:
    """Each version's private view spends epsilon once (reading it again costs nothing); two grants on
    the same dataset draw from one ledger; past the budget, releases are refused and the owner's
    stewards are told; every spend is in the owner's chain."""
    from functions.core.errors import PrivacyBudgetExhausted
    from tests.integration.conftest import published_events

    ingest, sharing = city
    header = "request_id,opened_at,category,district,address,phone,latitude,longitude,status\n"

    def requests(version: int) -> str:
        return header + "".join(
            f"SR-{version}{n:07d},2026-11-04T08:00:00Z,pothole,Centre,1 Main,+44 7700 {version}{n:05d},51.45,-2.58,open\n"
            for n in range(60)
        )

    privacy = {"epsilon": 1.0, "budget": 2.5}
    made = [
        sharing.grant(
            CITY_STEWARD,
            "service-requests",
            GrantCreate(
                grantee_department="transport",
                purpose="Where potholes cluster, for road works",
                purpose_category="planning",
                legal_basis="public-task",
                terms=GrantTerms.model_validate({"aggregate": {"group_by": group_by, "privacy": privacy}}),
            ),
        )
        for group_by in (["district"], ["category"])
    ]
    reader = member("transport", "planner")
    publish(moto_aws, settings, ingest, "service-requests", "city-management", requests(1))
    first = sharing.read(reader, "service-requests", None, made[0].grant_id)
    assert first.restricted and first.suppressed is None  # nothing said of what was held back
    sharing.read(reader, "service-requests", None, made[0].grant_id)  # the same release again: free
    sharing.read(reader, "service-requests", None, made[1].grant_id)  # another grant: the same ledger
    listed = {g.grant_id: g.privacy_spent for g in sharing.grants(CITY_STEWARD, "service-requests")}
    assert listed == {made[0].grant_id: 2.0, made[1].grant_id: 2.0}
    publish(moto_aws, settings, ingest, "service-requests", "city-management", requests(2))
    with pytest.raises(PrivacyBudgetExhausted, match=r"spent 2 of the 2\.5"):
        sharing.read(reader, "service-requests", None, made[0].grant_id)  # a new version: a new release
    spends = [e for e in AuditLog(settings.audit_table).read("city-management", limit=1000) if e.action == "SpendPrivacyBudget"]
    assert [e.decision for e in spends] == ["allow", "allow", "deny"]
    told = [e for e in published_events(moto_aws) if e["detail-type"] == "PrivacyBudgetExhausted"]
    assert told and told[0]["detail"]["owner"] == "city-management" and told[0]["detail"]["grantee_department"] == "transport"
