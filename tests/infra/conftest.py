"""Synthesises the CDK app once per test session (its prod stage, as `make deploy STAGE=prod` would;
about 8 s), offline and without credentials."""

from __future__ import annotations

import os

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")  # before jsii starts node

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, CfnElement, Environment, Validations
from aws_cdk.assertions import Template
from constructs import IConstruct

from app import NAG_PACKS, build_app
from infra.cloud.stack import CityShareStack
from infra.spec import SPEC

ROOT = Path(__file__).resolve().parents[2]
STAGE = "prod"


@dataclass
class Synthesised:
    app: App
    stack: CityShareStack
    template: Template
    context: dict[str, Any]
    outdir: Path
    layer_dir: Path
    console_dir: Path


@pytest.fixture(scope="session")
def synthesised(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synthesised]:
    work = tmp_path_factory.mktemp("cdk")
    layer = work / "layers"
    for name in sorted({layer for function in SPEC.functions for layer in function.layers}):
        (layer / name / "python").mkdir(parents=True)
        (layer / name / "python" / "README").write_text(
            f"stand-in for the built {name} layer: the template does not depend on it"
        )
    console = work / "console"
    console.mkdir()
    (console / "index.html").write_text("stand-in for the built console: the template does not depend on it")
    context = {**json.loads((ROOT / "cdk.json").read_text())["context"], "stage": STAGE}
    app = App(context=context, outdir=str(work / "cdk.out"))
    stack = build_app(app, layer_dir=layer, code_dir=work / "function-code", console_dir=console)
    app.synth()  # raises ValidationFailed if cdk-nag finds anything not acknowledged
    yield Synthesised(app, stack, Template.from_stack(stack), context, work / "cdk.out", layer, console)


@pytest.fixture(scope="session")
def unacknowledged_findings(synthesised: Synthesised, tmp_path_factory: pytest.TempPathFactory) -> set[tuple[str, str]]:
    """(logical id, rule) of every finding of the three cdk-nag packs in the same stack built
    without its acknowledgements, from the validation report of its synth (about 7 s)."""
    outdir = tmp_path_factory.mktemp("unacknowledged")
    app = App(context=synthesised.context, outdir=str(outdir))
    stack = CityShareStack(
        app,
        synthesised.stack.stack_name,
        config=synthesised.stack.config,
        layer_dir=synthesised.layer_dir,
        code_dir=synthesised.outdir.parent / "function-code",
        console_dir=synthesised.console_dir,
        acknowledge=False,
        env=Environment(region=synthesised.stack.region),
    )
    Validations.of(app).add_plugins(*(pack() for pack in NAG_PACKS))
    with pytest.raises(Exception, match="ValidationFailed"):
        app.synth()
    report = json.loads((outdir / "validation-report.json").read_text())
    findings = set()
    for plugin in report["pluginReports"]:
        for violation in plugin["violations"]:
            for construct in violation["violatingConstructs"]:
                resource: IConstruct = stack
                for part in construct["constructPath"].split("/")[1:]:
                    resource = resource.node.find_child(part)
                assert isinstance(resource, CfnElement)
                findings.add((stack.get_logical_id(resource), violation["ruleName"]))
    return findings


@pytest.fixture(scope="session")
def template(synthesised: Synthesised) -> Template:
    return synthesised.template


@pytest.fixture(scope="session")
def resources(template: Template) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = template.to_json()["Resources"]
    return found


def of_type(resources: dict[str, dict[str, Any]], resource_type: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in resources.items() if r["Type"] == resource_type}
