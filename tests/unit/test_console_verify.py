"""The console's "Verify chain" (console/src/views/audit.js, run here by node) reaches the same
verdicts as the server's hashing on chains with unicode, nesting and numbers: intact, an entry
altered, an entry removed, the tail cut off after a witness. And the console's first-load budget."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from functions.audit.chain import GENESIS_HASH, entry_hash

ROOT = Path(__file__).resolve().parents[2]
NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(
    NODE is None or not (ROOT / "console" / "node_modules").is_dir(), reason="node and `make console` needed"
)


def chain(count: int) -> list[dict[str, Any]]:
    entries, previous = [], GENESIS_HASH
    for seq in range(1, count + 1):
        fields: dict[str, Any] = {
            "chain": "transport",
            "seq": seq,
            "at": f"2026-11-27T10:00:0{seq}+00:00",
            "prev_hash": previous,
            "actor_department": "environment",
            "actor_principal": "analyst",
            "action": "ReadData",
            "resource": f"dataset/traffic-flow-{seq}",
            "decision": "allow" if seq % 2 else "deny",
            "reason": 'Zürich "Straße" — 東京 \u2028 tab\there / \\ 😀',
            "policies": ["grant-read", "owner"],
            "request_id": f"r-{seq}",
            "details": {"grant": "g1", "rows": 1000 * seq, "share": 0.25, "nested": {"b": [1, 2.5, None, True], "a": ""}},
        }
        fields["hash"] = entry_hash(fields)
        entries.append(fields)
        previous = fields["hash"]
    return entries


def verify(entries: list[dict[str, Any]], witness: dict[str, Any] | None = None) -> dict[str, Any]:
    module = (ROOT / "console" / "src" / "views" / "audit.js").as_uri()
    script = (
        f"const {{ verifyChain }} = await import({json.dumps(module)});\n"
        "const [entries, witness] = JSON.parse(process.argv[1]);\n"
        "console.log(JSON.stringify(await verifyChain(entries, witness)));\n"
    )
    run = subprocess.run(
        [str(NODE), "--input-type=module", "-e", script, json.dumps([entries, witness])],
        capture_output=True,
        text=True,
        check=True,
    )
    report: dict[str, Any] = json.loads(run.stdout)
    return report


def test_an_intact_chain_is_intact_and_its_head_is_the_servers() -> None:
    entries = chain(5)
    report = verify(entries)
    assert report["problems"] == [] and report["entries"] == 5
    assert report["head"] == {"seq": 5, "hash": entries[-1]["hash"]}


def test_an_altered_entry_is_found() -> None:
    entries = chain(5)
    entries[2]["details"]["rows"] = 1
    assert verify(entries)["problems"] == ["entry 3: content does not match its hash (altered)"]


def test_a_removed_entry_is_found() -> None:
    entries = chain(5)
    del entries[1]
    problems = verify(entries)["problems"]
    assert "entry 3: expected sequence 2 (an entry is missing or moved)" in problems
    assert "entry 3: does not link to the entry before it" in problems


def test_a_tail_cut_after_a_witness_is_found() -> None:
    entries = chain(5)
    witness = {"chain": "transport", "seq": 5, "hash": entries[-1]["hash"]}
    assert verify(entries, witness)["problems"] == []
    problems = verify(entries[:3], witness)["problems"]
    assert problems == ["the chain ends at entry 3 but entry 5 was witnessed before (entries removed)"]


def test_the_first_load_stays_under_300_kb_gzipped() -> None:
    """Everything the page loads the first time (the page, its script, its style): the issue's budget."""
    built = ROOT / "console" / "dist"  # `make console`
    sizes = {name: len(gzip.compress((built / name).read_bytes(), 9)) for name in ("index.html", "app.js", "style.css")}
    assert sum(sizes.values()) < 300 * 1024, sizes
