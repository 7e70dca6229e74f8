"""Restricted-view figure (issue: Sharing): building the view of a 1,000,000-row traffic-flow
version for a grant (columns, a row filter), against a bare pyarrow read + filter + write of the same
curated file in the same run (target ratio ≤ 1.5). Masking a column is timed on its own, since the
bare baseline does no such work. Median of 5 runs each, this machine, no S3 (the same code
ViewBuilder runs between its GetObject and its PutObject).
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
from functions.catalog.models import Dataset
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


if __name__ == "__main__":
    main()
