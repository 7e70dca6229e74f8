"""Analytics triggers over HTTP against the embedded stack: an alert rule firing on a spike, a
subscriber told (inbox and signed webhook), a derived dataset rebuilt with lineage, and the guard
refusing what the definer may not read."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from cityshare import CityShareError
from cityshare.examples import PM25_FORECAST_RULE, PM25_HOURLY_RULE
from cityshare.generators import generate
from tests.conftest import Member, RunningStack, onboard, unique
from tests.datasets import city_schema
from tests.e2e.test_grants_and_notifications import wait_for

HOURLY_PM25 = PM25_HOURLY_RULE


class Receiver(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return


@pytest.fixture(scope="module")
def webhook() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/cityshare"
    server.shutdown()


@pytest.fixture(scope="module")
def city(stack: RunningStack) -> dict[str, Any]:
    environment = unique("environment")
    transport = unique("transport")
    people = {
        "environment": onboard(stack, environment, "analyst", ["member", "steward"]),
        "transport": onboard(stack, transport, "steward", ["member", "steward"]),
        "health": onboard(stack, unique("health"), "epidemiology", ["member"]),
    }
    air, flow = unique("air"), unique("flow")
    people["environment"].client.create_dataset(air, "Air quality", "internal", city_schema("air-quality"), tags=["environment"])
    people["transport"].client.create_dataset(flow, "Traffic flow", "confidential", city_schema("traffic-flow"), tags=["traffic"])
    # Every test of the module may count on this grant, whichever runs first (or alone).
    people["transport"].client.grant(
        flow,
        environment,
        "Congestion and air quality per district",
        "environment-monitoring",
        terms={"columns": ["district", "measured_at", "avg_speed_kmh", "vehicle_count"]},
    )
    return {"people": people, "air": air, "flow": flow}


def upload(member: Member, dataset_id: str, name: str, rows: int, folder: Path, spike: bool = False, seed: int = 7) -> int:
    path = generate(name, rows, folder / f"{dataset_id}-{seed}.csv", seed=seed, spike=spike)
    done = member.client.wait_for_upload(dataset_id, member.client.upload_file(dataset_id, path)["upload_id"], 120)
    assert done["status"] == "published", done
    return int(done["version"])


def test_an_alert_rule_fires_on_a_spike_and_subscribers_are_told(city: dict[str, Any], webhook: str, tmp_path: Path) -> None:
    environment, health = city["people"]["environment"], city["people"]["health"]
    air = city["air"]
    environment.client.grant(air, health.profile.department, "Health watches pollution peaks", "public-health")
    subscription = health.client.subscribe(dataset_id=air, kinds=["alerts", "versions"], webhook_url=webhook)
    assert subscription["webhook_secret"]
    rule = environment.client.define_alert_rule(air, HOURLY_PM25)
    version = upload(environment, air, "air-quality", 24 * 24, tmp_path, spike=True)

    raised = wait_for(environment, "alert.raised", dataset_id=air, version=version)
    assert raised["subject"]["rule_id"] == rule["rule_id"] and raised["subject"]["firings"] == len(raised["subject"]["alerts"])
    assert {a["group"]["station_id"] for a in raised["subject"]["alerts"]} == {"AQ-004"}
    assert all(a["value"] > 75 and a["window_start"].endswith(":00:00Z") for a in raised["subject"]["alerts"])
    wait_for(health, "alert.raised", dataset_id=air, version=version)
    wait_for(health, "dataset.version-published", dataset_id=air, version=version)
    alerts = environment.client.alerts(air)
    assert alerts and {a["group"]["station_id"] for a in alerts} == {"AQ-004"}
    assert len({a["alert_id"] for a in alerts}) == len(alerts)  # one per (group, window)

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(Receiver.received) < 2:
        time.sleep(0.1)
    kinds = []
    for headers, body in Receiver.received:
        expected = hmac.new(
            subscription["webhook_secret"].encode(), headers["x-cityshare-timestamp"].encode() + b"." + body, hashlib.sha256
        ).hexdigest()
        assert headers["x-cityshare-signature"] == f"sha256={expected}"
        kinds.append(json.loads(body)["kind"])
    assert "alert.raised" in kinds and "dataset.version-published" in kinds


def test_a_rule_on_columns_outside_the_grant_is_refused(city: dict[str, Any]) -> None:
    environment = city["people"]["environment"]
    flow = city["flow"]
    with pytest.raises(CityShareError) as refused:
        environment.client.define_alert_rule(
            flow,
            {
                "name": "Slow cameras",
                "measure": {"aggregate": "mean", "column": "avg_speed_kmh"},
                "group_by": ["camera_id"],
                "comparison": "lt",
                "threshold": 10,
            },
        )
    assert refused.value.status == 403 and "camera_id" in refused.value.detail
    with pytest.raises(CityShareError) as no_grant:
        city["people"]["health"].client.define_alert_rule(flow, HOURLY_PM25)
    assert no_grant.value.status == 404  # confidential and not granted: not even its existence


def test_a_derived_dataset_is_rebuilt_when_an_input_changes_with_lineage(city: dict[str, Any], tmp_path: Path) -> None:
    transport, environment = city["people"]["transport"], city["people"]["environment"]
    air, flow, output = city["air"], city["flow"], unique("congestion-air")
    air_table, flow_table = air.replace("-", "_"), flow.replace("-", "_")
    sql = f"""
        SELECT t.district, t.hour, t.mean_speed, a.mean_pm25
        FROM (SELECT district, time_bucket(INTERVAL 1 HOUR, measured_at) AS hour, avg(avg_speed_kmh) AS mean_speed
              FROM {flow_table} GROUP BY ALL) AS t
        JOIN (SELECT district, time_bucket(INTERVAL 1 HOUR, measured_at) AS hour, avg(pm25) AS mean_pm25
              FROM {air_table} GROUP BY ALL) AS a USING (district, hour)
    """
    with pytest.raises(CityShareError) as outside:
        environment.client.define_derived_dataset(output, "Leak", [flow], f"SELECT camera_id FROM {flow_table}")
    assert outside.value.status == 400 and "camera_id" in outside.value.detail
    with pytest.raises(CityShareError) as statements:
        environment.client.define_derived_dataset(output, "Two", [flow], f"SELECT 1 AS a; DROP TABLE {flow_table}")
    assert statements.value.status == 400
    with pytest.raises(CityShareError) as no_athena:
        environment.client.define_derived_dataset(
            output, "On Athena", [flow, air], sql, engine="athena", result_columns={"district": "string"}
        )
    assert no_athena.value.status == 400 and "embedded stack" in no_athena.value.detail
    with pytest.raises(CityShareError) as taken:  # an existing id: neither a dataset nor a definition is written
        environment.client.define_derived_dataset(air, "Over an existing id", [flow], f"SELECT district FROM {flow_table}")
    assert taken.value.status == 409 and environment.client.lineage(air)["sql"] is None
    derived = environment.client.define_derived_dataset(output, "Congestion vs air quality", [flow, air], sql)
    assert derived["classification"] == "confidential"  # no lower than its most restricted input
    with pytest.raises(CityShareError) as lowered:
        environment.client.update_dataset(output, classification="public")
    assert lowered.value.status == 400 and "derived from confidential" in lowered.value.detail
    assert set(derived["columns"]) == {"district", "hour", "mean_speed", "mean_pm25"}

    if not environment.client.get_dataset(air).get("latest_version"):  # this test run alone, or first
        upload(environment, air, "air-quality", 24 * 24, tmp_path)
    traffic_version = upload(transport, flow, "traffic-flow", 24 * 12 * 4, tmp_path, spike=True)
    deadline = time.monotonic() + 60
    described: dict[str, Any] = {}
    while time.monotonic() < deadline:
        described = environment.client.get_dataset(output)
        if described.get("latest_version"):
            break
        time.sleep(0.3)
    assert described.get("latest_version") == 1
    lineage = environment.client.lineage(output)
    assert {(e["dataset_id"], e["version"]) for e in lineage["upstream"]} == {
        (flow, traffic_version),
        (air, environment.client.get_dataset(air)["latest_version"]),
    }
    assert lineage["sql"]  # the definer sees its query
    # transport owns an input but may not see environment's confidential output: lineage does not reveal it
    assert output not in {e["dataset_id"] for e in transport.client.lineage(flow)["downstream"]}
    table = environment.client.read_table(output)
    assert table.num_rows > 0 and table.column_names == ["district", "hour", "mean_speed", "mean_pm25"]
    upstream_of_air = environment.client.lineage(air)
    assert output in {e["dataset_id"] for e in upstream_of_air["downstream"]}


def test_subscriptions_and_rules_reveal_nothing_to_other_departments(city: dict[str, Any]) -> None:
    people = city["people"]
    health, environment, transport = people["health"], people["environment"], people["transport"]
    outsider_flow = unique("flow")
    transport.client.create_dataset(outsider_flow, "Private flow", "confidential", city_schema("traffic-flow"))
    for attempt in (
        lambda: health.client.subscribe(dataset_id=outsider_flow),
        lambda: health.client.define_alert_rule(outsider_flow, HOURLY_PM25),
        lambda: health.client.alerts(outsider_flow),
        lambda: health.client.lineage(outsider_flow),
        lambda: health.client.define_derived_dataset(unique("copy"), "Copy", [outsider_flow], "SELECT * FROM x"),
    ):
        with pytest.raises(CityShareError) as refused:
            attempt()
        assert refused.value.status == 404
    rule = environment.client.define_alert_rule(city["air"], dict(HOURLY_PM25, name="Owned by environment"))
    with pytest.raises(CityShareError) as not_yours:
        health.client.delete_alert_rule(city["air"], rule["rule_id"])
    assert not_yours.value.status == 404
    assert rule["rule_id"] not in {r["rule_id"] for r in health.client.alert_rules(city["air"])}
    with pytest.raises(CityShareError) as unknown:
        health.client.unsubscribe("s" + "0" * 24)
    assert unknown.value.status == 404


FORECAST_RULE = PM25_FORECAST_RULE


def test_a_forecast_rule_is_backtested_when_defined_and_warns_ahead_of_the_crossing(city: dict[str, Any], tmp_path: Path) -> None:
    environment, health = city["people"]["environment"], city["people"]["health"]
    air = unique("air-history")
    environment.client.create_dataset(air, "Air quality, hourly history", "internal", city_schema("air-quality"))
    # Five weeks of four stations, to 03:00 on a working day: AQ-001's mornings pass 75.
    first = generate("air-quality-history", 4 * 862, tmp_path / "history.csv")
    done = environment.client.wait_for_upload(air, environment.client.upload_file(air, first)["upload_id"], 120)
    assert done["status"] == "published"
    environment.client.grant(air, health.profile.department, "Health warns of pollution ahead of it", "public-health")
    with pytest.raises(CityShareError) as refused:
        health.client.define_alert_rule(air, {**FORECAST_RULE, "forecast": {"horizon": 30, "season": "day"}})
    assert refused.value.status == 422 and "one season ahead" in str(refused.value)
    with pytest.raises(CityShareError) as no_athena:  # windows reduced by Athena: AWS only
        health.client.define_alert_rule(air, {**FORECAST_RULE, "forecast": {**FORECAST_RULE["forecast"], "engine": "athena"}})
    assert no_athena.value.status == 400 and "embedded stack" in no_athena.value.detail
    with pytest.raises(CityShareError) as typo:  # a misspelt column is a typo to correct, not a refusal
        health.client.define_alert_rule(air, {**FORECAST_RULE, "measure": {"aggregate": "mean", "column": "pm2_5"}})
    assert typo.value.status == 400 and "no column pm2_5" in typo.value.detail and "pm25" in typo.value.detail

    rule = health.client.define_alert_rule(air, FORECAST_RULE)
    backtest = rule["backtest"]
    assert backtest["history_version"] == done["version"]
    assert backtest["hits"] + backtest["misses"] == backtest["events"] > 10 and backtest["hit_rate"] > 0.8
    assert backtest["mase"] < 1 and backtest["false_alarms"] < backtest["alarms"]
    assert health.client.alert_rules(air)[0]["backtest"] == backtest  # kept with the rule

    # A new version (the same hours, a far worse morning to come): the rule warns health before it.
    second = generate("air-quality-history", 4 * 862, tmp_path / "next.csv", spike=True, seed=8)
    version = environment.client.wait_for_upload(air, environment.client.upload_file(air, second)["upload_id"], 120)["version"]
    raised = wait_for(health, "alert.raised", dataset_id=air, version=version, timeout=60)
    [firing] = raised["subject"]["alerts"]
    assert firing["group"] == {"station_id": "AQ-001"} and firing["window_start"].endswith("T07:00:00Z")
    assert firing["forecast"]["lead_minutes"] == 240 and firing["forecast"]["last_observed"].endswith("T03:00:00Z")
    assert firing["forecast"]["lower"] < firing["value"] < firing["forecast"]["upper"] and firing["value"] > 75
    assert "forecast" in raised["message"] and "240 min" in raised["message"]
    stored = health.client.alerts(air)
    assert [a["forecast"]["lead_minutes"] for a in stored] == [240]
