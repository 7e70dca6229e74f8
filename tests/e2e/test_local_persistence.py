"""The embedded stack keeps its state: killed in the middle of a stream of writes, started again on
the same folder, it comes back whole on the same port, with every acknowledged write, and the
profiles, keys, grants, share tokens and audit chains made before still work."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Generator
from contextlib import contextmanager
from pathlib import Path

import pytest

from cityshare import CityShareClient
from cityshare.delta import SharedTables
from tests.conftest import ROOT, RunningStack, onboard, running_stack, unique
from tests.datasets import city_schema


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def _stack(state_dir: Path, port: str | None) -> Generator[RunningStack]:
    (state_dir / "profile.json").unlink(missing_ok=True)  # written afresh once the new stack listens
    stacks = running_stack(state_dir, port=port)
    try:
        yield next(stacks)
    finally:
        stacks.close()


def _records(count: int) -> list[dict[str, object]]:
    return [
        {
            "segment_id": f"SEG-{n:05d}",
            "district": "Centre",
            "measured_at": "2026-11-02T08:00:00Z",
            "vehicle_count": n,
            "avg_speed_kmh": 30.0,
        }
        for n in range(count)
    ]


def test_a_killed_stack_comes_back_whole_on_the_same_port(tmp_path_factory: pytest.TempPathFactory) -> None:
    state_dir = tmp_path_factory.mktemp("kept")
    port = str(_free_port())
    acknowledged: list[str] = []
    with _stack(state_dir, port) as first:
        owner = onboard(first, unique("transport"), "steward", ["member", "steward"])
        reader = onboard(first, unique("environment"), "analyst", ["member"])
        dataset_id = unique("traffic-flow")
        owner.client.create_dataset(dataset_id, "Traffic flow", "confidential", city_schema("traffic-flow"))
        upload = owner.client.push_records(dataset_id, _records(20))
        assert owner.client.wait_for_upload(dataset_id, upload["upload_id"], 60)["status"] == "published"
        grant = owner.client.grant(dataset_id, reader.profile.department, "Congestion studies", "research")
        share_profile = owner.client.issue_share_profile(reader.profile.department, 30, "notebooks")
        chain_before = owner.client.verify_audit()
        assert chain_before.intact

        # A stream of writes, killed without warning in its middle: what was answered must survive.
        stop = threading.Event()

        def write() -> None:
            writer = CityShareClient.from_profile(owner.profile)
            writer.retries = 0
            while not stop.is_set():
                name = unique("counts")
                try:
                    writer.create_dataset(name, "Counts", "internal", city_schema("traffic-flow"))
                except Exception:  # the connection dropped by the kill: not acknowledged
                    return
                acknowledged.append(name)

        thread = threading.Thread(target=write)
        thread.start()
        while len(acknowledged) < 5:
            thread.join(0.05)
        os.kill(first.process.pid, signal.SIGKILL)
        stop.set()
        thread.join(30)
        first.process.wait(10)

    assert (state_dir / "stack.lock").exists()
    with _stack(state_dir, None) as second:  # no --port: the one it used before
        assert second.admin_profile.endpoint == f"http://127.0.0.1:{port}"
        log = (state_dir / "stack.log").read_text()
        assert "restored in" in log
        # The profiles made before work unchanged: same port, same keys.
        owner_again = CityShareClient.from_profile(owner.profile)
        mine = {d["dataset_id"] for d in owner_again.iter_datasets(owner=owner.profile.department)}
        assert set(acknowledged) <= mine, set(acknowledged) - mine
        reader_again = CityShareClient.from_profile(reader.profile)
        table = reader_again.read_table(dataset_id)
        assert table.num_rows == 20
        assert grant["grant_id"] in {g["grant_id"] for g in reader_again.department_grants("received")}
        assert SharedTables(share_profile).tables()  # the share token kept
        chain_after = owner_again.verify_audit(witness={"seq": chain_before.head_seq, "hash": chain_before.head_hash})
        assert chain_after.intact and chain_after.head_seq > chain_before.head_seq
        assert second.admin().verify_audit("platform").intact
        # New work runs as before: an upload is ingested, its version published after the restored ones.
        upload = owner_again.push_records(dataset_id, _records(5))
        assert owner_again.wait_for_upload(dataset_id, upload["upload_id"], 60)["status"] == "published"
        assert max(v["version"] for v in owner_again.list_versions(dataset_id)) == 2
        # Reset is refused while it runs.
        refused = _cli("local", "reset", "--state-dir", str(state_dir), "--yes")
        assert refused.returncode == 1 and "stop it" in refused.stdout
        asked = _cli("local", "reset", "--state-dir", str(state_dir))  # refused before asking whether to forget
        assert asked.returncode == 1 and "stop it" in asked.stdout and "Forget" not in asked.stdout

    assert _cli("local", "reset", "--state-dir", str(state_dir), "--yes").returncode == 0
    assert not (state_dir / "aws").exists()


def test_a_second_stack_on_the_same_folder_or_port_is_refused_with_a_sentence(stack: RunningStack, tmp_path: Path) -> None:
    same_folder = _cli("local", "up", "--state-dir", str(stack.state_dir), "--port", "0")
    assert same_folder.returncode == 1 and "already runs" in same_folder.stdout
    port = stack.admin_profile.endpoint.rsplit(":", 1)[1]
    same_port = _cli("local", "up", "--state-dir", str(tmp_path / "other"), "--port", port)
    assert same_port.returncode == 1 and f"Port {port} is taken" in same_port.stdout


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return subprocess.run(
        [sys.executable, "-m", "cityshare", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
