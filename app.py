#!/usr/bin/env python3
"""CDK app: reads the `cityshare` context of cdk.json and builds the CityShare stack.

npx cdk synth -c stage=dev     # offline, no AWS credentials needed (make synth STAGE=dev)
npx cdk deploy -c stage=prod   # with credentials for the target account (make deploy STAGE=prod)
"""

from __future__ import annotations

import os
from pathlib import Path

from aws_cdk import App, Environment, Validations
from cdk_nag import AwsSolutionsChecks, HIPAASecurityChecks, NIST80053R5Checks, PCIDSS321Checks, ServerlessChecks

from infra.cloud.config import DeploymentConfig
from infra.cloud.functions import stage_function_code
from infra.cloud.stack import CityShareStack

ROOT = Path(__file__).resolve().parent
BUILD_DIR = ROOT / "build"
# Every finding of these fails the synth unless infra/cloud/suppressions.py acknowledges it.
NAG_PACKS = (AwsSolutionsChecks, NIST80053R5Checks, ServerlessChecks, HIPAASecurityChecks, PCIDSS321Checks)


def build_app(
    app: App,
    layer_dir: Path = BUILD_DIR / "layers",
    code_dir: Path = BUILD_DIR / "function-code",
    console_dir: Path = ROOT / "console" / "dist",
) -> CityShareStack:
    config = DeploymentConfig.from_context(app.node.try_get_context("cityshare"), app.node.try_get_context("stage"))
    missing = [name for name in ("core", "data") if not (layer_dir / name / "python").is_dir()]
    if missing:
        raise SystemExit(f"The Lambda layers {missing} are not built in {layer_dir}: run `make layer` (or `make synth`)")
    if not (console_dir / "index.html").is_file():
        raise SystemExit(f"The console is not built in {console_dir}: run `make console` (or `make synth`)")
    region = (
        config.region
        or os.environ.get("CDK_DEPLOY_REGION")
        or os.environ.get("AWS_REGION")
        or os.environ.get("CDK_DEFAULT_REGION")
    )
    account = config.account or os.environ.get("CDK_DEFAULT_ACCOUNT")
    stack = CityShareStack(
        app,
        f"CityShare-{config.stage}",
        config=config,
        layer_dir=layer_dir,
        code_dir=stage_function_code(code_dir, os.environ.get("LAMBDA_PYTHON")),
        console_dir=console_dir,
        env=Environment(account=account, region=region),
        description="CityShare: governed data sharing between a city's departments",
    )
    # cdk-nag's packs (NAG_PACKS): every finding fails the
    # synth unless infra/cloud/suppressions.py acknowledges it on its resource, with a reason.
    Validations.of(app).add_plugins(*(pack(app, write_suppressions_to_cloud_formation=True) for pack in NAG_PACKS))
    return stack


if __name__ == "__main__":
    cdk_app = App()
    build_app(cdk_app)
    cdk_app.synth()
