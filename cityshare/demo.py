"""The city scenario `make demo` runs, through the SDK over signed HTTP, against an embedded stack."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import requests
from rich.console import Console
from rich.table import Table

from cityshare.admin import enrol
from cityshare.client import CityShareClient, CityShareError
from cityshare.delta import SharedTables
from cityshare.demo_ahead import look_ahead
from cityshare.demo_city import city_picture
from cityshare.demo_personal import personal_data
from cityshare.examples import PM25_HOURLY_RULE
from cityshare.keys import generate_key, load_private_key
from cityshare.profile import Profile
from cityshare.signing import RequestSigner, request_target

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas" / "datasets"

DEPARTMENTS = {
    "transport": "Transport and Mobility",
    "environment": "Environment and Climate",
    "health": "Public Health",
    "public-safety": "Public Safety",
    "city-management": "City Management",
    "logistics": "Logistics and Waste",
}
# (owner, dataset id, schema file, classification, tags)
DATASETS = [
    ("transport", "traffic-flow", "traffic-flow.json", "internal", ["traffic", "mobility"]),
    ("transport", "plate-reads", "plate-reads.json", "restricted", ["traffic", "cameras"]),
    ("environment", "air-quality", "air-quality.json", "public", ["environment", "air"]),
    ("health", "hospital-beds", "hospital-beds.json", "confidential", ["health", "capacity"]),
]


def onboard(
    admin: CityShareClient, admin_profile: Profile, keys_dir: Path, department: str, name: str
) -> dict[str, CityShareClient]:
    """Register a department with a system principal (member) and a data steward, each with a key."""
    admin.register_department(department, name)
    clients = {}
    for principal, roles in ((f"{department}-system", ["member"]), (f"{department}-steward", ["member", "steward"])):
        profile = enrol(admin, admin_profile, department, principal, roles, keys_dir / f"{principal}.pem", f"{name} {roles[-1]}")
        profile.save(keys_dir.parent / "profiles" / f"{principal}.json")
        clients[roles[-1]] = CityShareClient.from_profile(profile)
    return clients


def _dataset_table(datasets: list[dict[str, Any]], title: str) -> Table:
    table = Table("dataset", "owner", "classification", "tags", title=title)
    for dataset in datasets:
        table.add_row(dataset["dataset_id"], dataset["owner"], dataset["classification"], ",".join(dataset["tags"]))
    return table


def run_scenario(admin_profile_path: Path, console: Console) -> dict[str, Any]:
    """Run the story; returns what happened (the e2e test checks it)."""
    outcome: dict[str, Any] = {}
    admin_profile = Profile.load(admin_profile_path)
    admin = CityShareClient.from_profile(admin_profile)
    keys_dir = admin_profile_path.parent / "keys"

    console.rule("1. The platform team registers the departments, their systems and stewards")
    people = {dept: onboard(admin, admin_profile, keys_dir, dept, name) for dept, name in DEPARTMENTS.items()}
    for department in admin.list_departments():
        console.print(f"  {department['department_id']:<12} {department['name']}")

    console.rule("2. Each department publishes its datasets' metadata")
    for owner, dataset_id, schema_file, classification, tags in DATASETS:
        schema = json.loads((SCHEMAS / schema_file).read_text())
        people[owner]["member"].create_dataset(
            dataset_id, schema["title"], classification, schema, description=schema["description"], tags=tags
        )
        console.print(f"  {owner} published [bold]{dataset_id}[/bold] ({classification}, {len(schema['properties'])} columns)")

    outcome["ingest"] = publish_data(people, admin_profile_path.parent / "data", console)

    console.rule("3. Departments browse and search the catalog")
    seen = list(people["environment"]["member"].iter_datasets())
    console.print(_dataset_table(seen, "What environment can see (confidential and restricted of others stay hidden)"))
    traffic = list(people["environment"]["member"].iter_datasets(tag="traffic"))
    console.print(f"  environment searches tag=traffic: {[d['dataset_id'] for d in traffic]}")
    air = list(people["health"]["member"].iter_datasets(q="air"))
    console.print(f"  health searches 'air': {[d['dataset_id'] for d in air]}")
    own = list(people["transport"]["member"].iter_datasets(owner="transport"))
    console.print(f"  transport lists its own: {[d['dataset_id'] for d in own]}")
    outcome["environment_sees"] = sorted(d["dataset_id"] for d in seen)
    catalog = admin.open_data_catalog()
    outcome["open_data"] = sorted(d["dataset_id"] for d in seen if d["classification"] == "public" and d["dataset_id"] in catalog)
    console.print(f"  the city's open-data portal harvests GET /catalog/dcat (DCAT-AP, unsigned): {outcome['open_data']}")

    console.rule("4. Refusals: another department's dataset, a forged request, a replayed request")
    try:
        people["environment"]["member"].update_dataset("traffic-flow", title="Renamed by environment")
    except CityShareError as error:
        console.print(f"  environment edits transport's traffic-flow -> [red]{error.status} {error.code}[/red]")
        outcome["cross_department_edit"] = error.status
    outcome["forged"] = forged_request(admin_profile, people["transport"]["member"], keys_dir)
    console.print(f"  a request signed with a stolen key id but the wrong key -> [red]{outcome['forged']}[/red]")
    outcome["replay"] = replayed_request(people["health"]["member"])
    console.print(f"  the same signed request sent twice -> first {outcome['replay'][0]}, then [red]{outcome['replay'][1]}[/red]")

    outcome["sharing"] = share(people, console)
    outcome["personal"] = personal_data(people, admin_profile_path.parent / "data", console)
    outcome["analytics"] = analytics(people, admin_profile_path.parent / "data", console)

    console.rule("6. The audit trail")
    table = Table("seq", "actor", "action", "resource", "decision", "reason", title="Platform security chain (platform admin)")
    for entry in admin.iter_audit("platform"):
        if entry["action"] == "Authenticate":
            actor = f"{entry['actor_department']}/{entry['actor_principal']}"
            table.add_row(str(entry["seq"]), actor, entry["action"], entry["resource"], entry["decision"], entry["reason"])
    console.print(table)
    transport_steward = people["transport"]["steward"]
    denied = [e for e in transport_steward.iter_audit() if e["decision"] == "deny"]
    for entry in denied:
        console.print(
            f"  transport's chain: {entry['actor_department']}/{entry['actor_principal']} {entry['action']} "
            f"{entry['resource']} -> deny"
        )
    reports = [admin.verify_audit("platform"), transport_steward.verify_audit()]
    for report in reports:
        state = "[green]intact[/green]" if report.intact else f"[red]BROKEN: {report.problems}[/red]"
        console.print(f"  chain {report.chain}: {report.entries} entries, {state}")
    outcome["refusals_audited"] = sorted({e["reason"] for e in admin.iter_audit("platform") if e["decision"] == "deny"})
    outcome["chains_intact"] = all(r.intact for r in reports)
    outcome["city"] = city_picture(people, admin_profile_path.parent / "data", console)
    outcome["ahead"] = look_ahead(people, admin_profile_path.parent / "data", console)
    return outcome


def share(people: dict[str, dict[str, CityShareClient]], console: Console) -> dict[str, Any]:
    """Environment asks transport for traffic flow; the steward narrows; the data is read and joined."""

    console.rule("4b. Sharing under a steward's control")
    results: dict[str, Any] = {}
    environment, transport_steward = people["environment"]["member"], people["transport"]["steward"]
    asked = environment.request_access(
        "traffic-flow",
        "Study air pollution near congested roads, per district",
        "environment-monitoring",
        "public-task",
        "2027-12-31",
        columns=["segment_id", "district", "measured_at", "avg_speed_kmh", "vehicle_count", "camera_id"],
    )
    console.print(f"  environment asks transport for traffic-flow ({len(asked['columns'])} columns, until {asked['until'][:10]})")
    pending = transport_steward.pending_requests()
    grant = transport_steward.approve_request(
        "traffic-flow",
        pending[0]["request_id"],
        note="No camera ids; hourly; city centre districts only",
        terms={
            "columns": ["district", "measured_at", "avg_speed_kmh", "vehicle_count"],
            "row_filter": {"condition": {"column": "district", "op": "in", "value": ["Centre", "Harbour", "Old Town"]}},
            "generalised": {"measured_at": "1h"},
            "expires_at": "2027-06-30",
        },
    )
    console.print(
        f"  transport's steward approves it narrowed: columns {grant['terms']['columns']}, hourly times, 3 districts, "
        f"until {grant['terms']['expires_at'][:10]}"
    )
    traffic = environment.read_dataframe("traffic-flow")
    air = environment.read_dataframe("air-quality", version=1)  # the hourly network upload (v2 holds two pushed readings)
    speed = traffic.groupby("district").agg(mean_speed=("avg_speed_kmh", "mean"), vehicles=("vehicle_count", "sum"))
    pm25 = air.groupby("district").agg(mean_pm25=("pm25", "mean"))
    joined = speed.join(pm25, how="inner").sort_index()
    table = Table(
        "district",
        "mean speed km/h",
        "vehicles",
        "mean PM2.5 µg/m³",
        title="Environment joins granted traffic with its air quality (pandas)",
    )
    for district, row in joined.iterrows():
        table.add_row(str(district), _number(row["mean_speed"]), str(int(row["vehicles"])), _number(row["mean_pm25"]))
    console.print(table)
    console.print(
        f"  the view environment read into pandas has {len(traffic)} rows and columns {list(traffic.columns)}, "
        f"times to the hour ({traffic['measured_at'].dt.minute.max()} minutes past at most); camera ids never left transport"
    )
    results["view_columns"] = list(traffic.columns)
    results["districts"] = sorted(traffic["district"].unique())

    # The same grant from the analysts' own tools: a Delta Sharing profile (pandas, Spark, Power BI).
    profile = transport_steward.issue_share_profile("environment", 30, "environment's notebooks")
    shared = SharedTables(profile)
    tables = shared.tables()
    through_protocol = shared.read("transport.mobility.traffic-flow")
    console.print(
        f"  transport's steward issues environment a Delta Sharing profile: it sees {tables}; "
        f"reading it gives {through_protocol.num_rows} rows of {through_protocol.column_names} — the same view"
    )
    results["delta_sharing"] = {"tables": tables, "rows": through_protocol.num_rows, "columns": through_protocol.column_names}

    safety = people["public-safety"]["member"]
    plates = safety.request_access(
        "traffic-flow",
        "Track vehicles seen by cameras near incidents",
        "public-safety",
        "none",
        "2027-12-31",
        columns=["camera_id", "measured_at", "segment_id"],
    )
    denied = transport_steward.deny_request("traffic-flow", plates["request_id"], "No legal basis was given for camera data")
    console.print(
        f"  public safety asks for camera data without a legal basis -> [red]{denied['status']}[/red]: "
        f"{denied['decision']['reason']}"
    )
    results["safety"] = denied["status"]

    transport_steward.revoke_grant("traffic-flow", grant["grant_id"])
    try:
        environment.read_table("traffic-flow")
        results["after_revoke"] = "read!"
    except CityShareError as error:
        results["after_revoke"] = f"{error.status} {error.code}"
    console.print(f"  transport revokes the grant; environment's next read -> [red]{results['after_revoke']}[/red]")
    results["delta_sharing"]["after_revoke"] = shared.tables()
    console.print(f"  and through Delta Sharing the share now lists {results['delta_sharing']['after_revoke']}")
    expected = {
        "transport": (transport_steward, {"access-request.filed"}),
        "environment": (environment, {"access-request.approved", "grant.granted", "grant.revoked"}),
        "public-safety": (safety, {"access-request.denied"}),
    }
    results["inboxes"] = {}
    for department, (member, kinds) in expected.items():
        notes = inbox_with(member, kinds)
        results["inboxes"][department] = sorted({n["kind"] for n in notes})
        for note in notes:
            console.print(f"  [dim]{department} inbox[/dim] {note['kind']}: {note['message']}")
    return results


def inbox_with(member: CityShareClient, kinds: set[str], timeout: float = 15.0) -> list[dict[str, Any]]:
    """The department's notifications once those of `kinds` arrived (the triggers function delivers them)."""
    deadline = time.monotonic() + timeout
    notes: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        notes = [n for n in member.notifications(limit=100)["notifications"] if n["kind"] in kinds]
        if kinds <= {n["kind"] for n in notes}:
            break
        time.sleep(0.2)
    return notes


CONGESTION_VS_AIR = """
SELECT t.district, t.hour, t.mean_speed_kmh, t.vehicles, a.mean_pm25
FROM (SELECT district, time_bucket(INTERVAL 1 HOUR, measured_at) AS hour,
             avg(avg_speed_kmh) AS mean_speed_kmh, sum(vehicle_count) AS vehicles
      FROM traffic_flow GROUP BY ALL) AS t
JOIN (SELECT district, time_bucket(INTERVAL 1 HOUR, measured_at) AS hour, avg(pm25) AS mean_pm25
      FROM air_quality GROUP BY ALL) AS a USING (district, hour)
"""


def analytics(people: dict[str, dict[str, CityShareClient]], folder: Path, console: Console) -> dict[str, Any]:
    """An alert rule fires on a spike, health is told; a derived dataset follows new traffic data."""
    from cityshare.generators import generate

    console.rule("5. Analytics triggers: alerts, subscriptions, a derived dataset with lineage")
    results: dict[str, Any] = {}
    environment, health = people["environment"]["member"], people["health"]["member"]
    transport, transport_steward = people["transport"]["member"], people["transport"]["steward"]
    health.subscribe(dataset_id="air-quality", kinds=["alerts", "versions"])
    console.print("  health subscribes to air-quality: new versions and alerts")
    rule = environment.define_alert_rule(
        "air-quality",
        PM25_HOURLY_RULE,
    )
    console.print(f"  environment defines the rule '{rule['name']}' (hourly windows per station)")
    congestion = transport_steward.grant(
        "traffic-flow",
        "environment",
        "Hourly congestion index per district against air quality",
        "environment-monitoring",
        terms={"columns": ["district", "measured_at", "avg_speed_kmh", "vehicle_count"]},
    )
    console.print(
        f"  transport's steward grants environment a new grant ({congestion['grant_id']}) on traffic-flow for its "
        f"congestion index: columns {congestion['terms']['columns']}"
    )
    derived = environment.define_derived_dataset(
        "congestion-air-by-district",
        "Congestion vs air quality by district",
        ["traffic-flow", "air-quality"],
        CONGESTION_VS_AIR,
    )
    console.print(
        f"  environment defines [bold]{derived['dataset_id']}[/bold] over traffic-flow (granted columns only) and "
        f"air-quality: {derived['classification']}, columns {list(derived['columns'])}"
    )

    batch = generate("air-quality", 24 * 24, folder / "air-quality-spike.csv", seed=11, spike=True)
    version = environment.wait_for_upload("air-quality", environment.upload_file("air-quality", batch)["upload_id"])["version"]
    inbox_with(health, {"alert.raised", "dataset.version-published"})
    alerts = sorted((a for a in environment.alerts("air-quality") if a["version"] == version), key=lambda a: a["window_start"])
    deadline = time.monotonic() + 15
    notes: list[dict[str, Any]] = []
    while time.monotonic() < deadline:  # the rule's alerts on this version reach health's inbox (one notice)
        notes = [n for n in health.notifications(limit=100)["notifications"] if n["subject"].get("version") == version]
        if sum(n["subject"].get("firings", 0) for n in notes if n["kind"] == "alert.raised") >= len(alerts):
            break
        time.sleep(0.2)
    for alert in alerts:
        console.print(
            f"  [red]alert[/red] {alert['group']['station_id']} {alert['window_start']}: "
            f"mean PM2.5 {alert['value']:.1f} > {alert['threshold']:g}"
        )
    for note in notes:
        console.print(f"  [dim]health inbox[/dim] {note['kind']}: {note['message']}")
    results["alerts"] = len(alerts)
    results["health_told"] = sorted({n["kind"] for n in notes})

    traffic = generate("traffic-flow", 5000, folder / "traffic-flow-rush.csv", seed=12, spike=True)
    transport.wait_for_upload("traffic-flow", transport.upload_file("traffic-flow", traffic)["upload_id"])
    built = _wait_for_version(environment, "congestion-air-by-district", 2)
    lineage = environment.lineage("congestion-air-by-district")
    sources = ", ".join(f"{edge['dataset_id']}@{edge['version']}" for edge in lineage["upstream"])
    console.print(f"  new traffic data landed -> congestion-air-by-district rebuilt as version {built}, from {sources}")
    table = environment.read_table("congestion-air-by-district").sort_by([("mean_pm25", "descending")]).slice(0, 5)
    preview = Table("district", "hour", "mean speed km/h", "vehicles", "mean PM2.5", title="Most polluted district-hours")
    for row in table.to_pylist():
        preview.add_row(
            row["district"],
            str(row["hour"])[:16],
            _number(row["mean_speed_kmh"]),
            str(row["vehicles"]),
            _number(row["mean_pm25"]),
        )
    console.print(preview)
    results["derived_version"] = built
    results["lineage"] = sorted(edge["dataset_id"] for edge in lineage["upstream"])
    return results


def _wait_for_version(member: CityShareClient, dataset_id: str, version: int, timeout: float = 60.0) -> int:
    deadline = time.monotonic() + timeout
    latest = 0
    while time.monotonic() < deadline:
        latest = int(member.get_dataset(dataset_id).get("latest_version") or 0)
        if latest >= version:
            break
        time.sleep(0.3)
    return latest


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def publish_data(people: dict[str, dict[str, CityShareClient]], folder: Path, console: Console) -> dict[str, Any]:
    """Each department uploads generated data; one broken file is rejected with its report."""
    from cityshare.generators import generate

    console.rule("2b. Departments upload data: validated, protected, versioned")
    folder.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    uploads = [
        ("transport", "traffic-flow", generate("traffic-flow", 5000, folder / "traffic-flow.csv")),
        ("transport", "plate-reads", generate("plate-reads", 2000, folder / "plate-reads.csv")),
        ("environment", "air-quality", _gzip(generate("air-quality", 24 * 48, folder / "air-quality.jsonl", spike=True))),
        ("health", "hospital-beds", generate("hospital-beds", 600, folder / "hospital-beds.csv")),
    ]
    for owner, dataset_id, path in uploads:
        sdk = people[owner]["member"]
        ticket = sdk.upload_file(dataset_id, path)
        upload = sdk.wait_for_upload(dataset_id, ticket["upload_id"])
        results[dataset_id] = upload["status"]
        console.print(
            f"  {owner} uploaded {path.name} -> [green]{upload['status']}[/green] as version {upload['version']} "
            f"({upload['report']['rows_accepted']} rows)"
        )
    plates = people["transport"]["member"].get_version("plate-reads", 1)
    sample = people["transport"]["member"].read_table("plate-reads").column("plate")[0].as_py()
    console.print(
        f"  plate numbers reach storage only as pseudonyms in transport's own token space, e.g. {sample} "
        f"({plates['profile']['columns']['plate']['distinct_estimate']} distinct vehicles)"
    )
    sensors = people["environment"]["member"]
    pushed = sensors.push_records(
        "air-quality",
        [
            {"station_id": "AQ-004", "district": "Harbour", "measured_at": "2026-11-04T08:00:00Z", "pm25": 92.5, "pm10": 130.1},
            {"station_id": "AQ-005", "district": "Centre", "measured_at": "2026-11-04T08:00:00Z", "pm25": 18.0},
        ],
    )
    pushed = sensors.wait_for_upload("air-quality", pushed["upload_id"])
    console.print(f"  environment's sensors pushed 2 records -> {pushed['status']} as version {pushed['version']}")

    broken = folder / "hospital-beds-broken.csv"
    broken.write_text(
        "hospital_id,ward_type,reported_at,beds_total,beds_occupied\n"
        "HOSP-01,icu,2026-11-04T08:00:00Z,24,20\n"
        "HOSP-02,rooftop,2026-11-04T08:00:00Z,24,19\n"
        "HOSP-03,general,yesterday,320,-4\n"
        "HOSP-04,general,2026-11-04T08:00:00Z,3.5e9999,12\n"
    )
    health = people["health"]["member"]
    rejected = health.wait_for_upload("hospital-beds", health.upload_file("hospital-beds", broken)["upload_id"])
    results["broken"] = rejected["status"]
    report = rejected["report"]
    console.print(f"  health uploaded {broken.name} -> [red]{rejected['status']}[/red]: {report['issues'][0]['message']}")
    table = Table("row", "column", "rule", "value", title="The rejection report (the original file is kept)")
    for issue in report["issues"][1:]:
        table.add_row(str(issue["row"]), issue["column"] or "", issue["rule"], issue["value"] or "")
    console.print(table)
    for owner, dataset_id in (("transport", "traffic-flow"), ("environment", "air-quality")):
        listed = people[owner]["member"].list_versions(dataset_id)
        console.print(f"  {dataset_id} versions: " + ", ".join(f"v{v['version']} ({v['rows']} rows)" for v in reversed(listed)))
    return results


def _gzip(path: Path) -> Path:
    import gzip

    target = path.with_suffix(path.suffix + ".gz")
    target.write_bytes(gzip.compress(path.read_bytes()))
    return target


def forged_request(admin_profile: Profile, victim: CityShareClient, keys_dir: Path) -> str:
    """Sign as the victim (same department, principal and key id) with a key the attacker made."""
    attacker_key = keys_dir / "attacker.pem"
    generate_key(attacker_key)
    victim_kid = victim.signer.kid  # what an attacker reads off any intercepted token header
    forged = RequestSigner(
        victim.signer.department, victim.signer.principal, load_private_key(attacker_key), victim_kid, admin_profile.audience
    )
    return _status(CityShareClient(admin_profile.endpoint, forged), "GET", "/datasets")


def replayed_request(client: CityShareClient) -> tuple[int, int]:
    token = client.signer.token("GET", request_target("/datasets"), b"")
    statuses = []
    for _ in range(2):
        response = requests.get(f"{client.endpoint}/datasets", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        statuses.append(response.status_code)
    return statuses[0], statuses[1]


def _status(client: CityShareClient, method: str, path: str) -> str:
    try:
        client.request(method, path)
    except CityShareError as error:
        return f"{error.status} {error.code}"
    return "200 (accepted!)"


def run_demo(state_dir: Path, console: Console) -> dict[str, Any]:
    from cityshare.local import start

    shutil.rmtree(state_dir, ignore_errors=True)
    stack, profile_path, console_url = start(state_dir)
    try:
        console.print(f"[bold]CityShare embedded stack[/bold] at {Profile.load(profile_path).endpoint}")
        outcome = run_scenario(profile_path, console)
    finally:
        stack.stop()  # type: ignore[attr-defined]
    # The demo's stack stops with it; its city is kept and comes back whole where it was.
    console.print(
        f"\nThe demo's city is kept in {state_dir}: `cityshare local up --state-dir {state_dir}` brings it back"
        + (", with the stewards' console at its /console/" if console_url else "")
        + f" (the principals' keys and profiles are under {state_dir})"
    )
    return outcome
