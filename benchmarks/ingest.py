"""Ingest figures, on this machine, each the median of several runs in one process:

1. full ingest (parse, validate, protect, profile, write Parquet) against bare pyarrow read + write
   (zstd) of the same 1,000,000-row file, as a throughput ratio (bare time / full time):
   - traffic-flow CSV (no personal column): target >= 0.6;
   - plate-reads CSV (plates pseudonymised; 200,000 distinct): target >= 0.6 (issue: personal data);
   - delivery-gps CSV (vehicle pseudonymised, time and position generalised): target >= 0.6;
   - traffic-flow JSON lines against `pyarrow.json.read_json` + write: target >= 0.5 (issue: hostile input);
2. rows/s and MB/s for CSV, JSON lines and Parquet input;
3. peak memory (RSS, VmHWM) ingesting a ~1 GB CSV in a fresh process: must stay under 600 MB.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from cityshare.generators import generate
from functions.catalog.models import IngestPolicy, TableSchema
from functions.ingest.models import FileFormat, UploadRequest
from functions.ingest.pipeline import IngestOutcome, run_pipeline
from functions.privacy.protect import Protector

ROOT = Path(__file__).resolve().parents[1]
RUNS = 9  # alternating bare and full: this machine moves by 20 % from run to run
ROWS = 1_000_000


def schema(name: str = "traffic-flow") -> TableSchema:
    return TableSchema.model_validate(json.loads((ROOT / "schemas" / "datasets" / f"{name}.json").read_text()))


def full_ingest(path: Path, file_format: FileFormat = "csv", name: str = "traffic-flow") -> IngestOutcome:
    table_schema = schema(name)
    request = UploadRequest(filename=path.name, format=file_format, size_bytes=path.stat().st_size)
    with tempfile.TemporaryDirectory() as folder, path.open("rb") as source:
        protector = Protector(table_schema, name, b"k" * 32, lambda: b"d" * 32, Path(folder))
        outcome = run_pipeline(source, request, table_schema, IngestPolicy(), protector, Path(folder))
        protector.vault_files()
    assert outcome.accepted, outcome.report
    return outcome


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def ratio(label: str, path: Path, file_format: FileFormat, name: str, target: float, work: Path) -> float:
    """Bare read + write against full ingest, alternating, median of RUNS each."""
    read = pajson.read_json if file_format == "jsonl" else pacsv.read_csv
    bare_times, full_times = [], []
    for _ in range(RUNS):
        bare_times.append(timed(lambda: pq.write_table(read(path), work / "bare.parquet", compression="zstd")))
        full_times.append(timed(lambda: full_ingest(path, file_format, name)))
    bare_s, full_s = statistics.median(bare_times), statistics.median(full_times)
    reader = "read_json" if file_format == "jsonl" else "read_csv"
    print(f"{label} ({path.stat().st_size / 1e6:.0f} MB), median of {RUNS}:")
    print(f"  bare pyarrow {reader} + write_table(zstd): {bare_s:.3f} s ({ROWS / bare_s:,.0f} rows/s)")
    print(f"  full ingest (validate, protect, profile, write):  {full_s:.3f} s ({ROWS / full_s:,.0f} rows/s)")
    print(f"  ratio full/bare throughput: {bare_s / full_s:.2f} (target >= {target})")
    return bare_s / full_s


def formats(csv_path: Path, jsonl_path: Path, work: Path) -> None:
    parquet = work / "flow.parquet"
    pq.write_table(pacsv.read_csv(csv_path), parquet, compression="zstd")
    print("throughput by input format (full ingest, traffic-flow):")
    for label, path, file_format in (
        ("CSV", csv_path, "csv"),
        ("JSON lines", jsonl_path, "jsonl"),
        ("Parquet", parquet, "parquet"),
    ):
        seconds = statistics.median(timed(lambda p=path, f=file_format: full_ingest(p, f)) for _ in range(3))  # type: ignore[misc]
        print(f"  {label:<10} {ROWS / seconds:>12,.0f} rows/s  {path.stat().st_size / 1e6 / seconds:8.1f} MB/s")


def memory(csv_path: Path, work: Path) -> None:
    big = work / "flow-1gb.csv"
    body = csv_path.read_bytes()
    header, rest = body.split(b"\n", 1)
    with big.open("wb") as out:
        out.write(header + b"\n")
        while out.tell() < 1_000_000_000:
            out.write(rest)
    # The peak of this process's own memory (VmHWM). Not getrusage's ru_maxrss: Linux carries it
    # over exec, so it would report the benchmark's own (larger) footprint at the moment it forked.
    program = (
        "import sys; from pathlib import Path; from benchmarks.ingest import full_ingest; "
        "o = full_ingest(Path(sys.argv[1])); "
        "peak = next(line for line in open('/proc/self/status') if line.startswith('VmHWM:')); "
        "print(o.report.rows_accepted, int(peak.split()[1]) // 1024)"
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
        flow_csv = generate("traffic-flow", ROWS, work / "flow.csv")
        flow_jsonl = generate("traffic-flow", ROWS, work / "flow.jsonl")
        ratio("1,000,000-row traffic-flow CSV", flow_csv, "csv", "traffic-flow", 0.6, work)
        plates = generate("plate-reads", ROWS, work / "plates.csv")
        ratio("1,000,000 plate-reads, plates pseudonymised (200,000 distinct)", plates, "csv", "plate-reads", 0.6, work)
        plates.unlink()
        gps = generate("delivery-gps", ROWS, work / "gps.csv")
        ratio(
            "1,000,000 delivery-gps rows, vehicle pseudonymised, time and place generalised",
            gps,
            "csv",
            "delivery-gps",
            0.6,
            work,
        )
        gps.unlink()
        ratio("1,000,000-row traffic-flow JSON lines", flow_jsonl, "jsonl", "traffic-flow", 0.5, work)
        formats(flow_csv, flow_jsonl, work)
        memory(flow_csv, work)


if __name__ == "__main__":
    main()
