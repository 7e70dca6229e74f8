"""Restricted-view figures. (1) Issue Sharing: building the view of a 1,000,000-row traffic-flow
version for a grant (columns, a row filter), against a bare pyarrow read + filter + write of the same
curated file in the same run (target ratio ≤ 1.5). Masking a column is timed on its own, since the
bare baseline does no such work. Median of 5 runs each, this machine, no S3 (the same code
ViewBuilder runs between its GetObject and its PutObject). Views of data about people (per-grant
tokens, differentially private groups) are in benchmarks/privacy.py.
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


def paired_medians(*actions: Callable[[], bytes], runs: int = RUNS) -> list[float]:
    """Median seconds of each action, run in turn within each round: the machine's drift between
    rounds (other processes, memory) falls on every action alike, not on whichever ran last."""
    times: list[list[float]] = [[] for _ in actions]
    for _ in range(runs):
        for measured, action in zip(times, actions, strict=True):
            start = time.perf_counter()
            action()
            measured.append(time.perf_counter() - start)
    return [statistics.median(measured) for measured in times]


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="cityshare-views-"))
    csv = generate("traffic-flow", ROWS, folder / "flow.csv")
    curated = folder / "curated.parquet"
    pq.write_table(pacsv.read_csv(csv), curated, compression="zstd")
    flow = described("traffic-flow", "transport")
    plain, masked = grant([]), grant(["camera_id"])

    def no_key() -> bytes:
        raise AssertionError("nothing is decrypted here")

    secrets = ViewSecrets(data_key=no_key, mask_key=lambda: b"k" * 32)
    bare_s, bare_size = median_seconds(lambda: bare(curated))
    view_s, view_size = median_seconds(lambda: view_bytes([curated], flow, plain, secrets))
    mask_s, _ = median_seconds(lambda: view_bytes([curated], flow, masked, secrets))
    size_mb = curated.stat().st_size / 1e6
    print(f"{ROWS:,} rows, curated Parquet {size_mb:.1f} MB; grant: {len(COLUMNS)} columns, district in {DISTRICTS}")
    print(f"bare pyarrow read + filter + select + write: {bare_s * 1000:.0f} ms ({bare_size / 1e6:.1f} MB out)")
    print(
        f"restricted view (columns + row filter):      {view_s * 1000:.0f} ms ({view_size / 1e6:.1f} MB out)"
        f" -> ratio {view_s / bare_s:.2f} (target <= 1.5)"
    )
    print(f"the same with camera_id masked per grant:    {mask_s * 1000:.0f} ms -> ratio {mask_s / bare_s:.2f}")


def curated_of(name: str, rows: int, folder: Path) -> Path:
    """`rows` generated records of a city dataset, through the real ingest (personal columns
    protected as the schema says): the curated Parquet a view is built from."""
    source = generate(name, rows, folder / f"{name}.csv")
    table_schema = TableSchema.model_validate(_schema(name))
    request = UploadRequest(filename=source.name, format="csv", size_bytes=source.stat().st_size)
    protector = Protector(table_schema, name, b"k" * 32, lambda: b"d" * 32, folder)
    with source.open("rb") as raw:
        outcome = run_pipeline(raw, request, table_schema, IngestPolicy(), protector, folder)
    assert outcome.accepted and outcome.parquet is not None
    return Path(outcome.parquet)


def described(name: str, owner: str) -> Dataset:
    return Dataset.model_validate(
        {
            "dataset_id": name,
            "title": name,
            "classification": "confidential",
            "schema": _schema(name),
            "owner": owner,
            "created_at": "t",
            "updated_at": "t",
            "created_by": "p",
        }
    )


def _schema(name: str) -> dict[str, object]:
    import json

    loaded: dict[str, object] = json.loads((ROOT / "schemas" / "datasets" / f"{name}.json").read_text())
    return loaded


if __name__ == "__main__":
    main()
