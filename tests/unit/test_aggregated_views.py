"""Sharing at a resolution with a guarantee: an aggregated grant's view holds groups of at least k
rows (checked by pycanon, in a virtualenv of its own: it pins old numpy and pandas), the small
groups suppressed and counted; rules and derived datasets read the same groups, never rows; and
outside an aggregated grant they see no personal column at all."""

from __future__ import annotations

import csv
import io
import json
import subprocess
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from cityshare.generators import generate
from functions.analytics.engine import Input, run, sandbox
from functions.analytics.scope import scope_for
from functions.catalog.models import Dataset
from functions.privacy.protect import generalise
from functions.sharing.models import Grant, GrantTerms
from functions.sharing.views import SUPPRESSED_GROUPS, SUPPRESSED_ROWS, ViewSecrets, restrict
from tests.datasets import city_schema
from tests.tools import tool_python
from tests.unit.ingest_helpers import city_schema as table_schema
from tests.unit.ingest_helpers import ingest

ROOT = Path(__file__).resolve().parents[2]
REQUESTS = Dataset.model_validate(
    {
        "dataset_id": "service-requests",
        "title": "Service requests",
        "classification": "confidential",
        "schema": city_schema("service-requests"),
        "owner": "city-management",
        "created_at": "t",
        "updated_at": "t",
        "created_by": "p",
    }
)
HOURLY_BY_DISTRICT: dict[str, Any] = {
    "generalised": {"opened_at": "1h"},
    "aggregate": {"group_by": ["district", "category", "opened_at"], "min_group_size": 5},
}
FINE_GRAINED: dict[str, Any] = {
    "generalised": {"opened_at": "1h"},
    "aggregate": {"group_by": ["district", "category", "opened_at", "latitude", "longitude"], "min_group_size": 5},
}


def grant(terms: dict[str, Any]) -> Grant:
    return Grant.model_validate(
        {
            "grant_id": "g" + "5" * 24,
            "dataset_id": "service-requests",
            "owner": "city-management",
            "grantee_department": "transport",
            "purpose": "Where and when requests cluster",
            "purpose_category": "planning",
            "created_by": "s",
            "created_at": "t",
            "terms": terms,
        }
    )


@pytest.fixture(scope="module")
def curated(tmp_path_factory: pytest.TempPathFactory) -> tuple[pa.Table, Path]:
    """20,000 generated service requests, ingested (address encrypted, phone dropped, positions at 0.01)."""
    folder = tmp_path_factory.mktemp("requests")
    source = generate("service-requests", 20_000, folder / "requests.csv")
    outcome, _, parquet = ingest(source.read_bytes(), table_schema("service-requests"), dataset_id="service-requests")
    assert outcome.accepted
    path = folder / "curated.parquet"
    path.write_bytes(parquet)
    import pyarrow.parquet as pq

    return pq.read_table(path), path


def k_of(rows: list[dict[str, Any]], quasi_identifiers: list[str]) -> int:
    """pycanon's k for `rows` over `quasi_identifiers`."""
    python = tool_python("pycanon")
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=quasi_identifiers)
    writer.writeheader()
    writer.writerows({q: row[q] for q in quasi_identifiers} for row in rows)
    program = (
        "import io, json, sys; import pandas as pd; from pycanon import anonymity; "
        "qi = json.loads(sys.argv[1]); frame = pd.read_csv(io.StringIO(sys.stdin.read()), dtype=str); "
        "print(anonymity.k_anonymity(frame, qi))"
    )
    result = subprocess.run(
        [str(python), "-c", program, json.dumps(quasi_identifiers)],
        input=text.getvalue(),
        capture_output=True,
        text=True,
        check=True,
    )
    return int(result.stdout.strip())


@pytest.mark.parametrize("terms", [HOURLY_BY_DISTRICT, FINE_GRAINED], ids=["hourly-by-district", "fine-grained"])
def test_every_group_of_the_view_stands_for_at_least_k_rows(curated: tuple[pa.Table, Path], terms: dict[str, Any]) -> None:
    table, _ = curated
    the_grant = grant(terms)
    the_grant.terms.check_against(REQUESTS.table_schema)
    view = restrict(table, REQUESTS, the_grant, ViewSecrets())
    k = the_grant.terms.aggregate.min_group_size  # type: ignore[union-attr]
    group_by = the_grant.terms.aggregate.group_by  # type: ignore[union-attr]
    suppressed_groups = int(view.schema.metadata[SUPPRESSED_GROUPS])
    suppressed_rows = int(view.schema.metadata[SUPPRESSED_ROWS])
    assert view.column_names == [*group_by, "group_size"]
    assert pc.min(view.column("group_size")).as_py() is None or pc.min(view.column("group_size")).as_py() >= k
    assert (pc.sum(view.column("group_size")).as_py() or 0) + suppressed_rows == table.num_rows
    # The rows behind the groups shared, coarsened as the view coarsens them: pycanon's k.
    coarse = table.set_column(table.column_names.index("opened_at"), "opened_at", generalise(table.column("opened_at"), "1h"))
    shared = {tuple(str(row[c]) for c in group_by) for row in view.select(group_by).to_pylist()}
    behind = [
        {c: str(row[c]) for c in group_by}
        for row in coarse.select(group_by).to_pylist()
        if tuple(str(row[c]) for c in group_by) in shared
    ]
    if behind:
        assert k_of(behind, group_by) >= k
    if terms is FINE_GRAINED:
        # The audit's case: at 1 h and 0.01 degrees almost every request is alone in its group.
        assert suppressed_groups > 1000 and suppressed_rows > 0.5 * table.num_rows


def test_rules_and_derived_datasets_read_the_same_groups(curated: tuple[pa.Table, Path]) -> None:
    table, path = curated
    the_grant = grant(HOURLY_BY_DISTRICT)
    view = restrict(table, REQUESTS, the_grant, ViewSecrets())
    scope = scope_for(REQUESTS, the_grant)
    assert scope.columns == ["district", "category", "opened_at", "group_size"]
    with sandbox([Input("service_requests", scope, [path])]) as db:
        rows = run(db, "SELECT district, category, strftime(opened_at, '%Y-%m-%dT%H'), group_size FROM service_requests")
    expected = {(r["district"], r["category"], r["opened_at"].strftime("%Y-%m-%dT%H"), r["group_size"]) for r in view.to_pylist()}
    assert set(rows) == expected and min(r[3] for r in rows) >= 5


def test_without_an_aggregated_grant_rules_and_derived_datasets_see_no_personal_column() -> None:
    plain = grant({"columns": ["request_id", "district", "latitude", "address", "category"]})
    assert scope_for(REQUESTS, plain).columns == ["request_id", "category", "district"]


@pytest.mark.parametrize(
    ("aggregate", "message"),
    [
        ({"group_by": ["address"]}, "cannot be grouped or measured"),
        (
            {"group_by": ["district"], "min_group_size": 1, "measures": [{"aggregate": "count", "column": "latitude"}]},
            "at least 2",
        ),
        ({"group_by": ["district"], "measures": [{"aggregate": "mean", "column": "category"}]}, "numeric"),
        ({"group_by": ["phone"]}, "not in the dataset"),
    ],
)
def test_aggregated_terms_are_checked(aggregate: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GrantTerms.model_validate({"aggregate": aggregate}).check_against(REQUESTS.table_schema)
    with pytest.raises(ValueError, match="cannot also mask"):
        GrantTerms.model_validate({"aggregate": {"group_by": ["district"]}, "masked_columns": ["request_id"]}).check_against(
            REQUESTS.table_schema
        )
