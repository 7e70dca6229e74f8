"""The README's walk-throughs run as written: each block marked `<!-- README test: name -->` is run by
bash against an embedded stack of its own, from a folder holding what the README refers to."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, RunningStack, running_stack

MARKED = re.compile(r"<!-- README test: (?P<name>[\w-]+) -->\n```(?P<language>\w+)\n(?P<code>.*?)\n```", re.S)


def readme_blocks() -> dict[str, tuple[str, str]]:
    return {m["name"]: (m["language"], m["code"]) for m in MARKED.finditer((ROOT / "README.md").read_text())}


@pytest.fixture(scope="module")
def own_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    yield from running_stack(tmp_path_factory.mktemp("readme-stack"))


def test_the_readme_marks_its_walk_throughs() -> None:
    assert "onboarding" in readme_blocks()


@pytest.mark.parametrize("name", sorted(readme_blocks()))
def test_a_readme_block_runs_as_written(name: str, own_stack: RunningStack, tmp_path: Path) -> None:
    language, code = readme_blocks()[name]
    assert language == "bash"
    # Where a user following the README stands: in the clone, the stack's admin profile where
    # `make local` writes it, `export CITYSHARE_PROFILE=.cityshare/local/profile.json` done.
    (tmp_path / "schemas").symlink_to(ROOT / "schemas")
    (tmp_path / ".cityshare" / "local").mkdir(parents=True)
    (tmp_path / ".cityshare" / "local" / "profile.json").write_text(own_stack.profile_path.read_text())
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env |= {"CITYSHARE_PROFILE": ".cityshare/local/profile.json", "PATH": f"{Path(sys.executable).parent}:{env['PATH']}"}
    run = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr}"
    assert "Traceback" not in run.stdout + run.stderr
    if name == "onboarding":  # the narrowed view: its columns, its districts, nothing else
        assert "published as version 1" in run.stdout and "Approved: grant" in run.stdout
        assert "Centre" in run.stdout and "Riverside" not in run.stdout and "camera_id" not in run.stdout
