"""Delta Sharing through the embedded stack, with the official connector (its own virtualenv,
build/delta-sharing): `load_as_pandas` of a 1,000,000-row shared table against pyarrow reading the
same Parquet files from the same presigned URLs into pandas (converted with the connector's own
options, so the two differ by the protocol alone), alternating in one process (target: ratio <= 1.2),
for a table shared whole and for two narrowed grants' views: the demo's ("no camera ids, hourly,
three districts") and a small one (4 columns, one district).
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

from cityshare.delta import write_profile
from cityshare.generators import generate

ROOT = Path(__file__).resolve().parents[1]
DRIVER = ROOT / "tests" / "e2e" / "delta_sharing_driver.py"
ROWS = 1_000_000
RUNS = 9


def compare(python: Path, profile: Path, table: str) -> dict[str, dict[str, float]]:
    """The connector and the bare read in one process, alternating run by run (this machine's speed
    moves from minute to minute; apart, the two medians came from different moments)."""
    result = subprocess.run(
        [str(python), str(DRIVER), str(profile), "compare", table, str(RUNS)], capture_output=True, text=True, check=True
    )
    figures: dict[str, dict[str, float]] = json.loads(result.stdout)
    return figures


def main() -> None:
    from cityshare import CityShareClient, Profile
    from cityshare.admin import enrol
    from infra.local.stack import LocalStack
    from tests.datasets import city_schema
    from tests.tools import tool_python

    python = tool_python("delta-sharing")
    folder = Path(tempfile.mkdtemp(prefix="cityshare-delta-sharing-"))
    stack = LocalStack(folder / "stack")
    endpoints = stack.start()
    try:
        admin_profile = Profile.load(endpoints.profile_path)
        admin = CityShareClient.from_profile(admin_profile)
        for department in ("transport", "environment"):
            admin.register_department(department, department.title())
        steward = CityShareClient.from_profile(
            enrol(admin, admin_profile, "transport", "steward", ["member", "steward"], folder / "steward.pem")
        )
        flow = generate("traffic-flow", ROWS, folder / "flow.csv")
        terms = {
            "whole": None,
            "narrowed": {
                "columns": ["segment_id", "district", "measured_at", "avg_speed_kmh", "vehicle_count"],
                "row_filter": {"condition": {"column": "district", "op": "in", "value": ["Centre", "Harbour", "Old Town"]}},
                "generalised": {"measured_at": "1h"},
            },
            "small": {
                "columns": ["segment_id", "district", "measured_at", "vehicle_count"],
                "row_filter": {"condition": {"column": "district", "op": "eq", "value": "Centre"}},
            },
        }
        for name, grant_terms in terms.items():
            dataset_id = f"flow-{name}"
            steward.create_dataset(
                dataset_id, f"Traffic flow ({name})", "internal", city_schema("traffic-flow"), tags=["mobility"]
            )
            upload = steward.upload_file(dataset_id, flow)
            assert steward.wait_for_upload(dataset_id, upload["upload_id"], 600)["status"] == "published"
            steward.grant(dataset_id, "environment", "Benchmark of shared reads", "statistics", terms=grant_terms or {})
        issued = steward.issue_share_profile("environment", 1, "benchmark")
        profile = write_profile(issued, folder / "environment.share")
        print(f"Delta Sharing, {ROWS:,}-row traffic-flow table, median of {RUNS} (connector's pyarrow and pandas):")
        for name in terms:
            table = f"transport.mobility.flow-{name}"
            figures = compare(python, profile, table)
            bare, connector = figures["bare"], figures["connector"]
            assert connector["rows"] == bare["rows"]
            ratio = connector["median_s"] / bare["median_s"]
            server = figures["metadata"]["median_s"] + figures["query"]["median_s"]
            # The connector's own work: what it takes beyond the bare read and its metadata request.
            own = connector["median_s"] - bare["median_s"] - figures["metadata"]["median_s"]
            files_only = bare["median_s"] - figures["query"]["median_s"]
            print(
                f"  {name:9} {int(bare['rows']):>9,} rows: pyarrow on the presigned URLs {bare['median_s']:.3f} s, "
                f"load_as_pandas {connector['median_s']:.3f} s -> ratio {ratio:.2f} (target <= 1.2)\n"
                f"            CityShare's answers: metadata {figures['metadata']['median_s'] * 1000:.0f} ms, "
                f"query {figures['query']['median_s'] * 1000:.0f} ms ({server * 1000:.0f} ms in all); "
                f"the connector's own work beyond the bare read: {own * 1000:.0f} ms, "
                f"so a server answering in no time would give {(files_only + own) / files_only:.2f}"
            )
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
