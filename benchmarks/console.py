"""The console's figures (issue: Decision support), in headless Chromium against an embedded stack
run as `cityshare local up` runs it (its own process), this machine:

1. the city picture with the demo's data (the demo's scenario run first: six indicators over four
   departments' shares, the map, an alert rule): `GET /city` answered (median of 20), and a first load
   of the City page in a fresh browser profile: time from navigation to the page drawn, requests
   and bytes gzipped (median of 5; targets <= 1 s, <= 10 requests, <= 300 KB);
2. the inbox with 500 pending requests and the catalog with 1,000 datasets: the first page drawn
   (targets <= 1 s) and the requests it took.

"Drawn" is the console's own mark (`performance.mark("drawn #/...")` when a page is shown), read in
the page, so Playwright's polling is not counted.

    python -m benchmarks.console [--state-dir DIR]   # DIR kept: a second run reuses the demo's city
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cityshare.admin import enrol
from cityshare.client import CityShareClient
from cityshare.demo import run_scenario
from cityshare.profile import Profile

ROOT = Path(__file__).resolve().parents[1]
LOADS = 5
PENDING = 500
DATASETS = 1000


@contextmanager
def embedded_stack(state_dir: Path) -> Iterator[Path]:
    """`cityshare local up` in its own process; yields the admin profile's path."""
    state_dir.mkdir(parents=True, exist_ok=True)
    log = (state_dir / "bench-stack.log").open("wb")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    command = [sys.executable, "-m", "cityshare", "local", "up", "--state-dir", str(state_dir)]
    process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        profile = state_dir / "profile.json"
        admin_ready = False
        deadline = time.monotonic() + 90
        while not admin_ready:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((state_dir / "bench-stack.log").read_text())
            time.sleep(0.5)
            if profile.exists():
                try:
                    admin = CityShareClient.from_profile(Profile.load(profile))
                    admin_ready = bool(admin.describe_department("platform")["department"].get("data_key"))
                except Exception:  # still starting
                    admin_ready = False
        yield profile
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


def median_seconds(call: Any, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _collector(into: list[Any]) -> Callable[[Any], None]:
    def collect(response: Any) -> None:
        into.append(response)

    return collect


def browser_loads(admin: CityShareClient, console_url: str, department: str, principal: str, hash_route: str) -> dict[str, float]:
    """A fresh browser profile enrols a key for `principal`, then loads `hash_route` LOADS times with
    an empty cache: the median time to the page drawn, its requests and their bytes gzipped."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.goto(console_url)
        page.get_by_label("Department").fill(department)
        page.get_by_label("Principal").fill(principal)
        page.get_by_role("button", name="Make my key").click()
        admin.add_key(department, principal, json.loads(page.locator("#public-jwk").inner_text()))
        page.get_by_role("button", name="Continue").click()
        page.locator("main h1").first.wait_for()
        page.close()
        drawn, requests, sizes = [], [], []
        for _ in range(LOADS):
            page = context.new_page()
            page.route("**/*", lambda route: route.continue_(headers={**route.request.headers, "cache-control": "no-cache"}))
            answered: list[Any] = []
            page.on("response", _collector(answered))
            page.goto(console_url + hash_route)
            mark = f"drawn {hash_route}"
            page.wait_for_function(f"() => performance.getEntriesByName({json.dumps(mark)}).length > 0", timeout=30_000)
            drawn.append(page.evaluate(f"() => performance.getEntriesByName({json.dumps(mark)})[0].startTime") / 1000)
            page.wait_for_load_state("networkidle")
            requests.append(len(answered))
            sizes.append(sum(len(gzip.compress(response.body())) for response in answered if response.ok))
            page.close()
        browser.close()
    return {"drawn": statistics.median(drawn), "requests": statistics.median(requests), "bytes": statistics.median(sizes)}


def city_picture(state_dir: Path) -> None:
    from rich.console import Console

    city_ready = (state_dir / "profiles" / "city-management-system.json").exists()
    if not city_ready:
        from cityshare.local import start

        stack, profile_path, _ = start(state_dir)
        try:
            run_scenario(profile_path, Console(file=open(os.devnull, "w")))  # noqa: SIM115 (the demo's output is not the figure)
        finally:
            stack.stop()  # type: ignore[attr-defined]
    with embedded_stack(state_dir) as profile_path:
        admin = CityShareClient.from_profile(Profile.load(profile_path))
        city = CityShareClient.from_profile(Profile.load(state_dir / "profiles" / "city-management-system.json"))
        picture = city.city_picture()
        server = median_seconds(city.city_picture, 20)
        loaded = browser_loads(admin, admin.endpoint + "/console/", "city-management", "city-management-steward", "#/city")
    districts = len(picture["boundaries"]["districts"])
    print(f"The city picture, the demo's data ({len(picture['indicators'])} indicators, {districts} districts):")
    print(f"  GET /city answered: {server * 1000:.0f} ms (median of 20), {len(json.dumps(picture)) / 1024:.0f} KB of JSON")
    print(
        f"  first load, drawn: {loaded['drawn'] * 1000:.0f} ms (target <= 1000),"
        f" {loaded['requests']:.0f} requests (target <= 10), {loaded['bytes'] / 1024:.0f} KB gzipped (target <= 300)"
    )


def at_volume(state_dir: Path) -> None:
    with embedded_stack(state_dir) as profile_path:
        admin_profile = Profile.load(profile_path)
        admin = CityShareClient.from_profile(admin_profile)
        keys = state_dir / "keys"
        for department in ("owner", "asker"):
            if not any(d["department_id"] == department for d in admin.list_departments()):
                admin.register_department(department, department.title())
        owner = CityShareClient.from_profile(enrol(admin, admin_profile, "owner", "system", ["member"], keys / "owner.pem"))
        asker = CityShareClient.from_profile(enrol(admin, admin_profile, "asker", "system", ["member"], keys / "asker.pem"))
        owner_steward = CityShareClient.from_profile(
            enrol(admin, admin_profile, "owner", "steward", ["member", "steward"], keys / "owner-steward.pem")
        )
        schema = json.loads((ROOT / "schemas" / "datasets" / "traffic-flow.json").read_text())
        made = {d["dataset_id"] for d in owner.iter_datasets(owner="owner")}
        for n in range(DATASETS):
            if f"counts-{n:04d}" not in made:
                owner.create_dataset(f"counts-{n:04d}", f"Traffic counts of corridor {n}", "internal", schema, tags=["traffic"])
        waiting = len(owner_steward.pending_requests())
        for n in range(waiting, PENDING):
            asker.request_access(
                f"counts-{n % DATASETS:04d}",
                f"Corridor study number {n} for the mobility plan",
                "planning",
                "public-task",
                "2027-06-30",
            )
        inbox = browser_loads(admin, admin.endpoint + "/console/", "owner", "steward", "#/inbox")
        catalog = browser_loads(admin, admin.endpoint + "/console/", "asker", "system", "#/datasets")
    print(f"At volume: {PENDING} pending requests, {DATASETS} datasets")
    print(f"  inbox, first page of 20 drawn: {inbox['drawn'] * 1000:.0f} ms (target <= 1000), {inbox['requests']:.0f} requests")
    print(
        f"  catalog, first page of 50 drawn: {catalog['drawn'] * 1000:.0f} ms (target <= 1000),"
        f" {catalog['requests']:.0f} requests"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--state-dir", type=Path, default=None)
    folder = parser.parse_args().state_dir or Path(tempfile.mkdtemp(prefix="cityshare-console-"))
    city_picture(folder / "city")
    at_volume(folder / "volume")


if __name__ == "__main__":
    main()
