"""The embedded stack: moto on 127.0.0.1, the spec's resources, the gateway and the pump, in one
process, with the same handlers as in AWS. No AWS account, no Docker."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOCAL_AUDIENCE = "cityshare-local"
LOCAL_PREFIX = "cityshare-local"
LOCAL_REGION = "eu-west-1"


@dataclass(frozen=True)
class LocalEndpoints:
    api_url: str
    aws_endpoint: str
    profile_path: Path
    console_url: str | None = None  # when console/ is built (`make console`)


def _admin_key(keys_dir: Path) -> tuple[dict[str, Any], Path]:
    """The platform admin's key pair for this local stack (made once, kept in the state folder)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from jwt.algorithms import ECAlgorithm

    keys_dir.mkdir(parents=True, exist_ok=True)
    key_file = keys_dir / "platform-admin.pem"
    if key_file.exists():
        private_key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    else:
        private_key = ec.generate_private_key(ec.SECP256R1())
        pem = private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        key_file.touch(mode=0o600)
        key_file.write_bytes(pem)
    jwk = json.loads(ECAlgorithm.to_jwk(private_key.public_key()))  # type: ignore[arg-type]
    return jwk, key_file


class LocalStack:
    def __init__(self, state_dir: Path, port: int = 0, browser_origin: str | None = None) -> None:
        """`browser_origin`: serve the API to a console on another origin, as in AWS (CORS for it alone)."""
        self.state_dir = state_dir
        self.port = port
        self.browser_origin = browser_origin
        self._moto: Any = None
        self._gateway: Any = None
        self._pump: Any = None

    def start(self) -> LocalEndpoints:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        from moto.server import ThreadedMotoServer

        from infra.local.fidelity import make_conditional_writes_atomic

        make_conditional_writes_atomic()
        self._moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._moto.start()
        host, moto_port = self._moto.get_host_and_port()
        aws_endpoint = f"http://{host}:{moto_port}"

        from infra.local.provision import physical_names, provision
        from infra.spec import function_environment

        names = physical_names(LOCAL_PREFIX)
        # The handlers read their configuration from the environment, exactly as in Lambda.
        os.environ.update(
            AWS_ENDPOINT_URL=aws_endpoint,
            AWS_ACCESS_KEY_ID="local",
            AWS_SECRET_ACCESS_KEY="local",
            AWS_DEFAULT_REGION=LOCAL_REGION,
            AWS_REGION=LOCAL_REGION,
            POWERTOOLS_LOG_LEVEL=os.environ.get("POWERTOOLS_LOG_LEVEL", "WARNING"),
            POWERTOOLS_METRICS_DISABLED="true",  # no CloudWatch here: metrics would only clutter the output
        )
        os.environ.update(function_environment(names, stage="local", audience=LOCAL_AUDIENCE))
        os.environ["ALLOW_HTTP_WEBHOOKS"] = "true"  # local receivers listen on 127.0.0.1 without TLS
        if self.browser_origin:
            os.environ["CONSOLE_ORIGIN"] = self.browser_origin
        else:
            os.environ.pop("CONSOLE_ORIGIN", None)

        import boto3

        from functions.core import aws
        from functions.core.settings import get_settings
        from functions.governance.directory import bootstrap_platform
        from functions.identity.directory import DirectoryRepository
        from infra.local.gateway import Gateway
        from infra.local.lambdas import LocalLambdas
        from infra.local.pump import Pump

        aws.reset_clients()
        get_settings.cache_clear()
        session = boto3.session.Session()
        queue_urls = provision(session, names)
        admin_jwk, key_file = _admin_key(self.state_dir / "keys")
        admin_key = bootstrap_platform(DirectoryRepository(get_settings().directory_table, session.client("dynamodb")), admin_jwk)

        lambdas = LocalLambdas()
        lambdas.preload()
        from infra.local.console import ConsoleFiles

        console = ConsoleFiles(LOCAL_AUDIENCE)
        self._gateway = Gateway(
            lambdas, port=self.port, console=console if console.available else None, browser_origin=self.browser_origin
        )
        self._gateway.start()
        self._pump = Pump(session.client("sqs"), queue_urls, lambdas)
        self._pump.start()

        profile_path = self.state_dir / "profile.json"
        profile = {
            "endpoint": self._gateway.url,
            "audience": LOCAL_AUDIENCE,
            "department": "platform",
            "principal": "admin",
            "key_file": str(key_file.resolve()),
            "kid": admin_key.kid,
            "aws_endpoint": aws_endpoint,
        }
        profile_path.write_text(json.dumps(profile, indent=2))
        return LocalEndpoints(
            api_url=self._gateway.url,
            aws_endpoint=aws_endpoint,
            profile_path=profile_path,
            console_url=f"{self._gateway.url}/console/" if console.available else None,
        )

    def stop(self) -> None:
        if self._pump:
            self._pump.stop()
        if self._gateway:
            self._gateway.stop()
        if self._moto:
            self._moto.stop()


def serve_forever(state_dir: Path, port: int = 0, browser_origin: str | None = None) -> None:
    """Start the stack, print where it is, and stop cleanly on Ctrl-C or SIGTERM."""
    stack = LocalStack(state_dir, port, browser_origin)
    endpoints = stack.start()
    print(f"CityShare embedded stack listening on {endpoints.api_url}", flush=True)
    print(f"  moto (AWS APIs): {endpoints.aws_endpoint}", flush=True)
    print(f"  admin profile:   {endpoints.profile_path}", flush=True)
    print(f"  console:         {endpoints.console_url or 'not built (make console)'}", flush=True)
    if browser_origin:
        print(f"  CORS for:        {browser_origin}", flush=True)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    try:
        while not stopped.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        stack.stop()
        print("CityShare embedded stack stopped", flush=True)
