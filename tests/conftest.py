"""Fixtures shared by the suites: the embedded stack (started once, in its own process) and
helpers to onboard departments through the real SDK."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cityshare import CityShareClient, Profile
from cityshare.admin import enrol

ROOT = Path(__file__).resolve().parents[1]
# `make e2e STAGE=dev`: the e2e and security suites run against a deployed stack, as its platform
# admin (this profile, for the stack's API URL and audience); tests that need the embedded stack's
# insides (its moto, its process, a stack of their own) are skipped.
DEPLOYED_PROFILE = os.environ.get("CITYSHARE_E2E_PROFILE", "")
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")  # handlers called in-process write no EMF lines


@dataclass
class RunningStack:
    profile_path: Path
    state_dir: Path
    process: subprocess.Popen[bytes] | None  # None: a deployed stack (`make e2e`)

    @property
    def admin_profile(self) -> Profile:
        return Profile.load(self.profile_path)

    def admin(self) -> CityShareClient:
        return CityShareClient.from_profile(self.admin_profile)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """`cityshare local up` in a subprocess, as a platform engineer would run it. In memory: what the
    suites check is the platform; keeping state is checked by test_local_persistence, the README's
    walk-through and the demo, which run with it."""
    if DEPLOYED_PROFILE:
        yield RunningStack(Path(DEPLOYED_PROFILE).resolve(), tmp_path_factory.mktemp("deployed"), None)
        return
    yield from running_stack(tmp_path_factory.mktemp("stack"), "--in-memory")


def running_stack(state_dir: Path, *options: str, port: str | None = "0") -> Generator[RunningStack]:
    """An embedded stack of its own in `state_dir` (`options` for `cityshare local up`), until the
    generator is closed; on any free port unless `port` says which (None: the one the folder used)."""
    if DEPLOYED_PROFILE:
        pytest.skip("starts an embedded stack of its own: not run against a deployed stack")
    log = (state_dir / "stack.log").open("wb")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cityshare",
            "local",
            "up",
            "--state-dir",
            str(state_dir),
            *(["--port", port] if port else []),
            *options,
        ],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    # Stopped whatever happens: a failure, or the generator closed at its yield (GeneratorExit).
    try:
        profile_path = state_dir / "profile.json"
        deadline = time.monotonic() + 60
        while not profile_path.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the embedded stack did not start:\n{(state_dir / 'stack.log').read_text()}")
            time.sleep(0.1)
        time.sleep(0.1)  # the profile is written last, once the gateway listens
        running = RunningStack(profile_path, state_dir, process)
        while not running.admin().describe_department("platform")["department"].get("data_key"):
            if time.monotonic() > deadline + 30:
                raise RuntimeError("the provisioner did not make the platform department's key")
            time.sleep(0.1)  # the provisioner's sweep makes it within seconds
        yield running
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        log.close()


def _stacks_left_under(folder: Path) -> list[int]:
    """Embedded stacks (`cityshare local up`) still running with their state under `folder`."""
    left = []
    for entry in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            arguments = entry.read_bytes().split(b"\0")
        except OSError:
            continue
        if b"up" in arguments and any(a.startswith(str(folder).encode()) for a in arguments):
            left.append(int(entry.parent.name))
    return left


# The suites in the order their files usually take longest. `make test` gives each file whole to one
# of two workers, in this order (--no-loadscope-reorder): a long file handed out last would run alone
# at the end (the fuzzing file, 260 s, did when xdist ordered files by their number of tests).
RUN_ORDER = ("security", "e2e", "faults", "integration", "infra", "unit")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    def suite(item: pytest.Item) -> int:
        parts = Path(str(item.path)).resolve().relative_to(ROOT / "tests").parts
        return RUN_ORDER.index(parts[0]) if parts[0] in RUN_ORDER else len(RUN_ORDER)

    items.sort(key=suite)  # stable: each file's tests stay together, in their order


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Tests leave nothing running: a stack still up at the end fails the run (and is stopped). A
    worker hands the fault suites' figure to the controller, which prints it."""
    _hand_over_exercised(session.config)
    factory = getattr(session.config, "_tmp_path_factory", None)
    if factory is None or not Path("/proc").is_dir():
        return
    left = _stacks_left_under(factory.getbasetemp())
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    if left:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        print(f"\nFAILED: {len(left)} embedded stack(s) left running by the tests (pids {left}); stopped now")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@dataclass
class Member:
    client: CityShareClient
    profile: Profile
    key_file: Path


def onboard(stack: RunningStack, department: str, principal: str, roles: list[str], register: bool = True) -> Member:
    """Register (optionally) a department and a principal with a fresh key, through the admin API."""
    admin = stack.admin()
    if register:
        admin.register_department(department, department.title())
    key_file = stack.state_dir / "keys" / f"{department}-{principal}.pem"
    profile = enrol(admin, stack.admin_profile, department, principal, roles, key_file)
    return Member(CityShareClient.from_profile(profile), profile, key_file)


# `make test` runs on two workers (pytest-xdist, `--dist loadfile`): each test file stays whole on one
# worker, in its order (its module fixtures built once). `loadgroup` would keep whole folders
# together, but its worker-side marking has no effect under pytest 9 (test ids are no longer the
# attribute xdist rewrites), so it spread them like `load`.


def _exercised_files(config: pytest.Config) -> list[Path]:
    factory = getattr(config, "_tmp_path_factory", None)
    if factory is None:
        return []
    root = factory.getbasetemp()
    root = root.parent if hasattr(config, "workerinput") else root
    return sorted(root.glob("fault-injection-*.json"))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """The figure issue 25 asks for: AWS call sites x fault kinds exercised, per path (from this
    process, or from the worker that ran the fault suites)."""
    import json

    from tests.faults.scenario import EXERCISED

    exercised = {path: {tuple(run) for run in runs} for path, runs in EXERCISED.items()}
    for found in _exercised_files(config):
        for path, runs in json.loads(found.read_text()).items():
            exercised.setdefault(path, set()).update(tuple(run) for run in runs)
    if not exercised:
        return
    terminalreporter.section("fault injection")
    for path, runs in sorted(exercised.items()):
        sites = {(service, operation, site) for service, operation, site, _ in runs}
        terminalreporter.write_line(f"{path}: {len(sites)} call sites, {len(runs)} (call site x fault kind) pairs exercised")
    total = sum(len(runs) for runs in exercised.values())
    terminalreporter.write_line(f"in all: {total} (call site x fault kind) pairs, each converged after redelivery")


def _hand_over_exercised(config: pytest.Config) -> None:
    import json

    from tests.faults.scenario import EXERCISED

    worker = getattr(config, "workerinput", {}).get("workerid")
    factory = getattr(config, "_tmp_path_factory", None)
    if worker and EXERCISED and factory is not None:
        target = factory.getbasetemp().parent / f"fault-injection-{worker}.json"
        target.write_text(json.dumps({path: sorted(runs) for path, runs in EXERCISED.items()}))


def local_only(reason: str) -> pytest.MarkDecorator:
    """A test that reaches into the embedded stack (its moto server, its process): skipped against a deployed stack."""
    return pytest.mark.skipif(bool(DEPLOYED_PROFILE), reason=f"needs the embedded stack: {reason}")
