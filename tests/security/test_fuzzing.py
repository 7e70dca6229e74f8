"""Schemathesis over every operation of schemas/openapi.json, against an embedded stack of its own
(the fuzzer is a platform admin and steward: it may suspend departments and retire keys), every
request signed like the SDK's. Coverage and fuzzing phases, a fixed seed, a bounded budget: any
server error, undocumented status or content type, response off its schema, or invalid input
accepted fails the test, with Schemathesis's report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cityshare.admin import enrol
from tests.conftest import ROOT, RunningStack, running_stack
from tests.datasets import SMALL_SCHEMA

CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,negative_data_rejection"
SEED = 20261127
MAX_EXAMPLES = 8  # with the coverage phase's cases, ≈ 2 minutes here: the suite stays well under 15


@pytest.fixture(scope="module")
def own_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    yield from running_stack(tmp_path_factory.mktemp("fuzzed-stack"), "--in-memory")


def seeded(stack: RunningStack) -> tuple[Path, dict[str, dict[str, Any]]]:
    """A fuzzing principal, and resources that exist, so path parameters can name them."""
    from cityshare import CityShareClient

    admin = stack.admin()
    profile = enrol(
        admin, stack.admin_profile, "platform", "fuzzer", ["member", "steward", "admin"], stack.state_dir / "fuzzer.pem"
    )
    fuzzer = CityShareClient.from_profile(profile)
    admin.register_department("fuzzed", "Fuzzed department")
    fuzzer.create_dataset("fuzz-data", "Fuzzed data", "internal", SMALL_SCHEMA)
    upload = fuzzer.push_records("fuzz-data", [{"station_id": "AQ-1", "value": 1.5}])
    fuzzer.wait_for_upload("fuzz-data", upload["upload_id"], 60)
    grant = fuzzer.grant("fuzz-data", "fuzzed", "Fuzzing every operation", "research")
    path = stack.state_dir / "fuzzer.json"
    profile.save(path)
    known = {
        "dataset_id": {"pattern": r"[a-z0-9][a-z0-9-]{2,62}", "values": ["fuzz-data"]},
        "department_id": {"pattern": r"[a-z][a-z0-9-]{1,31}", "values": ["fuzzed"]},
        "upload_id": {"pattern": r"u[0-9a-f]{32}", "values": [upload["upload_id"]]},
        "grant_id": {"pattern": r"g[0-9a-f]{24}", "values": [grant["grant_id"]]},
        "version": {"pattern": r"[0-9]{1,10}", "values": ["1"]},
    }
    return path, known


def schemathesis(document: str, url: str, environment: dict[str, str], report: Path, *options: str) -> None:
    """Run Schemathesis over `document` against `url`; any failure fails the test with its report."""
    env = dict(os.environ, SCHEMATHESIS_HOOKS="tests.security.schemathesis_hooks", PYTHONPATH=str(ROOT), **environment)
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        str(ROOT / "schemas" / document),
        "--url",
        url,
        "--phases",
        "coverage,fuzzing",
        "--checks",
        CHECKS,
        "--seed",
        str(SEED),
        "--max-examples",
        str(MAX_EXAMPLES),
        "--workers",
        "2",
        "--no-color",
        "--report",
        "junit",
        "--report-dir",
        str(report),
        *options,
    ]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    (report / "schemathesis.txt").write_text(result.stdout + result.stderr)
    failures = [line for line in result.stdout.splitlines() if line.startswith("___") or line.startswith("- ST")]
    assert result.returncode == 0, "\n".join([f"Schemathesis ({report / 'schemathesis.txt'}):", *failures, result.stdout[-1500:]])
    assert "Test cases:" in result.stdout


def test_schemathesis_finds_no_failure(own_stack: RunningStack, tmp_path: Path) -> None:
    profile, known = seeded(own_stack)
    environment = {"CITYSHARE_FUZZ_PROFILE": str(profile), "CITYSHARE_FUZZ_IDS": json.dumps(known)}
    schemathesis("openapi.json", own_stack.admin_profile.endpoint, environment, tmp_path)


def test_schemathesis_finds_no_failure_in_the_open_interfaces(own_stack: RunningStack, tmp_path: Path) -> None:
    """Delta Sharing with a recipient's bearer token (over a table it may read) and the public DCAT-AP catalog."""
    from cityshare import CityShareClient

    admin = own_stack.admin()
    admin.register_department("recipient", "Recipient department")
    owner = CityShareClient.from_profile(
        enrol(admin, own_stack.admin_profile, "platform", "sharer", ["member", "steward"], own_stack.state_dir / "sharer.pem")
    )
    owner.create_dataset("shared-data", "Shared data", "public", SMALL_SCHEMA, tags=["air"])
    upload = owner.push_records("shared-data", [{"station_id": "AQ-1", "value": 1.5}])
    owner.wait_for_upload("shared-data", upload["upload_id"], 60)
    owner.grant("shared-data", "recipient", "Fuzzing the open interfaces", "research")
    token = owner.issue_share_profile("recipient", 1, "fuzzer")["bearerToken"]
    known = {
        "share": {"pattern": r".+", "values": ["platform"]},
        "schema": {"pattern": r".+", "values": ["air"]},
        "table": {"pattern": r".+", "values": ["shared-data"]},
    }
    environment = {"CITYSHARE_FUZZ_IDS": json.dumps(known)}
    schemathesis(
        "open-interfaces.json",
        own_stack.admin_profile.endpoint,
        environment,
        tmp_path,
        "--header",
        f"Authorization: Bearer {token}",
    )
