"""The README runs as written. Every shell or Python block in it is either marked
`<!-- README test: name -->`, and then run here, in the README's order, from one folder laid out as
the clone, against an embedded stack of its own (a block may use what the ones before it made), or
marked `<!-- README not run: why -->` (starting a server that runs until Ctrl-C, deploying to AWS).
A JSON block marked `<!-- README file: path -->` must say what that file says."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT, RunningStack, running_stack

FENCED = re.compile(
    r"(?:<!-- README (?P<mark>test|not run|file): (?P<label>[^>]*?) -->\n)?```(?P<language>\w*)\n(?P<code>.*?)\n```", re.S
)
EXECUTABLE = {"bash", "sh", "shell", "console", "python", "py"}
# The official connector pins its own pyarrow, so `make test` gives it a virtualenv of its own, as
# the README tells its readers to.
DELTA_SHARING_PYTHON = ROOT / "build" / "delta-sharing" / "bin" / "python"


@dataclass(frozen=True)
class Block:
    mark: str | None
    label: str
    language: str
    code: str


def readme_blocks() -> list[Block]:
    text = (ROOT / "README.md").read_text()
    return [Block(m["mark"], (m["label"] or "").strip(), m["language"], m["code"]) for m in FENCED.finditer(text)]


def walk_through() -> list[Block]:
    return [block for block in readme_blocks() if block.mark == "test"]


def test_every_shell_and_python_block_is_run_or_says_why_not() -> None:
    unmarked = [block.code.splitlines()[0] for block in readme_blocks() if block.language in EXECUTABLE and block.mark is None]
    assert not unmarked, f"README blocks neither run by this test nor marked `README not run: why`: {unmarked}"
    assert all(block.label for block in readme_blocks() if block.mark == "not run"), "a block not run says why"
    names = [block.label for block in walk_through()]
    assert len(names) == len(set(names)) and "onboarding" in names and len(names) >= 8


@pytest.mark.parametrize("block", [b for b in readme_blocks() if b.mark == "file"], ids=lambda b: b.label)
def test_a_file_the_readme_shows_is_the_file(block: Block) -> None:
    assert json.loads(block.code) == json.loads((ROOT / block.label).read_text())


@pytest.fixture(scope="module")
def own_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    yield from running_stack(tmp_path_factory.mktemp("readme-stack"))


@pytest.fixture(scope="module")
def clone_folder(own_stack: RunningStack, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where a user following the README stands: in the clone, the stack's admin profile where
    `make local` writes it, `export CITYSHARE_PROFILE=.cityshare/local/profile.json` done."""
    folder = tmp_path_factory.mktemp("clone")
    (folder / "schemas").symlink_to(ROOT / "schemas")
    (folder / ".cityshare" / "local").mkdir(parents=True)
    (folder / ".cityshare" / "local" / "profile.json").write_text(own_stack.profile_path.read_text())
    return folder


def _interpreter(block: Block) -> list[str]:
    if block.language in {"python", "py"}:
        if "import delta_sharing" in block.code:
            if not DELTA_SHARING_PYTHON.exists():
                pytest.skip("the Delta Sharing connector's virtualenv is made by `make test` (build/delta-sharing)")
            return [str(DELTA_SHARING_PYTHON), "-c", block.code]
        return [sys.executable, "-c", block.code]
    return ["bash", "-euo", "pipefail", "-c", block.code]


@pytest.mark.parametrize("block", walk_through(), ids=lambda b: b.label)
def test_a_readme_block_runs_as_written(block: Block, clone_folder: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env |= {"CITYSHARE_PROFILE": ".cityshare/local/profile.json", "PATH": f"{Path(sys.executable).parent}:{env['PATH']}"}
    run = subprocess.run(_interpreter(block), cwd=clone_folder, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr}"
    output = run.stdout + run.stderr
    assert "Traceback" not in output
    assert EXPECTED[block.label](output), output


def _onboarding(output: str) -> bool:  # the narrowed view: its columns, its districts, nothing else
    return (
        "published as version 1" in output
        and "Approved: grant" in output
        and "Centre" in output
        and "Riverside" not in output
        and "camera_id" not in output
    )


def _people(output: str) -> bool:  # tokens for the owner, hourly groups for environment, no plate
    plates = re.compile(r"\b[A-Z]{2}[0-9]{3}[A-Z]{2}\b")  # as the generator writes them
    return "published as version 1" in output and "group_size" in output and "ε 1.00/5" in output and not plates.search(output)


EXPECTED = {
    "onboarding": _onboarding,
    "people": _people,
    "python-sdk": lambda output: "Centre" in output and "traffic-flow active" in output,
    "delta-sharing": lambda output: "environment" in output and "air team notebooks" in output,
    "delta-sharing-pandas": lambda output: "traffic-flow" in output and "Centre" in output,
    "analytics": lambda output: (
        "AQ-" in output
        and "Derived dataset congestion-air-by-district" in output
        and "congestion-air-by-district v1" in output  # built from its inputs, without a new version of either
        and "from: traffic-flow@1, air-quality@1" in output
    ),
    "city": lambda output: (
        "Air quality (PM2.5)" in output
        and "25 µg/m³" in output
        and "air-quality@" in output  # the version it was built from
        and "map: 8 districts from district-boundaries@1" in output
    ),
    "audit": lambda output: output.count("intact") == 2,
    "signing": lambda output: "200 Traffic flow (5-minute counts)" in output,
}
