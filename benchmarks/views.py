"""Restricted-view figures. (1) Issue Sharing: building the view of a 1,000,000-row traffic-flow
version for a grant (columns, a row filter), against a bare pyarrow read + filter + write of the same
curated file in the same run (target ratio ≤ 1.5). Masking a column is timed on its own, since the
bare baseline does no such work. Median of 5 runs each, this machine, no S3 (the same code
ViewBuilder runs between its GetObject and its PutObject). (2) Issue personal data: an aggregated,
k-anonymous view of 1,000,000 service requests against a bare DuckDB GROUP BY (target <= 1.5x).
"""

from __future__ import annotations

import io
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from cityshare.generators import generate
from functions.catalog.models import Dataset, IngestPolicy, TableSchema
from functions.ingest.models import UploadRequest
from functions.ingest.pipeline import run_pipeline
from functions.privacy.protect import Protector
from functions.sharing.models import Grant, GrantTerms, RowFilter
from functions.sharing.views import ViewSecrets, view_bytes

ROWS = 1_000_000
RUNS = 5
ROOT = Path(__file__).resolve().parents[1]
COLUMNS = ["segment_id", "district", "measured_at", "vehicle_count", "avg_speed_kmh"]
DISTRICTS = ["Centre", "Harbour", "North"]


def dataset() -> Dataset:
    import json

    return Dataset.model_validate(
        {
            "dataset_id": "traffic-flow",
            "title": "Traffic flow",
            "classification": "confidential",
            "schema": json.loads((ROOT / "schemas" / "datasets" / "traffic-flow.json").read_text()),
            "owner": "transport",
            "created_at": "t",
            "updated_at": "t",
            "created_by": "p",
        }
    )


def grant(masked: list[str]) -> Grant:
    return Grant(
        grant_id="g" + "b" * 24,
        dataset_id="traffic-flow",
        owner="transport",
        grantee_department="environment",
        purpose="Benchmark of a restricted view",
        purpose_category="research",
        created_by="steward",
        created_at="t",
        terms=GrantTerms(
            columns=COLUMNS + (masked if masked else []),
            row_filter=RowFilter.model_validate({"condition": {"column": "district", "op": "in", "value": DISTRICTS}}),
            masked_columns=masked,
        ),
    )


def bare(path: Path) -> bytes:
    table = pq.read_table(path)
    table = table.filter(pc.is_in(table.column("district"), value_set=pa.array(DISTRICTS))).select(COLUMNS)
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def median_seconds(action: Callable[[], bytes]) -> tuple[float, int]:
    times, size = [], 0
    for _ in range(RUNS):
        start = time.perf_counter()
        size = len(action())
        times.append(time.perf_counter() - start)
    return statistics.median(times), size


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="cityshare-views-"))
    csv = generate("traffic-flow", ROWS, folder / "flow.csv")
    curated = folder / "curated.parquet"
    pq.write_table(pacsv.read_csv(csv), curated, compression="zstd")
    described = dataset()
    plain, masked = grant([]), grant(["camera_id"])

    def no_key() -> bytes:
        raise AssertionError("nothing is decrypted here")

    secrets = ViewSecrets(data_key=no_key, mask_key=lambda: b"k" * 32)
    bare_s, bare_size = median_seconds(lambda: bare(curated))
    view_s, view_size = median_seconds(lambda: view_bytes([curated], described, plain, secrets))
    mask_s, _ = median_seconds(lambda: view_bytes([curated], described, masked, secrets))
    size_mb = curated.stat().st_size / 1e6
    print(f"{ROWS:,} rows, curated Parquet {size_mb:.1f} MB; grant: {len(COLUMNS)} columns, district in {DISTRICTS}")
    print(f"bare pyarrow read + filter + select + write: {bare_s * 1000:.0f} ms ({bare_size / 1e6:.1f} MB out)")
    print(
        f"restricted view (columns + row filter):      {view_s * 1000:.0f} ms ({view_size / 1e6:.1f} MB out)"
        f" -> ratio {view_s / bare_s:.2f} (target <= 1.5)"
    )
    print(f"the same with camera_id masked per grant:    {mask_s * 1000:.0f} ms -> ratio {mask_s / bare_s:.2f}")
    aggregated(folder)


def aggregated(folder: Path) -> None:
    """An aggregated grant's k-anonymous view (hourly requests per district and category, k = 5) of
    1,000,000 service requests, against a bare DuckDB GROUP BY of the same curated file written to
    Parquet (target: at most 1.5x)."""
    import duckdb

    # The real ingest makes the curated file (address encrypted, phone dropped, positions coarsened).
    source = generate("service-requests", ROWS, folder / "requests.csv")
    table_schema = TableSchema.model_validate(_schema("service-requests"))
    request = UploadRequest(filename=source.name, format="csv", size_bytes=source.stat().st_size)
    protector = Protector(table_schema, "service-requests", b"k" * 32, lambda: b"d" * 32, folder)
    with source.open("rb") as raw:
        outcome = run_pipeline(raw, request, table_schema, IngestPolicy(), protector, folder)
    assert outcome.accepted and outcome.parquet is not None
    curated = outcome.parquet
    requests = Dataset.model_validate(
        {
            "dataset_id": "service-requests",
            "title": "Service requests",
            "classification": "confidential",
            "schema": _schema("service-requests"),
            "owner": "city-management",
            "created_at": "t",
            "updated_at": "t",
            "created_by": "p",
        }
    )
    hourly = Grant(
        grant_id="g" + "c" * 24,
        dataset_id="service-requests",
        owner="city-management",
        grantee_department="transport",
        purpose="Benchmark of an aggregated view",
        purpose_category="planning",
        created_by="steward",
        created_at="t",
        terms=GrantTerms.model_validate(
            {
                "generalised": {"opened_at": "1h"},
                "aggregate": {"group_by": ["district", "category", "opened_at"], "min_group_size": 5},
            }
        ),
    )
    out = folder / "duckdb.parquet"

    def bare_duckdb() -> bytes:
        with duckdb.connect() as db:
            db.execute(
                f"COPY (SELECT district, category, time_bucket(INTERVAL 1 HOUR, opened_at) AS opened_at, count(*) AS group_size "
                f"FROM read_parquet('{curated}') GROUP BY ALL HAVING count(*) >= 5) TO '{out}' (FORMAT parquet, COMPRESSION zstd)"
            )
        return out.read_bytes()

    bare_s, _ = median_seconds(bare_duckdb)
    view_s, _ = median_seconds(lambda: view_bytes([curated], requests, hourly, ViewSecrets()))
    groups = pq.read_table(io.BytesIO(view_bytes([curated], requests, hourly, ViewSecrets())))
    print(f"{ROWS:,} service requests: hourly groups by district and category, k = 5 ({groups.num_rows:,} groups shared)")
    print(f"bare DuckDB GROUP BY ... HAVING count(*) >= 5 to Parquet: {bare_s * 1000:.0f} ms")
    ratio = view_s / bare_s
    print(f"aggregated view (pyarrow, suppression counted):          {view_s * 1000:.0f} ms -> ratio {ratio:.2f} (target <= 1.5)")


def _schema(name: str) -> dict[str, object]:
    import json

    loaded: dict[str, object] = json.loads((ROOT / "schemas" / "datasets" / f"{name}.json").read_text())
    return loaded


if __name__ == "__main__":
    main()
