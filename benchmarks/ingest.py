"""Ingest figures (issue: Ingestion), on this machine:

1. the full ingest path (parse, validate, protect, profile, write Parquet) against bare
   `pyarrow.csv.read_csv` + `pyarrow.parquet.write_table` on the same 1,000,000-row traffic CSV,
   median of several runs in the same process: the ratio must be at least 0.6;
2. peak memory (RSS) ingesting a ~1 GB CSV in a fresh process: must stay under 600 MB;
3. rows/s and MB/s for CSV, JSON lines and Parquet input.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from cityshare.generators import generate
from functions.catalog.models import IngestPolicy, TableSchema
from functions.ingest.models import FileFormat, UploadRequest
from functions.ingest.pipeline import IngestOutcome, run_pipeline
from functions.ingest.protect import Protector

ROOT = Path(__file__).resolve().parents[1]
RUNS = 5


def schema() -> TableSchema:
    return TableSchema.model_validate(json.loads((ROOT / "schemas" / "datasets" / "traffic-flow.json").read_text()))


def full_ingest(path: Path, file_format: FileFormat = "csv") -> IngestOutcome:
    table_schema = schema()
    request = UploadRequest(filename=path.name, format=file_format, size_bytes=path.stat().st_size)
    protector = Protector(table_schema, "traffic-flow", b"k" * 32, lambda: b"d" * 32)
    with tempfile.TemporaryDirectory() as folder, path.open("rb") as source:
        outcome = run_pipeline(source, request, table_schema, IngestPolicy(), protector, Path(folder))
    assert outcome.accepted, outcome.report
    return outcome


def bare(path: Path, out: Path) -> None:
    pq.write_table(pacsv.read_csv(path), out, compression="zstd")


def timed(action: object) -> float:
    start = time.perf_counter()
    action()  # type: ignore[operator]
    return time.perf_counter() - start


def ratio(csv_path: Path, work: Path) -> None:
    bare_times, full_times = [], []
    for _ in range(RUNS):
        bare_times.append(timed(lambda: bare(csv_path, work / "bare.parquet")))
        full_times.append(timed(lambda: full_ingest(csv_path)))
    bare_s, full_s = statistics.median(bare_times), statistics.median(full_times)
    rows = 1_000_000
    print(f"1,000,000-row traffic CSV ({csv_path.stat().st_size / 1e6:.0f} MB), median of {RUNS}:")
    print(f"  bare pyarrow read_csv + write_table(zstd): {bare_s:.3f} s ({rows / bare_s:,.0f} rows/s)")
    print(f"  full ingest (validate, protect, profile, write): {full_s:.3f} s ({rows / full_s:,.0f} rows/s)")
    print(f"  ratio full/bare throughput: {bare_s / full_s:.2f} (target >= 0.6)")


def formats(csv_path: Path, work: Path) -> None:
    jsonl = generate("traffic-flow", 200_000, work / "flow.jsonl")
    parquet = work / "flow.parquet"
    pq.write_table(pacsv.read_csv(csv_path), parquet, compression="zstd")
    print("throughput by input format (full ingest):")
    for label, path, file_format, rows in (
        ("CSV", csv_path, "csv", 1_000_000),
        ("JSON lines", jsonl, "jsonl", 200_000),
        ("Parquet", parquet, "parquet", 1_000_000),
    ):
        seconds = statistics.median(timed(lambda p=path, f=file_format: full_ingest(p, f)) for _ in range(3))
        print(f"  {label:<10} {rows / seconds:>12,.0f} rows/s  {path.stat().st_size / 1e6 / seconds:8.1f} MB/s  ({rows:,} rows)")


def memory(csv_path: Path, work: Path) -> None:
    big = work / "flow-1gb.csv"
    body = csv_path.read_bytes()
    header, rest = body.split(b"\n", 1)
    with big.open("wb") as out:
        out.write(header + b"\n")
        while out.tell() < 1_000_000_000:
            out.write(rest)
    program = (
        "import resource, sys; from pathlib import Path; from benchmarks.ingest import full_ingest; "
        "o = full_ingest(Path(sys.argv[1])); "
        "print(o.report.rows_accepted, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)"
    )
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", program, str(big)], cwd=ROOT, capture_output=True, text=True, check=True)
    rows, peak_mb = result.stdout.split()
    seconds = time.perf_counter() - start
    print(
        f"~1 GB CSV ({big.stat().st_size / 1e9:.2f} GB, {int(rows):,} rows) in a fresh process: peak RSS {peak_mb} MB "
        f"(target < 600 MB), {seconds:.1f} s, {big.stat().st_size / 1e6 / seconds:.0f} MB/s"
    )
    big.unlink()


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="cityshare-ingest-bench-") as folder:
        work = Path(folder)
        csv_path = generate("traffic-flow", 1_000_000, work / "flow.csv")
        ratio(csv_path, work)
        formats(csv_path, work)
        memory(csv_path, work)


if __name__ == "__main__":
    main()
