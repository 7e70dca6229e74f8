"""Publishing data through the embedded stack: presigned uploads, the S3 -> SQS -> ingest path,
pushed records, reports and versions, with the real SDK and CLI."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from cityshare import CityShareError
from cityshare.generators import generate
from tests.conftest import Member, RunningStack, onboard, unique
from tests.datasets import city_schema
from tests.e2e.test_cli_and_demo import cityshare


@pytest.fixture(scope="module")
def transport(stack: RunningStack) -> Member:
    return onboard(stack, unique("transport"), "traffic-control", ["member"])


@pytest.fixture(scope="module")
def traffic(transport: Member) -> str:
    dataset_id = unique("traffic-flow")
    transport.client.create_dataset(dataset_id, "Traffic flow", "internal", city_schema("traffic-flow"), tags=["traffic"])
    return dataset_id


def test_an_uploaded_csv_becomes_a_version(transport: Member, traffic: str, tmp_path: Path) -> None:
    path = generate("traffic-flow", 3000, tmp_path / "flow.csv")
    seen: list[int] = []
    ticket = transport.client.upload_file(traffic, path, progress=seen.append)
    assert sum(seen) == path.stat().st_size
    upload = transport.client.wait_for_upload(traffic, ticket["upload_id"], timeout=60)
    assert upload["status"] == "published", upload
    version = transport.client.get_version(traffic, upload["version"])
    assert version["rows"] == 3000 and version["report"]["rows_rejected"] == 0
    assert version["profile"]["columns"]["segment_id"]["distinct_estimate"] > 5
    assert version["output_schema"]["measured_at"].startswith("timestamp")
    assert transport.client.list_versions(traffic)[0]["version"] == upload["version"]
    # uploads and versions live beside the dataset but never show up as datasets
    listed = [d["dataset_id"] for d in transport.client.iter_datasets(owner=transport.profile.department)]
    assert listed.count(traffic) == 1


def test_the_presigned_url_is_scoped_to_this_upload_and_expires(transport: Member, traffic: str) -> None:
    ticket = transport.client.request_upload(traffic, "flow.csv", "csv", 1234)
    url = urlsplit(ticket["url"])
    query = parse_qs(url.query)
    assert url.path.endswith(f"/landing/{transport.profile.department}/{traffic}/{ticket['upload_id']}/flow.csv")
    assert int(query["X-Amz-Expires"][0]) <= 900
    assert "content-length" in query["X-Amz-SignedHeaders"][0].split(";")
    assert ticket["headers"]["Content-Length"] == "1234"


def test_a_bad_file_is_rejected_with_a_report_through_the_cli(
    stack: RunningStack, transport: Member, traffic: str, tmp_path: Path
) -> None:
    profile = tmp_path / "profile.json"
    transport.profile.save(profile)
    bad = tmp_path / "broken.csv"
    bad.write_text("segment_id,measured_at,vehicle_count,avg_speed_kmh\nSEG-00001,2026-11-04T08:00:00Z,many,30\n")
    result = cityshare("upload", str(bad), "--dataset", traffic, profile=profile, check=False)
    assert result.returncode == 1
    assert "rejected" in result.stdout and "wrong_type" in result.stdout and "vehicle_count" in result.stdout
    good = generate("traffic-flow", 50, tmp_path / "good.csv")
    published = cityshare("upload", str(good), "--dataset", traffic, profile=profile)
    assert "published as version" in published.stdout
    assert traffic in cityshare("datasets", "list", "--tag", "traffic", profile=profile).stdout
    assert "50" in cityshare("versions", traffic, profile=profile).stdout


def test_pushed_records_become_a_version(transport: Member, traffic: str) -> None:
    records = [{"segment_id": "SEG-00042", "measured_at": "2026-11-04T08:00:00Z", "vehicle_count": 12, "avg_speed_kmh": 8.5}]
    pushed = transport.client.push_records(traffic, records)
    done = transport.client.wait_for_upload(traffic, pushed["upload_id"], timeout=60)
    assert done["status"] == "published" and done["report"]["rows_accepted"] == 1


def test_push_limits_are_enforced(transport: Member, traffic: str) -> None:
    with pytest.raises(CityShareError) as too_many:
        transport.client.push_records(traffic, [{"segment_id": "SEG-00001"}] * 1001)
    assert too_many.value.status == 422
    big = [{"segment_id": "SEG-00001", "district": "x" * 60, "camera_id": "y" * 1000}] * 1000
    with pytest.raises(CityShareError) as too_large:
        transport.client.push_records(traffic, big)
    assert too_large.value.status == 413


def test_another_department_cannot_publish_into_my_dataset(stack: RunningStack, transport: Member, traffic: str) -> None:
    outsider = onboard(stack, unique("environment"), "sensors", ["member", "steward"])
    with pytest.raises(CityShareError) as refused:
        outsider.client.request_upload(traffic, "x.csv", "csv", 10)
    assert (refused.value.status, refused.value.code) == (403, "forbidden")  # internal: visible, not writable
    with pytest.raises(CityShareError) as pushed:
        outsider.client.push_records(traffic, [{"segment_id": "SEG-00001"}])
    assert pushed.value.status == 403
    hidden = unique("plates")
    transport.client.create_dataset(hidden, "Plates", "restricted", city_schema("plate-reads"))
    with pytest.raises(CityShareError) as absent:
        outsider.client.request_upload(hidden, "x.csv", "csv", 10)
    assert (absent.value.status, absent.value.code) == (404, "dataset_not_found")
    with pytest.raises(CityShareError) as versions_hidden:
        outsider.client.list_versions(hidden)
    assert versions_hidden.value.status == 404


@pytest.mark.parametrize(
    "body",
    [
        {"filename": "../../etc/passwd", "format": "csv", "size_bytes": 10},
        {"filename": "a.csv", "format": "exe", "size_bytes": 10},
        {"filename": "a.csv", "format": "csv", "size_bytes": 6 * 1024**3},
        {"filename": "a%2e%2e.csv", "format": "csv", "size_bytes": 1},
        {"filename": "a" * 300 + ".csv", "format": "csv", "size_bytes": 1},
    ],
)
def test_hostile_upload_requests_are_refused(transport: Member, traffic: str, body: dict[str, object]) -> None:
    with pytest.raises(CityShareError) as refused:
        transport.client.request("POST", f"/datasets/{traffic}/uploads", body=body)
    assert (refused.value.status, refused.value.code) == (422, "validation_failed")


def test_an_upload_of_another_size_than_declared_is_rejected(transport: Member, traffic: str) -> None:
    data = b"segment_id,measured_at,vehicle_count,avg_speed_kmh\nSEG-00001,2026-11-04T08:00:00Z,1,30\n"
    ticket = transport.client.request_upload(traffic, "short.csv", "csv", len(data) + 100)
    # moto does not enforce the signed Content-Length (S3 does); the ingest function checks it again
    requests.put(ticket["url"], data=data, headers={"Content-Type": "application/octet-stream"}, timeout=10)
    upload = transport.client.wait_for_upload(traffic, ticket["upload_id"], timeout=60)
    assert upload["status"] == "rejected" and upload["report"]["file_error"] == "size_mismatch"
