"""The fault suites run against a moto server on 127.0.0.1, one per module (a call costs a few
milliseconds there, against tens in-process), each test with resources of its own (moto's queries
read whole tables: what earlier tests wrote would slow every later call)."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import pytest

from functions.core.settings import Settings, get_settings
from infra.local.fidelity import make_conditional_writes_atomic
from infra.local.provision import create_table, physical_names, provision
from infra.spec import RESOURCE_ENVIRONMENT, SPEC, function_environment
from tests.aws_rules import AwsRules, role_in
from tests.faults.harness import FaultInjector
from tests.integration.conftest import CITY, Aws, forget_built_services, provision_departments

_PREFIXES = itertools.count(1)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """A moto server in a process of its own, so that its work runs on the other core."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.faults.moto_process"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT, text=True
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        yield f"http://127.0.0.1:{port}"
    finally:
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(timeout=10)
        finally:
            if process.poll() is None:
                process.kill()


@pytest.fixture
def moto_server(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Aws, Settings]]:
    for variable in [v for v in os.environ if v.startswith("AWS_")]:
        monkeypatch.delenv(variable)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    forget_built_services()
    session = boto3.session.Session()
    with AwsRules(role_exists=role_in(session.client("iam"))).active():
        names = physical_names(f"faults{next(_PREFIXES)}")
        queue_urls = provision(session, names)
        for name, value in function_environment(names, stage="faults", audience="faults").items():
            monkeypatch.setenv(name, value)
        forget_built_services()
        provision_departments(*CITY)
        yield Aws(session, names, queue_urls), get_settings()
    forget_built_services()


RENEW_EVERY = 5  # runs on one set of tables (moto's queries read whole tables: they slow as tables grow)


@pytest.fixture
def renew_tables(moto_server: tuple[Aws, Settings], monkeypatch: pytest.MonkeyPatch) -> Callable[[], Settings]:
    """Point the functions at new, empty tables (the bucket, queues, bus and keys stay)."""

    def renew() -> Settings:
        session, prefix = moto_server[0].session, f"tables{next(_PREFIXES)}"
        dynamodb = session.client("dynamodb")
        for variable, (kind, name) in RESOURCE_ENVIRONMENT.items():
            if kind == "table":
                create_table(dynamodb, SPEC.table(name), f"{prefix}-{name}")
                monkeypatch.setenv(variable, f"{prefix}-{name}")
        forget_built_services()
        provision_departments(*CITY)  # their keys exist: found again by alias
        return get_settings()

    return renew


@pytest.fixture
def moto_aws(moto_server: tuple[Aws, Settings]) -> Aws:
    return moto_server[0]


@pytest.fixture
def settings(moto_server: tuple[Aws, Settings]) -> Settings:
    return moto_server[1]


@pytest.fixture
def atomic_conditional_writes() -> None:
    make_conditional_writes_atomic()


@pytest.fixture
def injector() -> Iterator[FaultInjector]:
    found = FaultInjector()
    with found.active():
        yield found
