"""Figures of the embedded stack's kept state (issue: The first hour), this machine:

1. `cityshare local up` ready (the API answers a signed call) on a new state folder;
2. the cost of keeping state: the median latency of a signed write (PATCH of a dataset) with the
   state kept, against the same stack in memory only (`--in-memory`);
3. `cityshare local up` ready again after a SIGTERM, with 10 departments (each with a steward, a
   dataset and a published version) and 1 GB of objects in its S3 buckets (written straight to the
   stack's S3, as uploads' originals are: 16 objects of 64 MB of random bytes).
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3

from cityshare import CityShareClient, Profile
from cityshare.admin import onboard

ROOT = Path(__file__).resolve().parents[1]
DEPARTMENTS = 10
OBJECTS, OBJECT_BYTES = 16, 64 * 1024**2
WRITES = 30


def start(state_dir: Path, *options: str) -> tuple[subprocess.Popen[bytes], float]:
    """The stack in its own process, and the seconds until a signed call is answered."""
    (state_dir / "profile.json").unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    began = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "cityshare", "local", "up", "--state-dir", str(state_dir), "--port", "0", *options],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    while True:
        if process.poll() is not None:
            raise RuntimeError("the stack did not start")
        try:
            admin(state_dir).whoami()
            return process, time.perf_counter() - began
        except Exception:
            time.sleep(0.05)


def admin(state_dir: Path) -> CityShareClient:
    return CityShareClient.from_profile(Profile.load(state_dir / "profile.json"))


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    process.wait(60)


def write_latency(state_dir: Path) -> float:
    client = admin(state_dir)
    steward = onboard(client, Profile.load(state_dir / "profile.json"), "latency", "Latency", {"s": "steward"}, state_dir / "l")
    owner = CityShareClient.from_profile(Profile.load(steward[0].profile_path))
    schema = json.loads((ROOT / "schemas/datasets/air-quality.json").read_text())
    owner.create_dataset("latency-air", "Air", "internal", schema)
    times = []
    for n in range(WRITES):
        began = time.perf_counter()
        owner.update_dataset("latency-air", description=f"edit {n}")
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def fill(state_dir: Path) -> None:
    client = admin(state_dir)
    profile = Profile.load(state_dir / "profile.json")
    schema = json.loads((ROOT / "schemas/datasets/air-quality.json").read_text())
    record = {"station_id": "AQ-001", "district": "Centre", "measured_at": "2026-11-02T08:00:00Z", "pm25": 12.0}
    for n in range(DEPARTMENTS):
        department = f"department-{n:02d}"
        done = onboard(client, profile, department, department.title(), {"steward": "steward"}, state_dir / department)
        owner = CityShareClient.from_profile(Profile.load(done[0].profile_path))
        owner.create_dataset(f"air-{n:02d}", "Air", "internal", schema)
        upload = owner.push_records(f"air-{n:02d}", [record])
        owner.wait_for_upload(f"air-{n:02d}", upload["upload_id"], 120)
    aws = json.loads((state_dir / "profile.json").read_text())["aws_endpoint"]
    s3 = boto3.client("s3", endpoint_url=aws, region_name="eu-west-1", aws_access_key_id="local", aws_secret_access_key="local")
    bucket = next(b["Name"] for b in s3.list_buckets()["Buckets"] if b["Name"].endswith("-data"))
    for n in range(OBJECTS):
        s3.put_object(Bucket=bucket, Key=f"bulk/{n:03d}.bin", Body=os.urandom(OBJECT_BYTES))


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        kept, memory = Path(folder) / "kept", Path(folder) / "memory"
        process, first = start(kept)
        kept_write = write_latency(kept)
        fill(kept)
        stop(process)
        size = sum(p.stat().st_size for p in kept.rglob("*") if p.is_file())
        process, again = start(kept)
        departments = len(admin(kept).list_departments())
        stop(process)
        process, _ = start(memory, "--in-memory")
        memory_write = write_latency(memory)
        stop(process)
    print(f"local up, new state folder: ready in {first:.1f} s")
    latencies = f"{kept_write * 1000:.0f} ms kept, {memory_write * 1000:.0f} ms in memory only"
    print(f"a signed write (PATCH /datasets/x), median of {WRITES}: {latencies}")
    kept_figure = f"{departments} departments and {size / 1024**3:.2f} GB kept"
    print(f"local up again after SIGTERM, {kept_figure}: ready in {again:.1f} s (target 5 s)")


if __name__ == "__main__":
    main()
