"""Synthesises the CDK app once per test session (about 5 s), offline and without credentials."""

from __future__ import annotations

import os

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")  # before jsii starts node

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App
from aws_cdk.assertions import Template

from app import build_app
from infra.cloud.stack import CityShareStack
from infra.spec import SPEC

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Synthesised:
    app: App
    stack: CityShareStack
    template: Template
    context: dict[str, Any]
    outdir: Path


@pytest.fixture(scope="session")
def synthesised(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synthesised]:
    work = tmp_path_factory.mktemp("cdk")
    layer = work / "layers"
    for name in sorted({layer for function in SPEC.functions for layer in function.layers}):
        (layer / name / "python").mkdir(parents=True)
        (layer / name / "python" / "README").write_text(
            f"stand-in for the built {name} layer: the template does not depend on it"
        )
    context = json.loads((ROOT / "cdk.json").read_text())["context"]
    app = App(context=context, outdir=str(work / "cdk.out"))
    stack = build_app(app, layer_dir=layer, code_dir=work / "function-code")
    app.synth()  # raises ValidationFailed if cdk-nag finds anything not acknowledged
    yield Synthesised(app, stack, Template.from_stack(stack), context, work / "cdk.out")


@pytest.fixture(scope="session")
def template(synthesised: Synthesised) -> Template:
    return synthesised.template


@pytest.fixture(scope="session")
def resources(template: Template) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = template.to_json()["Resources"]
    return found


def of_type(resources: dict[str, dict[str, Any]], resource_type: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in resources.items() if r["Type"] == resource_type}
