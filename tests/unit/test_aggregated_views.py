"""Sharing groups that hold against an analyst who tries (issue: Privacy that holds): groups count
subjects, not rows; of data about people they are released only with differential privacy
(OpenDP), so a single person, a difference of two grants or of two versions gives back noise,
never a value; of other data, exact groups of at least k subjects (checked by pycanon, in a
virtualenv of its own: it pins old numpy and pandas)."""

from __future__ import annotations

import csv
import io
import json
import math
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from cityshare.generators import generate
from functions.analytics.engine import Input, run, sandbox
from functions.analytics.scope import scope_for
from functions.catalog.models import Dataset
from functions.core.errors import InvalidRequest
from functions.privacy.protect import generalise
from functions.privacy.release import ReleaseRequest, release
from functions.sharing.models import Grant, GrantTerms
from functions.sharing.views import PRIVACY_EPSILON, SUPPRESSED_GROUPS, SUPPRESSED_ROWS, ViewSecrets, restrict
from tests.datasets import city_schema
from tests.tools import tool_python
from tests.unit.ingest_helpers import city_schema as table_schema
from tests.unit.ingest_helpers import ingest

ROOT = Path(__file__).resolve().parents[2]


def dataset(name: str, owner: str, schema: dict[str, Any] | None = None) -> Dataset:
    return Dataset.model_validate(
        {
            "dataset_id": name,
            "title": name,
            "classification": "confidential",
            "schema": schema or city_schema(name),
            "owner": owner,
            "created_at": "t",
            "updated_at": "t",
            "created_by": "p",
        }
    )


REQUESTS = dataset("service-requests", "city-management")
PRIVATE = {"epsilon": 1.0, "delta": 1e-6, "budget": 10.0}
BY_DISTRICT: dict[str, Any] = {
    "aggregate": {"group_by": ["district", "category"], "min_group_size": 5, "privacy": PRIVATE},
}
SECRETS = ViewSecrets(release=release)


def grant(terms: dict[str, Any], grant_id: str = "g" + "5" * 24) -> Grant:
    return Grant.model_validate(
        {
            "grant_id": grant_id,
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
    """20,000 generated service requests, ingested (address encrypted, phone dropped, citizen
    pseudonymised, positions at 0.01)."""
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


def test_a_private_release_shares_noisy_groups_of_at_least_k_subjects(curated: tuple[pa.Table, Path]) -> None:
    table, _ = curated
    the_grant = grant(BY_DISTRICT)
    the_grant.terms.check_against(REQUESTS.table_schema)
    view = restrict(table, REQUESTS, the_grant, SECRETS)
    assert view.column_names == ["district", "category", "group_size"]
    assert float(view.schema.metadata[PRIVACY_EPSILON]) <= 1.0 + 1e-9
    assert SUPPRESSED_GROUPS not in view.schema.metadata  # what was not released is not told
    # The subjects behind each released group, one row per (group, subject): pycanon's k over the groups.
    released = {(r["district"], r["category"]) for r in view.to_pylist()}
    subjects = {
        (r["district"], r["category"], r["citizen_id"] or f"row{i}")
        for i, r in enumerate(table.select(["district", "category", "citizen_id"]).to_pylist())
        if (r["district"], r["category"]) in released
    }
    assert released and k_of([{"district": d, "category": c} for d, c, _ in subjects], ["district", "category"]) >= 5
    # A group counts each subject once (and a subject in at most max_groups groups): the truth to
    # compare with is the subjects in each group, not its rows.
    truth = Counter((d, c) for d, c, _ in subjects)
    noisy = {(r["district"], r["category"]): r["group_size"] for r in view.to_pylist()}
    assert any(noisy[g] != truth[g] for g in noisy)  # noise, not the counts
    assert all(abs(noisy[g] - truth[g]) < 100 for g in noisy)  # but useful: scale 10 at epsilon 0.5


def test_one_person_is_never_a_group_however_many_rows() -> None:
    """Six requests by one citizen in one district: one subject, not a group of six."""
    schema = city_schema("service-requests")
    rows = "request_id,opened_at,category,district,address,phone,latitude,longitude,status\n"
    rows += "".join(
        f"SR-{n:08d},2026-11-04T08:{n:02d}:00Z,pothole,Harbour,1 Quay,+44 7700 900{n % 1:03d},51.45,-2.58,open\n"
        for n in range(6)
    )
    rows += "".join(
        f"SR-{n:08d},2026-11-04T08:{n % 60:02d}:00Z,pothole,Centre,2 Main,+44 7700 {n:06d},51.45,-2.58,open\n"
        for n in range(10, 210)
    )
    outcome, _, parquet = ingest(rows.encode(), table_schema("service-requests"), dataset_id="service-requests")
    assert outcome.accepted
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(parquet))
    for _ in range(20):
        view = restrict(table, dataset("service-requests", "city-management", schema), grant(BY_DISTRICT), SECRETS)
        assert {r["district"] for r in view.to_pylist()} <= {"Centre"}


def test_exact_groups_of_data_not_about_people_count_subjects_not_rows() -> None:
    """A dataset of readings by station, its station the subject: one station's six readings are one."""
    schema = city_schema("air-quality") | {"x-subject": {"columns": ["station_id"]}}
    air = dataset("air-quality", "environment", schema)
    rows = [{"station_id": "AQ-9", "district": "Harbour", "pm25": 90.0} for _ in range(6)]
    rows += [{"station_id": f"AQ-{n}", "district": "Centre", "pm25": 10.0 + n} for n in range(7)]
    table = pa.Table.from_pylist(rows)
    terms = {"aggregate": {"group_by": ["district"], "measures": [{"aggregate": "max", "column": "pm25"}], "min_group_size": 5}}
    the_grant = grant(terms)
    the_grant.terms.check_against(air.table_schema)
    view = restrict(table, air, the_grant, ViewSecrets())
    assert view.to_pylist() == [{"district": "Centre", "group_size": 7, "max_pm25": 16.0}]
    assert int(view.schema.metadata[SUPPRESSED_GROUPS]) == 1 and int(view.schema.metadata[SUPPRESSED_ROWS]) == 6


def test_differencing_two_grants_gives_back_noise_not_the_person(curated: tuple[pa.Table, Path]) -> None:
    """District totals minus the district x category groups released: what was held back comes back
    only as noise (each release is new noise, and spends budget), never as the exact rows."""
    table, _ = curated
    coarse = grant({"aggregate": {"group_by": ["district"], "min_group_size": 5, "privacy": PRIVATE}})
    fine = grant(BY_DISTRICT, grant_id="g" + "6" * 24)
    by_district = Counter(r["district"] for r in table.select(["district"]).to_pylist())
    by_pair = Counter((r["district"], r["category"]) for r in table.select(["district", "category"]).to_pylist())
    misses = []
    for _ in range(10):
        totals = {r["district"]: r["group_size"] for r in restrict(table, REQUESTS, coarse, SECRETS).to_pylist()}
        shown = {(r["district"], r["category"]): r["group_size"] for r in restrict(table, REQUESTS, fine, SECRETS).to_pylist()}
        for district, total in totals.items():
            pairs = [pair for pair in shown if pair[0] == district]
            held_back = by_district[district] - sum(by_pair[pair] for pair in pairs)
            estimate = total - sum(shown[pair] for pair in pairs)
            misses.append(estimate - held_back)
    assert len(set(misses)) > 5 and sum(miss == 0 for miss in misses) < len(misses) / 4


def test_neighbouring_datasets_give_count_distributions_within_e_to_the_epsilon() -> None:
    """The mechanism, checked empirically: one subject more or less moves the output distribution
    of a released count by at most e^epsilon (within sampling error), besides OpenDP's own proofs."""
    epsilon = 1.0
    runs = 4000
    request = {"epsilon": epsilon, "delta": 1e-6, "k": 5, "max_groups": 1, "max_rows": 1}
    outputs = {}
    for name, count in (("with", 501), ("without", 500)):
        made = ReleaseRequest(**request, counts={'["Centre"]': count})
        outputs[name] = Counter(release(made).counts.get('["Centre"]') for _ in range(runs))
    bound = math.exp(epsilon)
    # Only where both outputs were seen often (>= 200 times) is the sampled ratio precise enough
    # (log-ratio error about 0.1): 1.35 is then three standard errors, and a mechanism spending
    # twice the epsilon (ratio e^2 = 7.4) still fails.
    plenty = [value for value in outputs["with"] if min(outputs["with"][value], outputs["without"][value]) >= 200]
    assert len(plenty) >= 3, outputs
    for value in plenty:
        a, b = outputs["with"][value], outputs["without"][value]
        assert a <= bound * b * 1.35 and b <= bound * a * 1.35, (value, a, b)


def test_rules_and_derived_datasets_read_exact_groups_but_never_a_private_grant(tmp_path: Path) -> None:
    air = dataset("air-quality", "environment", city_schema("air-quality") | {"x-subject": {"columns": ["station_id"]}})
    rows = [{"station_id": f"AQ-{n}", "district": "Centre", "measured_at": None, "pm25": 10.0 + n} for n in range(6)]
    # Harbour: six readings of one station, and four of stations unnamed (each its own subject): 5 subjects.
    rows += [{"station_id": "AQ-9", "district": "Harbour", "measured_at": None, "pm25": 90.0} for _ in range(6)]
    rows += [{"station_id": None, "district": "Harbour", "measured_at": None, "pm25": 1.0} for _ in range(4)]
    # North: one station's many readings are one subject, never a group.
    rows += [{"station_id": "AQ-7", "district": "North", "measured_at": None, "pm25": 5.0} for _ in range(9)]
    import pyarrow.parquet as pq

    path = tmp_path / "air.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    exact = grant({"aggregate": {"group_by": ["district"], "min_group_size": 5}})
    scope = scope_for(air, exact)
    assert scope.columns == ["district", "group_size"]
    with sandbox([Input("air_quality", scope, [path])]) as db:
        found = sorted(run(db, "SELECT district, group_size FROM air_quality"))
    # Rules see what the view shows: the groups of at least k subjects (their sizes in rows).
    view = restrict(pa.Table.from_pylist(rows), air, exact, ViewSecrets())
    assert found == [("Centre", 6), ("Harbour", 10)] == sorted((r["district"], r["group_size"]) for r in view.to_pylist())
    with pytest.raises(InvalidRequest, match="differential privacy"):
        scope_for(REQUESTS, grant(BY_DISTRICT))


def test_without_an_aggregated_grant_rules_and_derived_datasets_see_no_personal_column() -> None:
    plain = grant({"columns": ["request_id", "district", "latitude", "address", "category"]})
    assert scope_for(REQUESTS, plain).columns == ["request_id", "category", "district"]


@pytest.mark.parametrize(
    ("aggregate", "message"),
    [
        ({"group_by": ["address"], "privacy": PRIVATE}, "cannot be grouped or measured"),
        ({"group_by": ["district"], "min_group_size": 1, "privacy": PRIVATE}, "greater than or equal to 2"),
        ({"group_by": ["district"], "measures": [{"aggregate": "mean", "column": "category"}], "privacy": PRIVATE}, "numeric"),
        ({"group_by": ["district"], "measures": [{"aggregate": "median", "column": "status"}], "privacy": PRIVATE}, "numeric"),
        ({"group_by": ["citizen_id"], "privacy": PRIVATE}, "cannot be grouped or measured"),
        ({"group_by": ["district"]}, "differential privacy"),
        ({"group_by": ["district"], "measures": [{"aggregate": "max", "column": "latitude"}], "privacy": PRIVATE}, "one person"),
        ({"group_by": ["district"], "privacy": {"epsilon": 2.0, "budget": 1.0}}, "must not exceed the budget"),
    ],
)
def test_aggregated_terms_are_checked(aggregate: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GrantTerms.model_validate({"aggregate": aggregate}).check_against(REQUESTS.table_schema)
    with pytest.raises(ValueError, match="cannot also mask"):
        GrantTerms.model_validate(
            {"aggregate": {"group_by": ["district"], "privacy": PRIVATE}, "masked_columns": ["request_id"]}
        ).check_against(REQUESTS.table_schema)


def test_coarsening_applies_before_grouping(curated: tuple[pa.Table, Path]) -> None:
    table, _ = curated
    hourly = grant({"generalised": {"opened_at": "1d"}, "aggregate": {"group_by": ["opened_at"], "privacy": PRIVATE}})
    view = restrict(table, REQUESTS, hourly, SECRETS)
    days = {v.date() for v in pc.unique(generalise(table.column("opened_at"), "1d")).to_pylist()}
    assert {v.date() for v in view.column("opened_at").to_pylist()} <= days


def test_private_quantiles_replace_min_and_max_and_stay_near_the_truth(tmp_path: Path) -> None:
    """Of data about people, quantiles are released with OpenDP's private quantile over candidates
    spread across the column's declared bounds: values on that grid (never one read's own value),
    near the group's true quantile where the group is large, within the grant's epsilon."""
    reads = dataset("plate-reads", "transport", city_schema("plate-reads"))
    source = generate("plate-reads", 12_000, tmp_path / "reads.csv")
    outcome, _, parquet = ingest(source.read_bytes(), table_schema("plate-reads"), dataset_id="plate-reads")
    assert outcome.accepted
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(parquet))
    terms = {
        "aggregate": {
            "group_by": ["lane"],
            "measures": [{"aggregate": "median", "column": "confidence"}, {"aggregate": "p90", "column": "confidence"}],
            # A plate counts in up to 20 groups: the threshold at this epsilon is about 1,000 plates.
            "privacy": {"epsilon": 3.0, "delta": 1e-6, "budget": 10.0},
        },
    }
    the_grant = grant(terms)
    the_grant.terms.check_against(reads.table_schema)
    view = restrict(table, reads, the_grant, SECRETS)
    assert view.column_names == ["lane", "group_size", "median_confidence", "p90_confidence"]
    assert float(view.schema.metadata[PRIVACY_EPSILON]) <= 3.0 + 1e-9
    assert view.num_rows >= 4
    for row in view.to_pylist():
        values = sorted(pc.filter(table.column("confidence"), pc.equal(table.column("lane"), row["lane"])).to_pylist())
        for name, alpha in (("median_confidence", 0.5), ("p90_confidence", 0.9)):
            assert round(row[name] * 100, 9) == round(row[name] * 100)  # a candidate: 0, 0.01, ... 1
            if len(values) >= 500:  # the chosen rank is near the true one
                rank = sum(v < row[name] for v in values) / len(values)
                assert abs(rank - alpha) < 0.15, (name, rank, len(values))


def test_neighbouring_datasets_give_quantile_distributions_within_e_to_the_epsilon() -> None:
    """One subject more, at the top of the range, moves the distribution of a released median by
    at most e^(its share of epsilon), within sampling error."""
    epsilon, runs = 1.0, 3000
    share = epsilon / 2  # the counts and the one quantile
    base = {"epsilon": epsilon, "delta": 1e-6, "k": 5, "max_groups": 1, "max_rows": 1, "counts": {"0": 500}}
    histogram = {20: 10, 40: 10, 60: 10, 80: 10}  # 40 values, all between candidates 10 and 40
    outputs = {}
    for name, extra in (("without", {}), ("with", {200: 1})):
        quantile = {"alpha": 0.5, "candidates": 101, "histograms": {"0": histogram | extra}}
        made = ReleaseRequest(**base, quantiles={"median": quantile})
        outputs[name] = Counter(release(made).quantiles["median"]["0"] for _ in range(runs))
    plenty = [value for value in outputs["with"] if min(outputs["with"][value], outputs["without"][value]) >= 200]
    assert plenty, outputs
    bound = math.exp(share)
    for value in plenty:
        a, b = outputs["with"][value], outputs["without"][value]
        assert a <= bound * b * 1.35 and b <= bound * a * 1.35, (value, a, b)


def test_exact_quantiles_of_data_not_about_people_match_the_engine(tmp_path: Path) -> None:
    """Of other data, a quantile is the group's own (interpolated as DuckDB's quantile_cont), the same
    in the grant's view and for rules and derived datasets reading under it."""
    air = dataset("air-quality", "environment", city_schema("air-quality") | {"x-subject": {"columns": ["station_id"]}})
    rows = [{"station_id": f"AQ-{n}", "district": "Centre", "measured_at": None, "pm25": float(n * n)} for n in range(9)]
    rows += [{"station_id": f"AQ-{n}", "district": "Harbour", "measured_at": None, "pm25": None} for n in range(5)]
    rows += [{"station_id": f"AQ-{n}", "district": "Harbour", "measured_at": None, "pm25": 3.0} for n in range(2)]
    measures = [{"aggregate": "median", "column": "pm25"}, {"aggregate": "p25", "column": "pm25"}]
    exact = grant({"aggregate": {"group_by": ["district"], "measures": measures, "min_group_size": 5}})
    exact.terms.check_against(air.table_schema)
    view = restrict(pa.Table.from_pylist(rows), air, exact, ViewSecrets())
    assert sorted(view.to_pylist(), key=lambda r: r["district"]) == [
        {"district": "Centre", "group_size": 9, "median_pm25": 16.0, "p25_pm25": 4.0},
        {"district": "Harbour", "group_size": 7, "median_pm25": 3.0, "p25_pm25": 3.0},
    ]
    import pyarrow.parquet as pq

    path = tmp_path / "air.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    with sandbox([Input("air_quality", scope_for(air, exact), [path])]) as db:
        found = sorted(run(db, "SELECT district, median_pm25, p25_pm25 FROM air_quality"))
    assert found == [("Centre", 16.0, 4.0), ("Harbour", 3.0, 3.0)]


def test_the_privacy_function_is_called_with_compressed_payloads() -> None:
    """In AWS the view invokes the privacy function: request and result travel gzipped (a synchronous
    Lambda call carries at most 6 MB each way), and come back as the in-process release would."""
    import json as json_module

    from functions.handlers import privacy as privacy_handler
    from functions.privacy.release import Releases

    calls: list[int] = []

    class Lambdas:
        def invoke(self, FunctionName: str, Payload: bytes) -> dict[str, Any]:  # noqa: N803 (boto3's names)
            calls.append(len(Payload))
            result = privacy_handler.handler(json_module.loads(Payload), LambdaContextStub())
            return {"Payload": io.BytesIO(json_module.dumps(result).encode())}

    counts = {str(n): 10_000 + n for n in range(50_000)}
    request = ReleaseRequest(epsilon=1.0, delta=1e-6, k=5, max_groups=1, max_rows=1, counts=counts)
    result = Releases("cityshare-dev-privacy", Lambdas())(request)
    assert len(result.counts) == 50_000 and result.epsilon <= 1.0 + 1e-9
    assert calls[0] * 2 < len(request.model_dump_json())  # compressed on the way


def test_a_view_too_large_for_the_privacy_function_is_a_named_problem_in_both_stacks() -> None:
    """Over Lambda's 6 MB, the call would fail with a 500; it is refused before, with what to do,
    alike where the function is called (AWS) and where the release runs in process (embedded)."""
    from functions.core.errors import ViewTooLarge
    from functions.privacy.release import MAX_PAYLOAD_BYTES, Releases

    class Unreachable:
        def invoke(self, **_: Any) -> dict[str, Any]:
            raise AssertionError("a request over the limit is never sent")

    counts = {f"{n:08x}{n * 7919 % 99991:05d}": 10_000 + n for n in range(20_000)}
    request = ReleaseRequest(epsilon=1.0, delta=1e-6, k=5, max_groups=1, max_rows=1, counts=counts)
    for releases in (Releases("cityshare-dev-privacy", Unreachable(), max_payload_bytes=64_000), Releases("", None, 64_000)):
        with pytest.raises(ViewTooLarge) as refused:
            releases(request)
        assert refused.value.status == 422 and refused.value.code == "view_too_large"
        assert "20,000 candidate groups" in refused.value.detail and "coarsen" in refused.value.detail
    assert MAX_PAYLOAD_BYTES == 6 * 1024 * 1024
    # The grantee's budget is spent only for a release that fits: a refused view spends nothing.
    spent: list[int] = []
    with pytest.raises(ViewTooLarge):
        Releases("", None, 64_000)(request, spend=lambda: spent.append(1))
    small = request.model_copy(update={"counts": dict(list(counts.items())[:100])})
    assert Releases("", None, 64_000)(small, spend=lambda: spent.append(1)).epsilon > 0
    assert spent == [1]


class LambdaContextStub:
    function_name = "cityshare-dev-privacy"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:cityshare-dev-privacy"
    aws_request_id = "request"
