"""Creates the platform admin in a deployed CityShare (the one write that cannot be a signed request,
since nobody can sign yet). Run with the platform team's AWS credentials:

    python -m infra.bootstrap --stage prod --jwk admin.jwk     (make bootstrap-admin STAGE=prod JWK=admin.jwk)

The stack is CityShare-<stage>, in the region of cdk.json (not boto3's default region).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import boto3

from functions.governance.directory import bootstrap_platform
from functions.identity.directory import DirectoryRepository
from infra.cloud.config import DeploymentConfig

CDK_JSON = Path(__file__).resolve().parents[1] / "cdk.json"


def directory_table(stack: str, session: boto3.session.Session) -> str:
    outputs = session.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]["Outputs"]
    return str(next(o["OutputValue"] for o in outputs if o["OutputKey"] == "DirectoryTable"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", default="dev", help="the stage of cdk.json that was deployed (stack CityShare-<stage>)")
    parser.add_argument("--stack", help="the deployed stack's name, if not CityShare-<stage>")
    parser.add_argument("--jwk", required=True, type=Path, help="the admin's public key (cityshare keys generate)")
    parser.add_argument("--principal", default="admin")
    arguments = parser.parse_args()
    config = DeploymentConfig.from_context(json.loads(CDK_JSON.read_text())["context"].get("cityshare"), arguments.stage)
    session = boto3.session.Session(region_name=config.region)
    table = directory_table(arguments.stack or f"CityShare-{config.stage}", session)
    key = bootstrap_platform(
        DirectoryRepository(table, session.client("dynamodb")), json.loads(arguments.jwk.read_text()), arguments.principal
    )
    print(f"platform/{arguments.principal} registered with key {key.kid} in {table}")


if __name__ == "__main__":
    main()
