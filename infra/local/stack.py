"""The embedded stack: moto on 127.0.0.1, the spec's resources, the gateway and the pump, in one
process, with the same handlers as in AWS. No AWS account, no Docker."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
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


DEFAULT_PORT = 8787  # the same every time, so profiles and .share files keep working across restarts
AWS_STATE = "aws"
TTL_SWEEP_SECONDS = 60.0


class StackAlreadyRunning(RuntimeError):
    pass


class PortTaken(RuntimeError):
    pass


class LocalStack:
    def __init__(self, state_dir: Path, port: int | None = 0, browser_origin: str | None = None, persistent: bool = True) -> None:
        """`port`: None for the port this state folder used last (DEFAULT_PORT at first), 0 for any
        free port. `persistent`: keep the AWS state under `state_dir` (else in memory only).
        `browser_origin`: serve the API to a console on another origin, as in AWS (CORS for it alone)."""
        self.state_dir = state_dir
        self.port = port
        self.browser_origin = browser_origin
        self.persistent = persistent
        self.restored = False
        self.restore_seconds = 0.0
        self.state: Any = None
        self._moto: Any = None
        self._gateway: Any = None
        self._pump: Any = None
        self._lock_file: Any = None
        self._stopped = threading.Event()

    def start(self) -> LocalEndpoints:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        from infra.local.fidelity import make_conditional_writes_atomic
        from infra.local.persistence import PersistentState
        from infra.local.pump import Doorbell

        # The state holds every department's keys and data: its owner's alone.
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.state_dir.chmod(0o700)
        self._hold_state_dir()
        port = self._chosen_port()
        bell = Doorbell()
        self.state = PersistentState(self.state_dir / AWS_STATE if self.persistent else None, on_change=bell.ring)
        started = time.perf_counter()
        self.restored = self.state.restore()
        self.restore_seconds = time.perf_counter() - started
        make_conditional_writes_atomic()
        self._moto = _MotoServer(self.state.wrap)
        aws_endpoint = self._moto.start()

        from infra.local.provision import physical_names, provision, queue_urls
        from infra.spec import SPEC, function_environment

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
        urls = queue_urls(session, names) if self.restored else provision(session, names)
        admin_jwk, key_file = _admin_key(self.state_dir / "keys")
        admin_key = bootstrap_platform(DirectoryRepository(get_settings().directory_table, session.client("dynamodb")), admin_jwk)
        self.state.save_if_changed()

        lambdas = LocalLambdas()
        lambdas.preload()
        from infra.local.console import ConsoleFiles

        console = ConsoleFiles(LOCAL_AUDIENCE)
        try:
            self._gateway = Gateway(
                lambdas,
                port=port,
                console=console if console.available else None,
                browser_origin=self.browser_origin,
                before_answer=self.state.save_if_changed,
            )
        except OSError as error:
            raise PortTaken(
                f"Port {port} is taken (another stack, or another program): `cityshare local up --port N` for another, "
                "`--port 0` for any free one"
            ) from error
        self._gateway.start()
        self._remember_port()
        self._pump = Pump(session.client("sqs"), urls, lambdas, after_work=self.state.save_if_changed, work_arrived=bell)
        self._pump.start()
        self.state.run_saver(self._stopped)
        ttl_tables = {names[("table", t.name)]: t.ttl_attribute for t in SPEC.tables if t.ttl_attribute}
        threading.Thread(
            target=self._expire, args=(session.client("dynamodb"), ttl_tables), name="cityshare-ttl", daemon=True
        ).start()

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

    def _expire(self, dynamodb: Any, tables: dict[str, str]) -> None:
        from infra.local.fidelity import expire_items

        while not self._stopped.wait(TTL_SWEEP_SECONDS):
            try:
                expire_items(dynamodb, tables, time.time())
            except Exception:  # the next sweep tries again
                logging.getLogger("cityshare.local").exception("expiring items failed")

    def stop(self) -> None:
        self._stopped.set()
        if self._gateway:
            self._gateway.stop()
        if self._pump:
            self._pump.stop()
        if self.state:
            self.state.save_if_changed()  # what the last deliveries did
        if self._moto:
            self._moto.stop()
        if self._lock_file:
            self._lock_file.close()

    def _hold_state_dir(self) -> None:
        """One stack per state folder: two would overwrite each other's state."""
        import fcntl

        lock_file = (self.state_dir / "stack.lock").open("a+")
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock_file.seek(0)
            holder = lock_file.read().strip() or "another process"
            lock_file.close()
            raise StackAlreadyRunning(
                f"An embedded stack already runs on {self.state_dir} (pid {holder}): stop it first, or use another --state-dir"
            ) from None
        lock_file.truncate(0)
        lock_file.write(str(os.getpid()))
        lock_file.flush()
        self._lock_file = lock_file

    def _chosen_port(self) -> int:
        if self.port is not None:
            return self.port
        remembered = self.state_dir / "stack.json"
        if remembered.exists():
            return int(json.loads(remembered.read_text()).get("port", DEFAULT_PORT))
        return DEFAULT_PORT

    def _remember_port(self, always: bool = False) -> None:
        if self.port != 0 or always:  # "any free port" is not a port to come back to, unless asked
            port = int(self._gateway.server.server_address[1])
            (self.state_dir / "stack.json").write_text(json.dumps({"port": port}))

    def remember_port(self) -> None:
        """Come back on this port next time (`cityshare local up --state-dir`): the profiles written
        for this stack name it."""
        self._remember_port(always=True)


class _MotoServer:
    """moto's server on 127.0.0.1, with every AWS call through `wrap`'s middleware."""

    def __init__(self, wrap: Any) -> None:
        self._wrap = wrap
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> str:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
        from werkzeug.serving import make_server

        app = self._wrap(DomainDispatcherApplication(create_backend_app))
        self._server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="moto", daemon=True)
        self._thread.start()
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
        if self._thread:
            self._thread.join()


def reset(state_dir: Path, confirm: Callable[[], bool] = lambda: True) -> bool:
    """Forget everything the stack kept in `state_dir` (refused while a stack runs on it, before
    `confirm` is asked); False when `confirm` said no."""
    import fcntl
    import shutil

    if not state_dir.exists():
        return True
    with (state_dir / "stack.lock").open("a+") as lock_file:
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StackAlreadyRunning(f"An embedded stack runs on {state_dir}: stop it (Ctrl-C) before resetting") from None
        if not confirm():
            return False
        shutil.rmtree(state_dir)
    return True


def serve_forever(state_dir: Path, port: int | None = None, browser_origin: str | None = None, persistent: bool = True) -> None:
    """Start the stack, print where it is and what it kept, and stop cleanly on Ctrl-C or SIGTERM."""
    stack = LocalStack(state_dir, port, browser_origin, persistent)
    endpoints = stack.start()
    print(f"CityShare embedded stack listening on {endpoints.api_url}", flush=True)
    if not persistent:
        print("  state:           in memory only: forgotten when it stops", flush=True)
    elif stack.restored:
        print(f"  state:           {state_dir} (restored in {stack.restore_seconds:.1f} s; kept when it stops)", flush=True)
    else:
        print(f"  state:           {state_dir} (new; kept when it stops, `cityshare local reset` forgets it)", flush=True)
    print(f"  admin profile:   {endpoints.profile_path}", flush=True)
    print(f"  console:         {endpoints.console_url or 'not built (make console)'}", flush=True)
    print(f"  moto (AWS APIs): {endpoints.aws_endpoint}", flush=True)
    if browser_origin:
        print(f"  CORS for:        {browser_origin}", flush=True)
    print("  Ctrl-C stops it.", flush=True)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    # Ctrl-C (SIGINT) stops it even when it was started in the background by a shell that ignores
    # SIGINT for its children (`nohup ... &`), which would leave only SIGTERM.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        while not stopped.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        stack.stop()
        print("CityShare embedded stack stopped" + (f"; its state is kept in {state_dir}" if persistent else ""), flush=True)
