"""Discoverable is not readable: a version's figures (rows, profile, report, files) follow read
rights, route by route and role by role, over HTTP."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Member, RunningStack, onboard, unique

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "station_id": {"type": "string"},
        "district": {"type": "string"},
        "pm25": {"type": "number"},
        "secret_note": {"type": "string"},
    },
    "required": ["station_id"],
}
RECORDS = [
    {"station_id": f"AQ-{n}", "district": "Centre" if n % 2 else "Harbour", "pm25": 10.0 + n, "secret_note": f"TOPSECRET-{n}"}
    for n in range(10)
]
FIGURES = ("rows", "profile", "report", "files", "bytes", "content_sha256", "upload_id", "inputs")


@pytest.fixture(scope="module")
def city(stack: RunningStack) -> dict[str, Any]:
    owner_department = unique("environment")
    owner = onboard(stack, owner_department, "sensors", ["member"])
    steward = onboard(stack, owner_department, "steward", ["member", "steward"], register=False)
    dataset_id = unique("notes")
    owner.client.create_dataset(dataset_id, "Notes", "internal", SCHEMA)
    upload = owner.client.push_records(dataset_id, RECORDS)
    assert owner.client.wait_for_upload(dataset_id, upload["upload_id"], 60)["status"] == "published"
    parties = {
        name: onboard(stack, unique(name), "analyst", ["member"])
        for name in ("stranger", "whole", "columns", "filtered", "masked", "grouped")
    }
    terms: dict[str, dict[str, Any]] = {
        "whole": {},
        "columns": {"columns": ["station_id", "pm25"]},
        "filtered": {
            "columns": ["station_id", "pm25"],
            "row_filter": {"condition": {"column": "district", "op": "eq", "value": "Centre"}},
        },
        "masked": {"columns": ["station_id", "secret_note"], "masked_columns": ["secret_note"]},
        "grouped": {
            "aggregate": {"group_by": ["district"], "measures": [{"aggregate": "mean", "column": "pm25"}], "min_group_size": 5}
        },
    }
    for name, grant_terms in terms.items():
        steward.client.grant(
            dataset_id, parties[name].profile.department, "Air quality study here", "research", terms=grant_terms
        )
    return {"owner": owner, "dataset": dataset_id, **parties}


def _version(member: Member, dataset_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    listed = member.client.list_versions(dataset_id)
    assert len(listed) == 1
    return listed[0], member.client.get_version(dataset_id, 1)


def test_the_owner_sees_every_figure_and_the_report(city: dict[str, Any]) -> None:
    for version in _version(city["owner"], city["dataset"]):
        assert version["access"] == "owner" and version["rows"] == 10 and version["report"]["rows_accepted"] == 10
        assert version["profile"]["columns"]["secret_note"]["max"] == "TOPSECRET-9" and version["files"]


def test_a_department_without_a_grant_sees_no_figure(city: dict[str, Any]) -> None:
    for version in _version(city["stranger"], city["dataset"]):
        assert version["access"] == "metadata" and version["output_schema"]
        assert all(version.get(figure) is None for figure in FIGURES)
        assert "TOPSECRET" not in str(version)


def test_an_unrestricted_grantee_sees_the_figures_but_not_the_report(city: dict[str, Any]) -> None:
    for version in _version(city["whole"], city["dataset"]):
        assert version["access"] == "whole" and version["rows"] == 10 and version["report"] is None
        assert set(version["profile"]["columns"]) == {"station_id", "district", "pm25", "secret_note"}


def test_a_column_grant_sees_its_columns_only(city: dict[str, Any]) -> None:
    for version in _version(city["columns"], city["dataset"]):
        assert version["access"] == "grant" and version["rows"] == 10 and version["files"] is None
        assert set(version["profile"]["columns"]) == {"station_id", "pm25"} and "TOPSECRET" not in str(version)


def test_a_row_filtered_or_masked_grant_sees_no_figure_beyond_its_view(city: dict[str, Any]) -> None:
    for version in _version(city["filtered"], city["dataset"]):
        assert version["access"] == "grant" and version["rows"] is None and version["profile"] is None
    for version in _version(city["masked"], city["dataset"]):
        assert set(version["profile"]["columns"]) == {"station_id"} and "TOPSECRET" not in str(version)


def test_a_grant_of_groups_sees_no_figure_of_the_rows_behind_them(city: dict[str, Any]) -> None:
    """The rows' own extremes and distribution would single out what k-anonymous groups hide."""
    for version in _version(city["grouped"], city["dataset"]):
        assert version["access"] == "grant" and version["rows"] is None and version["profile"] is None


def test_a_datasets_size_is_shown_to_its_owner_and_whole_readers_only(city: dict[str, Any]) -> None:
    """`GET /datasets/{id}` and the listing: the latest version's size to the owner and readers of
    whole rows; nobody is shown the platform's own file keys."""
    for name in ("owner", "whole", "stranger", "columns", "filtered", "masked", "grouped"):
        member: Member = city[name]
        shown = member.client.get_dataset(city["dataset"])
        listed = [d for d in member.client.iter_datasets(owner=shown["owner"]) if d["dataset_id"] == city["dataset"]]
        for entry in (shown, *listed):
            assert "latest_files" not in entry and entry["latest_version"] == 1
            if name in ("owner", "whole"):
                assert entry["latest_bytes"] > 0, name
            else:
                assert entry["latest_bytes"] is None, name
        assert listed, name
