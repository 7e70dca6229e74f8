"""The stewards' console in headless Chromium against the embedded stack, every request signed in
the browser: a steward enrols a key, narrows and approves a pending request (the requester then reads
only the granted columns), revokes it, verifies the audit chain; the platform admin registers a
department. Screenshots of the main pages go to docs/console/ (linked from the README)."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, ViewportSize, sync_playwright

from cityshare.generators import generate
from infra.local.console import ConsoleFiles
from infra.local.stack import LOCAL_AUDIENCE
from tests.conftest import ROOT, Member, RunningStack, onboard, running_stack, unique
from tests.datasets import city_schema
from tests.e2e.city_setup import build_city, picture_when_built

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOTS = ROOT / "docs" / "console"

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (apt-get install -y chromium; `make test` tries to)"
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


def console_url(stack: RunningStack) -> str:
    url = stack.admin().endpoint + "/console/"
    assert (ROOT / "console" / "dist" / "index.html").exists(), "build the console first: make console"
    return url


def sign_in(
    browser: Browser, stack: RunningStack, department: str, principal: str, url: str | None = None, axe: bool = False
) -> Page:
    """A fresh browser profile that makes its own key; the platform admin registers the public half.
    `axe`: the page may be given axe-core (an inline script, which the console's CSP would refuse)."""
    page = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=axe).new_page()
    page.goto(url or console_url(stack))
    page.get_by_label("Department").fill(department)
    page.get_by_label("Principal").fill(principal)
    page.get_by_role("button", name="Make my key").click()
    jwk = json.loads(page.locator("#public-jwk").inner_text())
    assert "d" not in jwk  # only the public key is ever shown
    stack.admin().add_key(department, principal, jwk)
    page.get_by_role("button", name="Continue").click()
    return page


@dataclass
class Published:
    """A department with a steward, a dataset of city data it published, and another department."""

    department: str
    owner: Member
    consumer: Member
    dataset_id: str


def published(stack: RunningStack, kind: str, rows: int, folder: Path, owner_name: str, consumer_name: str) -> Published:
    department = unique(owner_name)
    owner = onboard(stack, department, "system", ["member"])
    stack.admin().put_principal(department, "steward", ["member", "steward"])
    consumer = onboard(stack, unique(consumer_name), "analyst", ["member"])
    dataset_id = unique(kind)
    owner.client.create_dataset(dataset_id, kind.replace("-", " ").capitalize(), "internal", city_schema(kind), tags=["city"])
    if rows:
        upload = owner.client.upload_file(dataset_id, generate(kind, rows, folder / f"{kind}.csv"))
        assert owner.client.wait_for_upload(dataset_id, upload["upload_id"], 60)["status"] == "published"
    return Published(department, owner, consumer, dataset_id)


def shoot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_a_steward_narrows_approves_revokes_and_verifies_in_the_browser(
    stack: RunningStack, browser: Browser, tmp_path: Path
) -> None:
    city = published(stack, "traffic-flow", 2000, tmp_path, "transport", "environment")
    transport, consumer, dataset_id = city.department, city.consumer, city.dataset_id
    asked = consumer.client.request_access(
        dataset_id,
        "Study pollution near congested roads",
        "environment-monitoring",
        "public-task",
        "2027-12-31",
        columns=["segment_id", "district", "measured_at", "camera_id"],
    )

    page = sign_in(browser, stack, transport, "steward")
    card = page.locator(f"[data-request='{asked['request_id']}']")
    card.get_by_role("button", name="Narrow…").click()
    card.get_by_role("button", name="Narrow…").click()  # pressed again: still one form
    card.locator("form.narrow").wait_for()  # the dataset's schema is fetched when first narrowed
    page.wait_for_load_state("networkidle")
    assert card.locator("form.narrow").count() == 1
    card.get_by_label("camera_id").first.uncheck()  # the "Columns to give" fieldset comes first
    shoot(page, "inbox")
    card.get_by_role("button", name="Approve narrowed").click()
    page.get_by_role("status").filter(has_text="Approved narrowed").wait_for()
    grant_id = page.get_by_role("status").inner_text().split("grant ", 1)[1].split(" ", 1)[0]

    table = consumer.client.read_table(dataset_id)
    assert table.column_names == ["segment_id", "district", "measured_at"]  # only what the steward gave

    rule = {
        "name": "Slow traffic",
        "measure": {"aggregate": "mean", "column": "avg_speed_kmh"},
        "group_by": ["segment_id"],
        "window": {"column": "measured_at", "minutes": 60},
        "comparison": "lt",
        "threshold": 5,
    }
    city.owner.client.define_alert_rule(dataset_id, rule)
    ahead = {**rule, "name": "Slow traffic ahead", "forecast": {"horizon": 2, "season": "day", "history": 1}}
    backtest = city.owner.client.define_alert_rule(dataset_id, ahead)["backtest"]
    auditor = onboard(stack, transport, "auditor", ["member", "steward"], register=False).client  # reads the chain
    reads_before = sum(1 for e in auditor.iter_audit() if e["action"] == "ReadData")
    page.goto(console_url(stack) + "#/datasets/" + dataset_id)
    page.get_by_role("heading", name="Traffic flow").wait_for()
    page.get_by_role("heading", name="Profile of v1").wait_for()
    page.get_by_role("button", name="Show the alerts raised").wait_for()
    # A forecast rule shows its backtest beside it: what a steward weighs before trusting it.
    forecast_row = page.get_by_role("row").filter(has_text="Slow traffic ahead")
    expected = f"v1: {backtest['hits']} of {backtest['events']} crossings forecast ahead"
    assert expected in forecast_row.inner_text() and "MASE" in forecast_row.inner_text()
    assert "—" in page.get_by_role("row").filter(has_text="Slow traffic").filter(has_not_text="ahead").inner_text()
    # Opening the page reads no data: the alerts (values of the data) are read when asked for.
    assert sum(1 for e in auditor.iter_audit() if e["action"] == "ReadData") == reads_before
    page.get_by_role("button", name="Show the alerts raised").click()
    page.get_by_text("No alert raised.").wait_for()
    shoot(page, "dataset")
    page.goto(console_url(stack) + "#/datasets/" + dataset_id + "/versions/9")  # a version link: that version, or why not
    page.get_by_text(f"No version 9 of {dataset_id}").wait_for()

    page.goto(console_url(stack) + "#/grants")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Revoke").first.click()
    page.get_by_role("status").filter(has_text="Revoked").wait_for()
    page.get_by_role("heading", name="Given by your department: 0 active").wait_for()  # redrawn: ended, folded apart
    page.get_by_text("1 ended (revoked or expired)").click()
    shoot(page, "grants")
    with pytest.raises(Exception, match=r"403|404"):
        consumer.client.read_table(dataset_id)

    page.goto(console_url(stack) + "#/audit")
    page.get_by_role("button", name="Verify chain").click()
    verdict = page.locator("#verify-result").inner_text()
    assert verdict.startswith(f"Chain {transport}: ") and verdict.endswith("entries, intact"), verdict
    page.get_by_label("Witness from last time (optional)").set_input_files(
        files=[{"name": "notes.json", "mimeType": "application/json", "buffer": b"{not json"}]
    )
    page.get_by_role("button", name="Verify chain").click()
    page.locator("#verify-result").filter(has_text="notes.json is not a witness file").wait_for()  # said, not skipped
    page.get_by_label("Witness from last time (optional)").set_input_files(files=[])
    reads = page.get_by_role("table", name="Reads allowed, by department, dataset and grant")
    row = reads.get_by_role("row").filter(has_text=consumer.profile.department)
    assert row.filter(has_text=dataset_id).filter(has_text=grant_id).count() == 1  # who read what, under which grant
    shoot(page, "audit")


def test_a_steward_shares_only_groups_of_at_least_k_rows_at_a_coarser_resolution(
    stack: RunningStack, browser: Browser, tmp_path: Path
) -> None:
    city = published(stack, "traffic-flow", 3000, tmp_path, "transport", "environment")
    transport, consumer, dataset_id = city.department, city.consumer, city.dataset_id
    asked = consumer.client.request_access(
        dataset_id, "Traffic per district and hour", "environment-monitoring", "public-task", "2027-12-31"
    )

    page = sign_in(browser, stack, transport, "steward")
    card = page.locator(f"[data-request='{asked['request_id']}']")
    card.get_by_role("button", name="Narrow…").click()
    coarsen = card.get_by_role("group", name="Coarsen (interval for times, grid for numbers)")
    coarsen.get_by_label("measured_at", exact=True).fill("1h")
    groups = card.get_by_role("group", name="Share groups of at least k subjects instead of rows (optional)")
    groups.get_by_label("district", exact=True).check()
    groups.get_by_label("measured_at", exact=True).check()
    groups.get_by_label("k (smallest group shared)").fill("5")
    groups.get_by_label("Measure", exact=True).select_option("sum")
    groups.get_by_label("of column").select_option("vehicle_count")
    card.get_by_role("button", name="Approve narrowed").click()
    page.get_by_role("status").filter(has_text="Approved narrowed").wait_for()

    table = consumer.client.read_table(dataset_id)
    assert table.column_names == ["district", "measured_at", "group_size", "sum_vehicle_count"]
    assert min(table.column("group_size").to_pylist()) >= 5
    assert all(value.minute == 0 and value.second == 0 for value in table.column("measured_at").to_pylist())


def test_the_city_picture_in_the_browser(stack: RunningStack, browser: Browser, tmp_path: Path) -> None:
    """City management opens its picture: tiles built from environment's shared air quality, the
    districts' map coloured by it, a district's figures on a click or on Enter; one API request."""
    city = build_city(stack, tmp_path)
    picture_when_built(city.city, city.indicator, air_version=2)
    page = sign_in(browser, stack, city.city.profile.department, "steward", axe=True)
    page.goto(console_url(stack) + "#/city")
    page.locator(".city-map path").first.wait_for()
    requests: list[str] = []  # a first load: the page, its script, style and configuration, and one answer
    page.on("request", lambda request: requests.append(request.url))
    page.reload()
    page.locator(".city-map path").first.wait_for()
    page.wait_for_load_state("networkidle")
    assert page.locator(".city-map path").count() == 8
    assert [url for url in requests if "/console/" not in url] == [stack.admin().endpoint + "/city"]
    tile = page.get_by_role("article", name="Air quality")
    assert "µg/m³" in tile.inner_text() and "limit of 25" in tile.inner_text()
    assert tile.get_by_role("link", name=city.air).get_attribute("href") == f"#/datasets/{city.air}"
    assert page.get_by_role("img", name="Air quality for the city").count() == 1
    page.get_by_role("button", name="North Park:").click()
    page.get_by_role("heading", name="North Park").wait_for()
    assert "Air quality" in page.locator("section[aria-labelledby=district-title]").inner_text()
    page.get_by_role("button", name="Centre:").focus()
    page.keyboard.press("Enter")
    page.get_by_role("heading", name="Centre", exact=True).wait_for()
    alerts = page.get_by_role("table").filter(has_text="open by district")
    assert "North Park" in alerts.inner_text()
    assert page.evaluate(AUDIT) + axe_findings(page) == []
    shoot(page, "city")


def test_the_platform_admin_registers_a_department_in_the_browser(stack: RunningStack, browser: Browser) -> None:
    principal = unique("admin")
    stack.admin().put_principal("platform", principal, ["member", "admin"])
    page = sign_in(browser, stack, "platform", principal)
    page.goto(console_url(stack) + "#/admin")
    department = unique("housing")
    # The field's pattern compiles under the `v` flag Chrome applies to pattern attributes (an
    # invalid one is ignored, and the check with it).
    assert page.get_by_label("Department id").evaluate("(input) => { new RegExp(input.pattern, 'v'); return true; }")
    page.get_by_label("Department id").fill("Housing!")
    assert page.get_by_label("Department id").evaluate("(input) => input.validity.patternMismatch")
    page.get_by_label("Department id").fill(department)
    page.get_by_label("Name").fill("Housing")
    page.get_by_role("button", name="Register").click()
    page.get_by_role("status").filter(has_text=f"Registered {department}").wait_for()
    assert any(d["department_id"] == department for d in stack.admin().list_departments())
    page.get_by_role("link", name=department).wait_for()
    shoot(page, "admin")
    # Suspending is asked first: dismissed, nothing changes; accepted, the department is suspended.
    row = page.get_by_role("row").filter(has_text=department)
    page.once("dialog", lambda dialog: dialog.dismiss())
    row.get_by_role("button", name="Suspend").click()
    assert stack.admin().describe_department(department)["department"]["status"] == "active"
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Suspend").click()
    page.get_by_role("status").filter(has_text=f"{department} is now suspended").wait_for()


AUDIT = (Path(__file__).with_name("console_audit.js")).read_text()
PAGES = ("#/inbox", "#/city", "#/grants", "#/datasets", "#/audit")
AXE = ROOT / "console" / "node_modules" / "axe-core" / "axe.min.js"


def axe_findings(page: Page) -> list[str]:
    """axe-core's serious and critical violations on the page as it is (pinned in console/package.json)."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    return list(
        page.evaluate(
            """async () => (await axe.run(document, { resultTypes: ["violations"] })).violations
                 .filter((v) => v.impact === "serious" || v.impact === "critical")
                 .map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`)"""
        )
    )


@pytest.mark.parametrize("viewport", [{"width": 1280, "height": 800}, {"width": 768, "height": 1024}], ids=["laptop", "tablet"])
def test_every_page_is_labelled_legible_and_fits_a_laptop_and_a_tablet(
    stack: RunningStack, browser: Browser, tmp_path: Path, viewport: ViewportSize
) -> None:
    city = published(stack, "air-quality", 500, tmp_path, "environment", "health")
    department, dataset_id = city.department, city.dataset_id
    city.consumer.client.request_access(
        dataset_id, "Asthma admissions and pollution", "public-health", "public-task", "2027-06-30"
    )
    # A purpose of one long unbroken word must wrap, not widen the page (the audit checks the width).
    city.consumer.client.request_access(dataset_id, "Admissions" * 150, "public-health", "public-task", "2027-06-30")

    page = sign_in(browser, stack, department, "steward", axe=True)
    page.set_viewport_size(viewport)
    for hash_route in (*PAGES, f"#/datasets/{dataset_id}", "#/admin", "#/signin"):
        page.goto(console_url(stack) + hash_route)
        page.reload()  # so the h1 awaited is this page's
        page.locator("main h1").first.wait_for()
        page.wait_for_load_state("networkidle")
        findings = page.evaluate(AUDIT) + axe_findings(page)
        assert findings == [], (hash_route, findings)
        if hash_route == "#/inbox" and viewport["width"] < 1024:
            shoot(page, "inbox-tablet")
    # The audit does find what it looks for.
    page.evaluate(
        """() => document.getElementById("main").insertAdjacentHTML("beforeend",
        '<input id="unlabelled"><p style="color:#bbb">faint</p><div style="width:3000px">wide</div>')"""
    )
    found = page.evaluate(AUDIT)
    assert [finding.split(" ", 1)[0] for finding in found] == ["unlabelled", "contrast", "wider"], found

    # Keyboard only: after each navigation the new page has the focus (a screen reader reads it);
    # the sections are a Shift+Tab away, Enter opens one, Tab reaches the page's first action.
    page.goto(console_url(stack) + "#/inbox")
    page.get_by_role("button", name="Approve as asked").first.wait_for()
    assert page.evaluate("document.activeElement.id") == "main"
    for _ in range(10):
        page.keyboard.press("Shift+Tab")
        if page.evaluate("document.activeElement.textContent") == "Grants":
            break
    assert page.evaluate("document.activeElement.textContent") == "Grants"
    page.keyboard.press("Enter")
    page.wait_for_function("() => location.hash === '#/grants' && document.activeElement.id === 'main'")
    page.goto(console_url(stack) + "#/inbox")
    page.get_by_role("button", name="Approve as asked").first.wait_for()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Approve as asked"


class StaticSite:
    """CloudFront's part, on 127.0.0.1: the built console with the AWS stack's headers and a config.json
    naming an API on another origin."""

    def __init__(self) -> None:
        self.files: ConsoleFiles | None = None
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                assert site.files is not None
                status, headers, body = site.files.answer(self.path.split("?")[0], "")
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture(scope="module")
def cross_origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningStack, StaticSite, StaticSite]]:
    """A stack whose API answers CORS for one console origin (as API Gateway does for CloudFront's),
    that console, and the same console on an origin the API does not know."""
    console, stranger = StaticSite(), StaticSite()
    running = running_stack(tmp_path_factory.mktemp("cross-origin"), "--browser-origin", console.origin)
    stack = next(running)
    endpoint = stack.admin_profile.endpoint
    console.files = ConsoleFiles(LOCAL_AUDIENCE, api_origin=endpoint)
    stranger.files = ConsoleFiles(LOCAL_AUDIENCE, api_origin=endpoint)
    yield stack, console, stranger
    running.close()
    for site in (console, stranger):
        site.server.shutdown()


def test_the_console_on_its_own_origin_calls_the_api_as_in_aws(
    cross_origin: tuple[RunningStack, StaticSite, StaticSite], browser: Browser
) -> None:
    """The AWS arrangement in Chromium: the page from one origin under the AWS content security
    policy, every signed request to the API's origin through CORS preflights; answers, the functions'
    refusals included, readable by that origin only."""
    stack, console, stranger = cross_origin
    city = published(stack, "traffic-flow", 0, Path(), "transport", "environment")
    department, consumer, dataset_id = city.department, city.consumer, city.dataset_id
    asked = consumer.client.request_access(dataset_id, "Counting cars per district", "statistics", "public-task", "2027-06-30")

    page = sign_in(browser, stack, department, "steward", f"{console.origin}/console/")
    card = page.locator(f"[data-request='{asked['request_id']}']")
    card.get_by_role("button", name="Narrow…").click()
    coarsen = card.get_by_role("group", name="Coarsen (interval for times, grid for numbers)")
    coarsen.get_by_label("measured_at", exact=True).fill("fortnightly")  # the function refuses it; the page shows why
    card.get_by_role("button", name="Approve narrowed").click()
    page.get_by_role("status").filter(has_text="Not approved: 4").wait_for()
    card.get_by_role("button", name="Approve as asked").click()
    page.get_by_role("status").filter(has_text="Approved as asked: grant g").wait_for()

    other = sign_in(browser, stack, department, "steward", f"{stranger.origin}/console/")
    other.get_by_text("This page could not be shown").wait_for()  # the browser withholds the API's answers
