"""Delta Sharing over HTTP against the embedded stack: a steward issues a profile, the recipient
department lists and reads exactly its grant's view with a bearer token, time travel over versions,
and the grant's or the token's revocation stopping it at once. (The official connector is driven in
test_delta_sharing_connector.py.)"""

from __future__ import annotations

import base64
import io
import json
import subprocess
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import requests

from cityshare import CityShareError
from cityshare.delta import write_profile
from cityshare.generators import generate
from tests.conftest import Member, RunningStack, onboard, unique
from tests.datasets import city_schema
from tests.tools import tool_python

COLUMNS = ["segment_id", "district", "measured_at", "avg_speed_kmh", "camera_id"]


class Recipient:
    """A bearer-token client, as any Delta Sharing connector talks."""

    def __init__(self, profile: dict[str, Any]) -> None:
        self.endpoint = profile["endpoint"]
        self.headers = {"Authorization": f"Bearer {profile['bearerToken']}"}

    def get(self, path: str, **params: Any) -> requests.Response:
        return requests.get(self.endpoint + path, headers=self.headers, params=params, timeout=30)

    def post(self, path: str, body: dict[str, Any]) -> requests.Response:
        return requests.post(self.endpoint + path, headers=self.headers, json=body, timeout=60)


@pytest.fixture(scope="module")
def shared(stack: RunningStack, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    transport = unique("transport")
    owner = onboard(stack, transport, "traffic-control", ["member"])
    steward = onboard(stack, transport, "steward", ["member", "steward"], register=False)
    consumer = onboard(stack, unique("environment"), "analyst", ["member"])
    dataset_id = unique("traffic-flow")
    owner.client.create_dataset(dataset_id, "Traffic flow", "confidential", city_schema("traffic-flow"), tags=["mobility"])
    folder = tmp_path_factory.mktemp("data")
    for seed, rows in ((1, 500), (2, 800)):  # two versions
        ticket = owner.client.upload_file(dataset_id, generate("traffic-flow", rows, folder / f"flow-{seed}.csv", seed=seed))
        assert owner.client.wait_for_upload(dataset_id, ticket["upload_id"], 60)["status"] == "published"
    grant = steward.client.grant(
        dataset_id,
        consumer.profile.department,
        "Study pollution near congested roads",
        "environment-monitoring",
        terms={
            "columns": COLUMNS,
            "row_filter": {"condition": {"column": "district", "op": "eq", "value": "Centre"}},
            "masked_columns": ["camera_id"],
        },
    )
    profile = steward.client.issue_share_profile(consumer.profile.department, 30, "analysts' notebooks")
    return {"owner": owner, "steward": steward, "consumer": consumer, "dataset": dataset_id, "grant": grant, "profile": profile}


def lines(response: requests.Response) -> list[dict[str, Any]]:
    return [json.loads(line) for line in response.text.splitlines() if line]


def test_the_recipient_lists_its_share_schemas_and_tables(shared: dict[str, Any]) -> None:
    recipient = Recipient(shared["profile"])
    owner = shared["owner"].profile.department
    shares = recipient.get("/shares")
    assert shares.status_code == 200 and shares.json()["items"] == [{"name": owner, "id": owner}]
    assert recipient.get(f"/shares/{owner}").json() == {"share": {"name": owner, "id": owner}}
    assert recipient.get(f"/shares/{owner}/schemas").json()["items"] == [{"name": "mobility", "share": owner}]
    tables = recipient.get(f"/shares/{owner}/all-tables").json()["items"]
    assert [(t["schema"], t["name"]) for t in tables] == [("mobility", shared["dataset"])]
    assert recipient.get(f"/shares/{owner}/schemas/mobility/tables").json()["items"] == tables
    paged = recipient.get(f"/shares/{owner}/all-tables", maxResults=0).json()
    assert paged["items"] == [] and paged["nextPageToken"]
    assert recipient.get("/shares/somebody-else").status_code == 404
    assert recipient.get("/shares/somebody-else").json()["errorCode"] == "RESOURCE_DOES_NOT_EXIST"


def test_a_query_answers_the_grants_view_as_presigned_parquet(shared: dict[str, Any]) -> None:
    recipient = Recipient(shared["profile"])
    table = f"/shares/{shared['owner'].profile.department}/schemas/mobility/tables/{shared['dataset']}"
    version = requests.head(recipient.endpoint + table + "/version", headers=recipient.headers, timeout=30)
    assert version.status_code == 200 and version.headers["Delta-Table-Version"] == "2"
    metadata = recipient.get(table + "/metadata")
    assert metadata.headers["Delta-Table-Version"] == "2"
    protocol, meta = lines(metadata)
    assert protocol == {"protocol": {"minReaderVersion": 1}}
    fields = json.loads(meta["metaData"]["schemaString"])["fields"]
    assert [f["name"] for f in fields] == COLUMNS
    assert {f["name"]: f["type"] for f in fields}["measured_at"] == "timestamp"
    answer = recipient.post(table + "/query", {"predicateHints": ["district = 'Centre'"], "limitHint": 10})
    assert answer.status_code == 200 and answer.headers["Delta-Table-Version"] == "2"
    files = [line["file"] for line in lines(answer) if "file" in line]
    assert files and all(f["url"].startswith("http") and f["expirationTimestamp"] > 0 for f in files)
    data = pq.read_table(io.BytesIO(requests.get(files[0]["url"], timeout=30).content))
    assert data.column_names == COLUMNS
    assert set(data.column("district").to_pylist()) == {"Centre"}
    assert json.loads(files[0]["stats"])["numRecords"] == data.num_rows
    assert not any(str(v).startswith("CAM-") for v in data.column("camera_id").to_pylist() if v)


def test_time_travel_reads_an_earlier_version(shared: dict[str, Any]) -> None:
    recipient = Recipient(shared["profile"])
    table = f"/shares/{shared['owner'].profile.department}/schemas/mobility/tables/{shared['dataset']}"
    first = recipient.post(table + "/query", {"version": 1})
    assert first.headers["Delta-Table-Version"] == "1"
    assert recipient.post(table + "/query", {"version": 9}).status_code == 404
    assert recipient.post(table + "/query", {"timestamp": "2000-01-01T00:00:00Z"}).status_code == 400
    changes = recipient.get(table + "/changes", startingVersion=1, endingVersion=2)
    assert changes.status_code == 200 and changes.headers["Delta-Table-Version"] == "2"
    _, meta, *actions = lines(changes)
    assert meta["metaData"]["configuration"]["enableChangeDataFeed"] == "true"
    kinds = [(next(iter(a)), a[next(iter(a))]["version"]) for a in actions]
    assert kinds == [("add", 1), ("remove", 2), ("add", 2)]  # version 2 replaced version 1's rows
    assert actions[0]["add"]["id"] == actions[1]["remove"]["id"] != actions[2]["add"]["id"]
    wrong = recipient.get(table + "/changes", startingVersion=2, endingVersion=1)
    assert wrong.status_code == 400 and wrong.json()["errorCode"] == "INVALID_PARAMETER_VALUE"
    assert recipient.get(table + "/changes").status_code == 400
    assert recipient.post(table + "/query", {"version": "one"}).status_code == 400


def test_the_token_opens_nothing_else_and_reads_are_audited(shared: dict[str, Any]) -> None:
    recipient = Recipient(shared["profile"])
    me = requests.get(recipient.endpoint.removesuffix("/delta-sharing") + "/me", headers=recipient.headers, timeout=30)
    assert me.status_code == 401  # a recipient token never unlocks CityShare's signed API
    wrong = requests.get(recipient.endpoint + "/shares", headers={"Authorization": "Bearer s" + "0" * 24 + ".x"}, timeout=30)
    assert wrong.status_code == 401
    owner = shared["owner"].profile.department
    read = recipient.post(f"/shares/{owner}/schemas/mobility/tables/{shared['dataset']}/query", {})
    assert read.status_code == 200  # its own read: the tests of this module may run on other workers
    steward: Member = shared["steward"]
    reads = [
        e for e in steward.client.iter_audit() if e["action"] == "ReadData" and e["actor_principal"].startswith("recipient-")
    ]
    assert reads and all(e["details"]["grant"] == shared["grant"]["grant_id"] for e in reads if e["decision"] == "allow")
    listed = steward.client.share_recipients()
    assert listed[0]["department"] == shared["consumer"].profile.department and "bearerToken" not in listed[0]


DRIVER = Path(__file__).with_name("delta_sharing_driver.py")


def connector(profile: dict[str, Any], folder: Path, *arguments: str) -> Any:
    """The official `delta-sharing` connector (its own virtualenv) run on a profile file."""
    path = write_profile(profile, folder / "recipient.share")
    result = subprocess.run(
        [str(tool_python("delta-sharing")), str(DRIVER), str(path), *arguments], capture_output=True, text=True, timeout=300
    )
    if result.returncode != 0:
        raise AssertionError(result.stderr[-3000:])
    return json.loads(result.stdout)


def test_the_official_connector_lists_and_loads_only_the_grants_view(shared: dict[str, Any], tmp_path: Path) -> None:
    owner, dataset_id = shared["owner"].profile.department, shared["dataset"]
    tables = connector(shared["profile"], tmp_path, "tables")
    assert tables == [{"share": owner, "schema": "mobility", "name": dataset_id}]
    whole = connector(shared["profile"], tmp_path, "load", f"{owner}.mobility.{dataset_id}")
    assert whole["columns"] == COLUMNS
    assert whole["values"]["district"] == ["Centre"] and whole["rows"] > 0
    assert not any(v.startswith("CAM-") for v in whole["values"]["camera_id"])
    assert whole["dtypes"]["measured_at"].startswith("datetime64")
    limited = connector(shared["profile"], tmp_path, "load", f"{owner}.mobility.{dataset_id}", "--limit", "5")
    assert limited["rows"] == 5
    first = connector(shared["profile"], tmp_path, "load", f"{owner}.mobility.{dataset_id}", "--version", "1")
    assert 0 < first["rows"] != whole["rows"]  # version 1 had 500 rows, version 2 has 800 (Centre's share of each)
    changes = connector(shared["profile"], tmp_path, "changes", f"{owner}.mobility.{dataset_id}")
    assert changes["change_types"] == {"insert": first["rows"] + whole["rows"], "delete": first["rows"]}
    assert changes["versions"] == [1, 2]


def test_the_official_connector_is_refused_after_revocation(shared: dict[str, Any], tmp_path: Path) -> None:
    steward: Member = shared["steward"]
    spare = steward.client.issue_share_profile(shared["consumer"].profile.department, 1)
    assert connector(spare, tmp_path, "tables")
    steward.client.revoke_share_recipient(spare["recipient"]["recipient_id"])
    with pytest.raises(AssertionError, match="401"):
        connector(spare, tmp_path, "tables")


def test_revoking_the_grant_or_the_token_stops_the_recipient_at_once(stack: RunningStack, shared: dict[str, Any]) -> None:
    steward: Member = shared["steward"]
    owner = shared["owner"].profile.department
    spare = Recipient(steward.client.issue_share_profile(shared["consumer"].profile.department, 1))
    table = f"/shares/{owner}/schemas/mobility/tables/{shared['dataset']}"
    assert spare.post(table + "/query", {}).status_code == 200
    steward.client.revoke_grant(shared["dataset"], shared["grant"]["grant_id"])
    assert spare.get(f"/shares/{owner}/all-tables").json()["items"] == []
    assert spare.post(table + "/query", {}).status_code == 404
    recipient_id = spare.headers["Authorization"].split()[1].split(".")[0]
    steward.client.revoke_share_recipient(recipient_id)
    assert spare.get("/shares").status_code == 401
    with pytest.raises(CityShareError) as again:
        steward.client.revoke_share_recipient(recipient_id)
    assert again.value.status == 409
    consumer: Member = shared["consumer"]
    with pytest.raises(CityShareError) as not_a_steward:
        consumer.client.issue_share_profile(owner)
    assert not_a_steward.value.status == 403


def test_the_cli_writes_a_profile_file(stack: RunningStack, shared: dict[str, Any], tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cityshare.cli import app

    out, steward_profile = tmp_path / "environment.share", tmp_path / "steward.json"
    shared["steward"].profile.save(steward_profile)
    department = shared["consumer"].profile.department
    result = CliRunner().invoke(
        app, ["--profile", str(steward_profile), "share", "profile", "--department", department, "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    written = json.loads(out.read_text())
    assert sorted(written) == ["bearerToken", "endpoint", "expirationTime", "shareCredentialsVersion"]
    assert out.stat().st_mode & 0o077 == 0


TABLE, SHARE = "/shares/{owner}/schemas/mobility/tables/{dataset}", "/shares/{owner}"


@pytest.fixture(scope="module")
def still_shared(stack: RunningStack, shared: dict[str, Any]) -> dict[str, Any]:
    """A recipient of its own (the tests above revoke the first one's grant and token)."""
    recipient = onboard(stack, unique("health"), "analyst", ["member"])
    department = recipient.profile.department
    shared["steward"].client.grant(shared["dataset"], department, "Probe the protocol's errors", "research")
    return dict(shared, profile=shared["steward"].client.issue_share_profile(department, 1, "error probes"))


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("POST", TABLE + "/query", b"\xff\xfe", 400, "INVALID_PARAMETER_VALUE"),  # not UTF-8
        ("POST", TABLE + "/query", b"[" * 5000 + b"]" * 5000, 400, "INVALID_PARAMETER_VALUE"),
        ("POST", TABLE + "/query", b'{"limitHint": -1}', 400, "INVALID_PARAMETER_VALUE"),
        ("POST", TABLE + "/query", b'{"version": 1e999}', 400, "INVALID_PARAMETER_VALUE"),
        ("POST", TABLE + "/query", b'{"version": 99}', 404, "RESOURCE_DOES_NOT_EXIST"),
        ("GET", TABLE + "/changes?startingVersion=2&endingVersion=1", b"", 400, "INVALID_PARAMETER_VALUE"),
        ("GET", TABLE + "/version?startingTimestamp=yesterday", b"", 400, "INVALID_PARAMETER_VALUE"),
        ("GET", SHARE + "/all-tables?pageToken=" + base64.urlsafe_b64encode(b"-3").decode(), b"", 400, "INVALID_PARAMETER_VALUE"),
        ("GET", SHARE + "/all-tables?pageToken=%C3%A9", b"", 400, "INVALID_PARAMETER_VALUE"),
        ("GET", SHARE + "/all-tables?maxResults=1001", b"", 400, "INVALID_PARAMETER_VALUE"),
        ("GET", SHARE + "/all-tables?maxResults=", b"", 400, "INVALID_PARAMETER_VALUE"),
        ("GET", SHARE + "/schemas?maxResults=1&maxResults=2", b"", 400, "INVALID_PARAMETER_VALUE"),
        ("GET", TABLE + "/changes?startingVersion=", b"", 400, "INVALID_PARAMETER_VALUE"),
        ("GET", TABLE + "/changes?startingVersion=%D9%A1", b"", 400, "INVALID_PARAMETER_VALUE"),  # an Arabic-Indic 1
        ("GET", "/shares/a/b/c/d/e/f/g", b"", 404, "RESOURCE_DOES_NOT_EXIST"),  # answered by the gateway itself
        ("PUT", TABLE + "/query", b"{}", 404, "RESOURCE_DOES_NOT_EXIST"),
    ],
)
def test_bad_requests_get_the_protocols_4xx_never_a_5xx(
    still_shared: dict[str, Any], method: str, path: str, body: bytes, status: int, code: str
) -> None:
    """The protocol's clients retry a 5xx: whatever the caller sent wrong is a 4xx with errorCode and message."""
    recipient = Recipient(still_shared["profile"])
    assert recipient.get(
        TABLE.format(owner=still_shared["owner"].profile.department, dataset=still_shared["dataset"]) + "/version"
    ).ok
    target = path.format(owner=still_shared["owner"].profile.department, dataset=still_shared["dataset"])
    headers = dict(recipient.headers, **{"Content-Type": "application/json"})
    answer = requests.request(method, recipient.endpoint + target, headers=headers, data=body or None, timeout=30)
    assert answer.status_code == status, answer.text
    error = answer.json()
    assert error["errorCode"] == code and error["message"]


def test_a_refused_token_gets_the_protocols_401(shared: dict[str, Any]) -> None:
    endpoint = shared["profile"]["endpoint"]
    for headers in ({}, {"Authorization": "Bearer s" + "0" * 24 + ".forged"}, {"Authorization": "Basic eDp5"}):
        answer = requests.get(endpoint + "/shares", headers=headers, timeout=30)
        assert answer.status_code == 401
        assert answer.json()["errorCode"] == "UNAUTHENTICATED" and answer.json()["code"] == "unauthenticated"


def test_several_grants_on_one_dataset_are_several_tables_each_its_grants_view(stack: RunningStack) -> None:
    """Never whichever grant comes first: a department holding two grants on one dataset lists one
    table per grant, named with it; each serves its own grant's view, and the bare name asks which."""
    transport = unique("transport")
    owner = onboard(stack, transport, "traffic-control", ["member"])
    steward = onboard(stack, transport, "steward", ["member", "steward"], register=False)
    consumer = onboard(stack, unique("health"), "analyst", ["member"])
    dataset_id = unique("traffic-flow")
    owner.client.create_dataset(dataset_id, "Traffic flow", "confidential", city_schema("traffic-flow"), tags=["mobility"])
    records = [
        {
            "segment_id": f"SEG-{n:05d}",
            "district": "Centre",
            "measured_at": "2026-11-02T08:00:00Z",
            "vehicle_count": 5,
            "avg_speed_kmh": 30.0 + n,
        }
        for n in range(4)
    ]
    upload = owner.client.push_records(dataset_id, records)
    assert owner.client.wait_for_upload(dataset_id, upload["upload_id"], 60)["status"] == "published"
    department = consumer.profile.department
    narrow = steward.client.grant(dataset_id, department, "Segments only", "planning", terms={"columns": ["segment_id"]})
    recipient = Recipient(steward.client.issue_share_profile(department, 30, "two grants"))
    share = f"/shares/{transport}/schemas/mobility/tables"
    only = recipient.get(f"/shares/{transport}/all-tables").json()["items"]
    assert [t["name"] for t in only] == [dataset_id]  # one grant: the dataset's own name
    wide = steward.client.grant(
        dataset_id, department, "Speeds by segment", "planning", terms={"columns": ["segment_id", "avg_speed_kmh"]}
    )
    tables = sorted(t["name"] for t in recipient.get(f"/shares/{transport}/all-tables").json()["items"])
    assert tables == sorted(f"{dataset_id}__{g['grant_id']}" for g in (narrow, wide))
    ambiguous = recipient.post(f"{share}/{dataset_id}/query", {})
    assert ambiguous.status_code == 400 and f"{dataset_id}__{narrow['grant_id']}" in ambiguous.json()["message"]
    for grant, columns in ((narrow, ["segment_id"]), (wide, ["segment_id", "avg_speed_kmh"])):
        answer = recipient.post(f"{share}/{dataset_id}__{grant['grant_id']}/query", {})
        assert answer.status_code == 200, answer.text
        url = next(line["file"]["url"] for line in lines(answer) if "file" in line)
        assert pq.read_table(io.BytesIO(requests.get(url, timeout=30).content)).column_names == columns
    assert recipient.post(f"{share}/{dataset_id}__g{'0' * 24}/query", {}).status_code == 404


def test_geometries_are_served_as_wkb_in_geoparquet(stack: RunningStack, tmp_path: Path) -> None:
    """A geometry column is stored as WKB with GeoParquet's metadata and served so: a grant's view
    names only the geometry columns it still has (none, when the grant leaves it out or masks it)."""
    import shapely

    environment = unique("environment")
    owner = onboard(stack, environment, "gis", ["member", "steward"])
    consumer = onboard(stack, unique("logistics"), "planner", ["member"])
    dataset_id = unique("districts")
    owner.client.create_dataset(dataset_id, "Districts", "internal", city_schema("district-boundaries"), tags=["boundaries"])
    source = generate("district-boundaries", 8, tmp_path / "districts.jsonl")
    given = {row["district"]: shapely.from_geojson(row["geometry"]) for row in map(json.loads, source.read_text().splitlines())}
    upload = owner.client.upload_file(dataset_id, source)
    assert owner.client.wait_for_upload(dataset_id, upload["upload_id"], 60)["status"] == "published"
    department = consumer.profile.department
    shapes = owner.client.grant(dataset_id, department, "Delivery zones", "planning", terms={"columns": ["district", "geometry"]})
    hidden = {"columns": ["district", "geometry"], "masked_columns": ["geometry"]}
    masked = owner.client.grant(dataset_id, department, "Zones, shapes masked", "planning", terms=hidden)
    recipient = Recipient(owner.client.issue_share_profile(department, 30, "zones"))
    share = f"/shares/{environment}/schemas/boundaries/tables"
    metadata_lines = lines(recipient.get(f"{share}/{dataset_id}__{shapes['grant_id']}/metadata"))
    fields = json.loads(metadata_lines[1]["metaData"]["schemaString"])
    assert {f["name"]: f["type"] for f in fields["fields"]} == {"district": "string", "geometry": "binary"}
    for grant, geoparquet in ((shapes, True), (masked, False)):
        answer = recipient.post(f"{share}/{dataset_id}__{grant['grant_id']}/query", {})
        assert answer.status_code == 200, answer.text
        url = next(line["file"]["url"] for line in lines(answer) if "file" in line)
        table = pq.read_table(io.BytesIO(requests.get(url, timeout=30).content))
        metadata = table.schema.metadata or {}
        assert (b"geo" in metadata) is geoparquet
        if geoparquet:
            geo = json.loads(metadata[b"geo"])
            assert geo["primary_column"] == "geometry" and geo["columns"]["geometry"]["encoding"] == "WKB"
            wkb = shapely.from_wkb(table.column("geometry").to_pylist())
            served = dict(zip(table.column("district").to_pylist(), wkb, strict=True))
            assert served.keys() == given.keys() and all(shapely.equals(served[d], given[d]) for d in given)
        else:
            assert all(len(token) == 32 for token in table.column("geometry").to_pylist())
