"""Before `make deploy` builds anything: credentials that AWS accepts, for the account and region the
stage names in cdk.json. A mistake is said in a sentence in seconds, not after a minute of building.

    python -m infra.preflight --stage dev
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from infra.cloud.config import DeploymentConfig

ROOT = Path(__file__).resolve().parents[1]


def problems(config: DeploymentConfig, sts: Any) -> list[str]:
    """What stops a deployment of `config` with these credentials (an empty list: nothing)."""
    import botocore.exceptions

    try:
        identity = sts.get_caller_identity()
    except botocore.exceptions.NoCredentialsError:
        return [
            "No AWS credentials: set AWS_PROFILE (after `aws sso login`) or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY "
            "for the city's account, then run `make deploy` again"
        ]
    except botocore.exceptions.NoRegionError:
        return ["No AWS region: set `region` in cdk.json's cityshare context, or AWS_REGION"]
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as error:
        return [f"AWS refused the credentials ({error}): renew them (`aws sso login`) and run `make deploy` again"]
    if config.account and identity["Account"] != config.account:
        return [
            f"These credentials are for account {identity['Account']}, but cdk.json deploys stage {config.stage} "
            f"to {config.account}: switch AWS_PROFILE, or correct cdk.json"
        ]
    return []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stage", default="dev")
    args = parser.parse_args(argv)
    import boto3

    context = json.loads((ROOT / "cdk.json").read_text())["context"].get("cityshare", {})
    config = DeploymentConfig.from_context(context, args.stage)
    sts = boto3.client("sts", region_name=config.region) if config.region else boto3.client("sts")
    found = problems(config, sts)
    for problem in found:
        print(f"CityShare cannot deploy {args.stage}: {problem}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
