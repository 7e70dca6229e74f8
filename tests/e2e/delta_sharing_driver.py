"""Run by the Delta Sharing connector's own virtualenv (build/delta-sharing): what a recipient's
notebook does, printed as JSON for tests/e2e/test_delta_sharing.py and benchmarks/delta_sharing.py.

    python delta_sharing_driver.py PROFILE tables
    python delta_sharing_driver.py PROFILE load SHARE.SCHEMA.TABLE [--limit N] [--version N]
    python delta_sharing_driver.py PROFILE compare SHARE.SCHEMA.TABLE RUNS
        (load_as_pandas and pyarrow on the same presigned URLs, alternating, after one warm-up of each;
         the metadata and query requests timed alone as well)
    python delta_sharing_driver.py PROFILE changes SHARE.SCHEMA.TABLE     (the change data feed from version 1)
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import delta_sharing
import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import requests


def table_url(profile: dict[str, Any], table: str, what: str) -> str:
    share, schema, name = table.split(".")
    return f"{profile['endpoint']}/shares/{share}/schemas/{schema}/tables/{name}/{what}"


def query(profile: dict[str, Any], table: str) -> list[str]:
    """The query request alone: the files' presigned URLs."""
    headers = {"Authorization": f"Bearer {profile['bearerToken']}"}
    answer = requests.post(table_url(profile, table, "query"), headers=headers, json={}, timeout=60)
    answer.raise_for_status()
    return [json.loads(line)["file"]["url"] for line in answer.text.splitlines() if line and "file" in json.loads(line)]


def metadata(profile: dict[str, Any], table: str) -> list[str]:
    """The metadata request alone (the connector sends one before each load)."""
    headers = {"Authorization": f"Bearer {profile['bearerToken']}"}
    answer = requests.get(table_url(profile, table, "metadata"), headers=headers, timeout=60)
    answer.raise_for_status()
    return answer.text.splitlines()


def bare_read(profile: dict[str, Any], table: str) -> Any:
    """What the connector fetches, read straight with pyarrow: the query's files from their URLs."""
    urls = query(profile, table)
    # pyarrow's own reader over HTTP (through fsspec, as pyarrow reads any URL it has no filesystem
    # for), converted to pandas as the connector converts (so the two differ by the protocol alone).
    tables = [pq.read_table(url, filesystem=fsspec.filesystem(url.split(":", 1)[0])) for url in urls]
    return pa.concat_tables(tables).to_pandas(date_as_object=True, use_threads=False, split_blocks=False, self_destruct=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("profile")
    parser.add_argument("action", choices=("tables", "load", "compare", "changes"))
    parser.add_argument("table", nargs="?")
    parser.add_argument("runs", nargs="?", type=int, default=3)
    parser.add_argument("--limit", type=int)
    parser.add_argument("--version", type=int)
    arguments = parser.parse_args()
    if arguments.action == "tables":
        client = delta_sharing.SharingClient(arguments.profile)
        print(json.dumps([{"share": t.share, "schema": t.schema, "name": t.name} for t in client.list_all_tables()]))
        return
    url = f"{arguments.profile}#{arguments.table}"
    if arguments.action == "changes":
        feed = delta_sharing.load_table_changes_as_pandas(url, starting_version=1)
        counts = feed["_change_type"].value_counts().to_dict()
        print(json.dumps({"change_types": counts, "versions": sorted(int(v) for v in feed["_commit_version"].unique())}))
        return
    if arguments.action == "compare":
        with open(arguments.profile) as handle:
            profile = json.load(handle)
        # The two requests' own times too: CityShare's share of each side.
        readers: dict[str, Callable[[], Any]] = {
            "connector": lambda: delta_sharing.load_as_pandas(url),
            "bare": lambda: bare_read(profile, arguments.table),
            "metadata": lambda: metadata(profile, arguments.table),
            "query": lambda: query(profile, arguments.table),
        }
        seconds: dict[str, list[float]] = {name: [] for name in readers}
        rows = {name: len(read()) for name, read in readers.items()}  # warm-up: imports, connections
        for _ in range(arguments.runs):
            for name, read in readers.items():
                start = time.perf_counter()
                read()
                seconds[name].append(time.perf_counter() - start)
        print(json.dumps({name: {"median_s": statistics.median(times), "rows": rows[name]} for name, times in seconds.items()}))
        return
    frame = delta_sharing.load_as_pandas(url, limit=arguments.limit, version=arguments.version)
    print(
        json.dumps(
            {
                "columns": list(frame.columns),
                "rows": len(frame),
                "values": {c: sorted({str(v) for v in frame[c].dropna().unique()})[:50] for c in frame.columns},
                "dtypes": {c: str(t) for c, t in frame.dtypes.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
