"""The `cityshare` CLI and `make demo`'s scenario, run as a user runs them."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from cityshare.examples import PM25_HOURLY_RULE
from tests.conftest import ROOT, RunningStack, onboard, unique


def cityshare(
    *args: str, profile: Path | None = None, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, COLUMNS="200")
    if profile:
        env["CITYSHARE_PROFILE"] = str(profile)
    done = subprocess.run(
        [sys.executable, "-m", "cityshare", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    # What the CLI said goes with a failure: an exit code alone (a signal, once) tells nothing.
    assert not check or done.returncode == 0, f"cityshare {' '.join(args)}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


def test_cli_publishes_lists_and_verifies(stack: RunningStack, tmp_path: Path) -> None:
    member = onboard(stack, unique("mobility"), "planner", ["member", "steward"])
    profile = tmp_path / "planner.json"
    member.profile.save(profile)
    dataset_id = unique("bike-counts")
    schema = ROOT / "schemas" / "datasets" / "traffic-flow.json"
    created = cityshare(
        "--json",
        "datasets",
        "create",
        dataset_id,
        "--title",
        "Bike counts",
        "--classification",
        "public",
        "--schema",
        str(schema),
        "--tag",
        "mobility",
        profile=profile,
    )
    assert json.loads(created.stdout)["owner"] == member.profile.department
    listed = cityshare("datasets", "list", "--owner", member.profile.department, profile=profile)
    assert dataset_id in listed.stdout
    assert "intact" in cityshare("audit", "verify", profile=profile).stdout
    refused = cityshare("admin", "departments", profile=profile, check=False)
    assert refused.returncode == 1
    assert "403 forbidden" in refused.stdout


def test_cli_generates_keys_that_the_admin_registers(stack: RunningStack, tmp_path: Path) -> None:
    admin_profile = stack.profile_path
    department = unique("libraries")
    registered = cityshare("admin", "register", department, "--name", "Libraries", profile=admin_profile)
    assert registered.stdout.startswith(f"Department {department} registered")  # a line, not the JSON answer
    cityshare("admin", "principal", department, "loans", "--role", "member", profile=admin_profile)
    jwk = cityshare("keys", "generate", "--out", str(tmp_path / "loans.pem")).stdout
    (tmp_path / "loans.jwk").write_text(jwk)
    kid = cityshare("admin", "add-key", department, "loans", str(tmp_path / "loans.jwk"), profile=admin_profile).stdout.strip()
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", kid)  # the key id alone, to paste or pipe
    # The endpoint, the audience and the key id come from the admin's profile and from the key itself.
    written = cityshare(
        "keys", "profile", "--out", str(tmp_path / "loans.json"), "--department", department, "--principal", "loans",
        "--key-file", str(tmp_path / "loans.pem"), profile=admin_profile,
    )  # fmt: skip
    assert kid in written.stdout
    assert json.loads(cityshare("--json", "whoami", profile=tmp_path / "loans.json").stdout)["roles"] == ["member"]
    readable = cityshare("whoami", profile=tmp_path / "loans.json").stdout  # without --json: a field a line
    assert re.search(r"^\s*roles\s+member\s*$", readable, re.M) and "{" not in readable
    placeholder = cityshare(
        "keys", "profile", "--out", str(tmp_path / "bad.json"), "--endpoint", "http://127.0.0.1:PORT", "--department",
        department, "--principal", "loans", "--key-file", str(tmp_path / "loans.pem"), profile=admin_profile, check=False,
    )  # fmt: skip
    assert placeholder.returncode == 2 and "not a URL" in placeholder.stdout and not (tmp_path / "bad.json").exists()


def test_one_command_onboards_a_department_ready_to_work(stack: RunningStack, tmp_path: Path) -> None:
    """`admin onboard`: the department, a steward and a member, their keys and ready profiles; the
    steward can share at once; files are its owner's alone; running it again changes nothing."""
    department = unique("transport")
    out_dir = tmp_path / "transport"
    onboarded = cityshare(
        "admin", "onboard", department, "--name", "Transport", "--steward", "alice", "--member", "traffic-control",
        "--out-dir", str(out_dir), profile=stack.profile_path,
    )  # fmt: skip
    assert "alice" in onboarded.stdout and "traffic-control" in onboarded.stdout
    for name in ("alice.json", "alice.pem", "traffic-control.json", "traffic-control.pem"):
        assert (out_dir / name).stat().st_mode & 0o077 == 0, name
    roles = json.loads(cityshare("--json", "whoami", profile=out_dir / "alice.json").stdout)["roles"]
    assert sorted(roles) == ["member", "steward"]
    assert json.loads(cityshare("--json", "whoami", profile=out_dir / "traffic-control.json").stdout)["roles"] == ["member"]
    # An existing department is kept; its principal gets one more key, nothing else changes.
    again = cityshare(
        "admin", "onboard", department, "--name", "Transport", "--member", "planner", "--out-dir", str(out_dir),
        profile=stack.profile_path,
    )  # fmt: skip
    assert "planner" in again.stdout
    assert json.loads(cityshare("--json", "whoami", profile=out_dir / "alice.json").stdout)["department_id"] == department


def test_the_cli_names_whose_profile_it_falls_back_to(stack: RunningStack, tmp_path: Path) -> None:
    default = tmp_path / ".cityshare" / "local" / "profile.json"
    default.parent.mkdir(parents=True)
    default.write_text(stack.profile_path.read_text())
    env = {k: v for k, v in os.environ.items() if k != "CITYSHARE_PROFILE"}
    result = subprocess.run(
        [sys.executable, "-m", "cityshare", "--json", "whoami"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and "as platform/admin" in result.stderr and "CITYSHARE_PROFILE" in result.stderr
    assert json.loads(result.stdout)["department_id"] == "platform"  # the answer itself stays clean


def test_demo_tells_the_story(tmp_path: Path) -> None:
    result = cityshare("demo", "--state-dir", str(tmp_path / "demo"), timeout=400)
    out = result.stdout
    assert "transport published traffic-flow" in out
    assert "environment edits transport's traffic-flow -> 403 forbidden" in out
    assert "wrong key -> 401 unauthenticated" in out
    assert "first 200, then 401" in out
    assert "invalid_signature" in out and "replayed_token" in out
    assert "BROKEN" not in out and out.count("intact") == 2
    assert "transport's steward approves it narrowed" in out and "camera ids never left transport" in out
    assert "without a legal basis -> denied" in out and "next read -> 403 grant_revoked" in out
    assert "transport inbox access-request.filed" in out and "public-safety inbox access-request.denied" in out
    assert "environment inbox grant.revoked" in out
    assert "it sees ['transport.mobility.traffic-flow']" in out and "the share now lists []" in out
    assert "harvests GET /catalog/dcat (DCAT-AP, unsigned): ['air-quality']" in out
    assert "alert AQ-004" in out and "health inbox alert.raised" in out
    assert "congestion-air-by-district rebuilt as version 2, from traffic-flow@2, air-quality@3" in out
    assert "0 recovered: each department's tokens are its own" in out
    assert "the same join through the plain grant -> 0 matches" in out
    matched = re.search(r"-> (\d+) fines matched to (\d+) camera reads", out)
    assert matched and int(matched.group(1)) > 0
    pattern = r"(\d+) groups released \(each of at least 5 people.*spent epsilon (\S+) of transport's budget 3"
    released = re.search(pattern, out, re.S)
    assert released and int(released.group(1)) > 0 and float(released.group(2)) == 1.0
    # The city picture: six indicators over four departments' shares, the map, the rule's alert.
    for tile in ("Air quality (PM2.5)", "Bed occupancy", "Public buildings' energy", "Service requests", "Traffic speed"):
        assert tile in out
    assert "map: 8 districts from district-boundaries@1" in out
    opened = re.search(r"alerts of 'PM2.5 above 50 at a station of a district in an hour' on air-quality: (\d+) open", out)
    assert opened and int(opened.group(1)) >= 1 and "(North Park" in out
    # Looking ahead: the forecast rule's backtest, the warning hours before the crossing, the morning.
    backtest = re.search(r"backtest on v1: (\d+) crossings, (\d+) forecast ahead .*?MASE\s+(\S+)", out, re.S)
    assert backtest and int(backtest.group(2)) >= int(backtest.group(1)) * 0.8 and float(backtest.group(3)) < 1
    warned = re.search(r"warning to health after the night's readings \(v2\): AQ-001 PM2.5 forecast (\d+\.\d) > 75 at (\S+)", out)
    assert warned and float(warned.group(1)) > 75 and warned.group(2).endswith("T07:00:00Z") and "4 h ahead of 03:00" in out
    assert "health inbox alert.raised: PM2.5 forecast above 75 within 6 hours: forecast" in out
    measured = re.search(r"AQ-001 measured (\d+) at (\S+), 4 hours after the warning", out)
    assert measured and int(measured.group(1)) > 75 and measured.group(2) == warned.group(2)
    # In space: every district holds vans; the centre's traffic is the slowest.
    speeds = re.findall(
        r"│ (Centre|Harbour|Old Town|North Park|Riverside|University|Airport|Eastgate) +│ (\d+) +│ (\d+) +│ ([\d.]+) +│", out
    )
    assert len(speeds) == 8 and speeds[0][0] == "Centre"
    walk_the_demo_city(tmp_path / "demo")


def walk_the_demo_city(state_dir: Path) -> None:
    """The demo's city brought back (`cityshare local up --state-dir`, on the port its profiles name)
    and walked in Chromium as city management's steward: the picture with the demo's data, then the
    steward's pages, each without a serious or critical axe-core finding."""
    from playwright.sync_api import sync_playwright

    from tests.conftest import running_stack
    from tests.e2e.test_console import AUDIT, CHROMIUM, axe_findings, console_url, sign_in

    if CHROMIUM is None:
        return  # said by the console's own tests
    profile = json.loads((state_dir / "profiles" / "city-management-steward.json").read_text())
    stack_run = running_stack(state_dir, port=None)
    stack = next(stack_run)
    try:
        assert stack.admin().endpoint == profile["endpoint"]  # the demo's profiles work after a restart
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = sign_in(browser, stack, "city-management", "city-management-steward", axe=True)
            page.goto(console_url(stack) + "#/city")
            page.locator(".city-map path").first.wait_for()
            assert page.get_by_role("article").count() == 6 and page.locator(".city-map path").count() == 8
            assert "North Park" in page.get_by_role("table").filter(has_text="open by district").inner_text()
            for hash_route in ("#/city", "#/inbox", "#/grants", "#/datasets", "#/datasets/city-air-quality", "#/audit"):
                page.goto(console_url(stack) + hash_route)
                page.reload()
                page.locator("main h1").first.wait_for()
                page.wait_for_load_state("networkidle")
                assert page.evaluate(AUDIT) + axe_findings(page) == [], hash_route
            browser.close()
    finally:
        stack_run.close()


def test_cli_tag_grants_downloads_and_notifications(stack: RunningStack, tmp_path: Path) -> None:
    owner = onboard(stack, unique("transport"), "steward", ["member", "steward"])
    reader = onboard(stack, unique("environment"), "analyst", ["member"])
    owner.profile.save(tmp_path / "owner.json")
    reader.profile.save(tmp_path / "reader.json")
    granted = cityshare(
        "--json",
        "access",
        "grant-tags",
        "--department",
        reader.profile.department,
        "--tag",
        "mobility",
        "--purpose",
        "Every mobility dataset for the air model",
        "--category",
        "environment-monitoring",
        profile=tmp_path / "owner.json",
    )
    grant_id = json.loads(granted.stdout)["grant_id"]
    dataset_id = unique("counts")
    schema = ROOT / "schemas" / "datasets" / "traffic-flow.json"
    cityshare(
        "datasets",
        "create",
        dataset_id,
        "--title",
        "Counts",
        "--classification",
        "internal",
        "--schema",
        str(schema),
        "--tag",
        "mobility",
        profile=tmp_path / "owner.json",
    )
    cityshare("demo-data", "traffic-flow", "--rows", "200", "--out", str(tmp_path / "flow.csv"))
    cityshare("upload", str(tmp_path / "flow.csv"), "--dataset", dataset_id, profile=tmp_path / "owner.json")
    assert grant_id in cityshare("access", "grants", profile=tmp_path / "reader.json").stdout
    assert grant_id in cityshare("access", "grants", "--given", profile=tmp_path / "owner.json").stdout
    downloaded = cityshare("download", dataset_id, "--out", str(tmp_path / "out"), profile=tmp_path / "reader.json")
    assert "saved" in downloaded.stdout and len(list((tmp_path / "out").glob("*.parquet"))) == 1
    cityshare("access", "revoke", grant_id, profile=tmp_path / "owner.json")
    refused = cityshare("download", dataset_id, "--out", str(tmp_path / "again"), profile=tmp_path / "reader.json", check=False)
    assert refused.returncode == 1 and "403 grant_revoked" in refused.stdout  # it knew the dataset: told why
    deadline = 0
    inbox = ""
    while deadline < 50 and "grant.revoked" not in inbox:
        inbox = cityshare("notifications", profile=tmp_path / "reader.json").stdout
        deadline += 1
    assert "grant.granted" in inbox and "grant.revoked" in inbox


def test_cli_analytics_subscriptions_rules_and_lineage(stack: RunningStack, tmp_path: Path) -> None:
    owner = onboard(stack, unique("environment"), "analyst", ["member", "steward"])
    owner.profile.save(tmp_path / "owner.json")
    dataset_id = unique("air")
    schema = ROOT / "schemas" / "datasets" / "air-quality.json"
    cityshare(
        "datasets",
        "create",
        dataset_id,
        "--title",
        "Air",
        "--classification",
        "internal",
        "--schema",
        str(schema),
        profile=tmp_path / "owner.json",
    )
    (tmp_path / "rule.json").write_text(json.dumps(PM25_HOURLY_RULE))
    rule_id = json.loads(
        cityshare("--json", "analytics", "rule", dataset_id, str(tmp_path / "rule.json"), profile=tmp_path / "owner.json").stdout
    )["rule_id"]
    assert rule_id in cityshare("analytics", "rules", dataset_id, profile=tmp_path / "owner.json").stdout
    subscribed = json.loads(cityshare("--json", "analytics", "subscribe", "--tag", "air", profile=tmp_path / "owner.json").stdout)
    assert subscribed["subscription_id"] in cityshare("analytics", "subscriptions", profile=tmp_path / "owner.json").stdout
    cityshare("analytics", "unsubscribe", subscribed["subscription_id"], profile=tmp_path / "owner.json")
    cityshare("analytics", "delete-rule", dataset_id, rule_id, profile=tmp_path / "owner.json")
    assert rule_id not in cityshare("analytics", "rules", dataset_id, profile=tmp_path / "owner.json").stdout
    assert f"{dataset_id}" in cityshare("analytics", "lineage", dataset_id, profile=tmp_path / "owner.json").stdout


def test_the_cli_says_what_went_wrong_in_a_sentence(stack: RunningStack, tmp_path: Path) -> None:
    """The server's precise problems field by field, a hint for the usual causes, and no traceback
    for a user's mistake: a short purpose, a misspelt option value, a broken JSON file, a stopped stack."""
    member = onboard(stack, unique("environment"), "analyst", ["member"])
    member.profile.save(tmp_path / "analyst.json")
    short = cityshare(
        "access", "request", "some-dataset", "--purpose", "air", "--category", "research", "--legal-basis",
        "public-task", "--until", "2027-01-01", profile=tmp_path / "analyst.json", check=False,
    )  # fmt: skip
    assert short.returncode == 1 and "422 validation_failed" in short.stdout
    assert "purpose" in short.stdout and "at least 10 characters" in short.stdout and "Traceback" not in short.stdout
    (tmp_path / "schema.json").write_text('{"type": "object", "properties": {')
    broken = cityshare(
        "datasets", "create", unique("air"), "--title", "Air", "--classification", "internal", "--schema",
        str(tmp_path / "schema.json"), profile=tmp_path / "analyst.json", check=False,
    )  # fmt: skip
    assert broken.returncode == 1 and "is not valid JSON" in broken.stdout and "line 1" in broken.stdout
    assert "Traceback" not in broken.stdout + broken.stderr
    stopped = json.loads((tmp_path / "analyst.json").read_text()) | {"endpoint": "http://127.0.0.1:9"}
    (tmp_path / "stopped.json").write_text(json.dumps(stopped))
    unreachable = cityshare("whoami", profile=tmp_path / "stopped.json", check=False)
    assert unreachable.returncode == 1 and "is the stack running" in unreachable.stdout
    assert "Traceback" not in unreachable.stdout + unreachable.stderr
    debug = cityshare("--debug", "whoami", profile=tmp_path / "stopped.json", check=False)
    assert "Traceback" in debug.stderr
