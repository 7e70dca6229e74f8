"""Tools the tests drive that pin libraries below CityShare's (pycanon, the Delta Sharing connector):
each in a virtualenv of its own under build/, made from tests/requirements-<name>.txt when missing
(`make test` makes them first)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def tool_python(name: str) -> Path:
    python = ROOT / "build" / name / "bin" / "python"
    if not (python.parents[1] / ".installed").exists():
        subprocess.run([sys.executable, "-m", "venv", str(python.parents[1])], check=True)
        requirements = ROOT / "tests" / f"requirements-{name}.txt"
        subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", str(requirements)], check=True)
        (python.parents[1] / ".installed").touch()
    return python
