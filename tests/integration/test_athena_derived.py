"""The Athena path of derived datasets against moto: each version a Glue table, the definer's SQL
wrapped in grant-restricted CTEs over exact version tables, the result published through landing/.
moto does not execute Athena SQL: the query text CityShare sends is what is checked, and the rows
come from moto's queue of prepared results."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from moto.athena.models import QueryResults, athena_backends
from moto.core import DEFAULT_ACCOUNT_ID

from functions.analytics.engine import Input, backtest_files, evaluate_files
from functions.analytics.forecast import series_sql
from functions.analytics.models import AlertRule, AlertRuleCreate, DerivedDataset
from functions.analytics.repository import AnalyticsRepository
from functions.analytics.scope import ReadScope
from functions.analytics.triggers import TriggerService
from functions.catalog.models import Dataset
from functions.catalog.repository import CatalogRepository
from functions.core.settings import Settings, get_settings
from functions.handlers import services, triggers, wiring
from functions.ingest.glue import GlueTables
from functions.ingest.models import DatasetVersion
from functions.sharing.models import Grant
from functions.sharing.repository import SharingRepository
from infra.local.provision import REGION
from tests.datasets import city_schema
from tests.forecast_data import daily_peaks, forecast_rule
from tests.integration.conftest import Aws, member
from tests.integration.test_analytics_triggers import publish


@pytest.fixture
def athena_settings(moto_aws: Aws, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    moto_aws.client("athena").create_work_group(
        Name="it-derived",
        Configuration={"ResultConfiguration": {"OutputLocation": f"s3://{settings.data_bucket}/athena-results/"}},
    )
    monkeypatch.setenv("QUERY_WORKGROUP", "it-derived")
    # Queries run as the query role, in a session limited to their inputs (moto issues it; the
    # policy it carries is what the test reads).
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": "123456789012"}, "Action": "sts:AssumeRole"}],
    }
    role = moto_aws.client("iam").create_role(RoleName="it-query", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    monkeypatch.setenv("QUERY_ROLE_ARN", role)
    get_settings.cache_clear()
    triggers.triggers.cache_clear()
    wiring.athena.cache_clear()
    yield get_settings()
    triggers.triggers.cache_clear()
    wiring.athena.cache_clear()


def version(dataset_id: str, number: int, owner: str) -> DatasetVersion:
    return DatasetVersion.model_validate(
        {
            "dataset_id": dataset_id,
            "version": number,
            "owner": owner,
            "upload_id": "u" + "0" * 32,
            "created_at": "t",
            "rows": 10,
            "files": [f"curated/{dataset_id}/u{'0' * 32}/part-00000.parquet"],
            "bytes": 100,
            "content_sha256": "x",
            "profile": {"rows": 10, "columns": {}},
            "report": {},
            "output_schema": {
                "segment_id": "string",
                "district": "string",
                "measured_at": "timestamp[us, tz=UTC]",
                "avg_speed_kmh": "double",
                "camera_id": "string",
            },
        }
    )


def test_each_version_is_a_glue_table_at_its_curated_prefix(moto_aws: Aws, settings: Settings) -> None:
    tables = GlueTables(settings.query_catalog, settings.data_bucket)
    assert tables.register(version("traffic-flow", 3, "transport")) == "traffic_flow__v3"
    assert tables.register(version("traffic-flow", 3, "transport")) == "traffic_flow__v3"  # a redelivery overwrites
    table = moto_aws.client("glue").get_table(DatabaseName=settings.query_catalog, Name="traffic_flow__v3")["Table"]
    descriptor = table["StorageDescriptor"]
    assert descriptor["Location"] == f"s3://{settings.data_bucket}/curated/traffic-flow/u{'0' * 32}/"
    assert {c["Name"]: c["Type"] for c in descriptor["Columns"]}["measured_at"] == "timestamp"
    assert table["Parameters"]["cityshare_version"] == "3"


def test_an_athena_derived_dataset_reads_only_the_granted_part_of_exact_versions(
    moto_aws: Aws, athena_settings: Settings
) -> None:
    settings = athena_settings
    catalog = CatalogRepository(settings.catalog_table)
    key = f"curated/traffic-flow/u{'0' * 32}/part-00000.parquet"
    for dataset_id, owner, schema in (
        ("traffic-flow", "transport", city_schema("traffic-flow")),
        (
            "flow-by-district",
            "environment",
            {
                "type": "object",
                "properties": {"district": {"type": ["string", "null"]}, "mean_speed": {"type": ["number", "null"]}},
            },
        ),
    ):
        catalog.create(
            Dataset.model_validate(
                {
                    "dataset_id": dataset_id,
                    "title": dataset_id,
                    "classification": "confidential",
                    "schema": schema,
                    "owner": owner,
                    "created_at": "t",
                    "updated_at": "t",
                    "created_by": "p",
                    **({"latest_version": 7, "latest_files": [key], "latest_bytes": 100} if owner == "transport" else {}),
                }
            )
        )
    SharingRepository(settings.sharing_table).put_grant(
        Grant.model_validate(
            {
                "grant_id": "g" + "5" * 24,
                "dataset_id": "traffic-flow",
                "owner": "transport",
                "grantee_department": "environment",
                "purpose": "Congestion per district",
                "purpose_category": "planning",
                "created_by": "s",
                "created_at": "t",
                "terms": {
                    "columns": ["district", "measured_at", "avg_speed_kmh", "camera_id"],
                    "masked_columns": ["camera_id"],
                    "row_filter": {
                        "all": [
                            {"condition": {"column": "district", "op": "in", "value": ["Centre", "O'Brien Park"]}},
                            {"condition": {"column": "measured_at", "op": "ge", "value": "2026-11-01T00:00:00Z"}},
                        ]
                    },
                },
            }
        )
    )
    sql = "SELECT district, avg(avg_speed_kmh) AS mean_speed FROM traffic_flow GROUP BY district"
    AnalyticsRepository(settings.analytics_table).put_derived(
        DerivedDataset(
            dataset_id="flow-by-district",
            title="Flow",
            inputs=["traffic-flow"],
            sql=sql,
            engine="athena",
            result_columns={"district": "string", "mean_speed": "number"},
            owner="environment",
            classification="confidential",
            created_by="p",
            created_at="t",
            columns={"district": "VARCHAR", "mean_speed": "DOUBLE"},
        )
    )
    backend = athena_backends[DEFAULT_ACCOUNT_ID][REGION]
    cells: list[list[Any]] = [["district", "mean_speed"], ["Centre", "21.5"], ["O'Brien Park", "33.0"]]
    backend.query_results_queue.append(
        QueryResults(
            rows=[{"Data": [{"VarCharValue": v} for v in row]} for row in cells],
            column_info=[{"Name": "district", "Type": "varchar"}, {"Name": "mean_speed", "Type": "double"}],
        )
    )
    service: TriggerService = triggers.triggers()
    assert service._athena is not None
    sessions = AssumedRoles(moto_aws.client("sts"))
    service._athena._sts = sessions
    assert service._rebuild(AnalyticsRepository(settings.analytics_table).derived("flow-by-district"))  # type: ignore[arg-type]

    (execution,) = backend.executions.values()
    query = execution.query
    assert f'FROM "{settings.query_catalog}"."traffic_flow__v7"' in query  # the exact version's table
    assert 'SELECT "district", "measured_at", "avg_speed_kmh" FROM' in query  # granted columns, the masked one left out
    assert "'O''Brien Park'" in query and "from_iso8601_timestamp('2026-11-01T00:00:00Z')" in query
    assert query.rstrip().endswith(") AS result") and sql in query
    assert execution.workgroup.name == "it-derived"
    listed = moto_aws.client("s3").list_objects_v2(Bucket=settings.data_bucket, Prefix="landing/environment/flow-by-district/")
    (landed,) = listed["Contents"]
    body = moto_aws.client("s3").get_object(Bucket=settings.data_bucket, Key=landed["Key"])["Body"].read().decode()
    assert body == "district,mean_speed\nCentre,21.5\nO'Brien Park,33.0\n"
    # The session the query ran in could read that version's folder, its table and its owner's key, nothing else.
    (assumed,) = sessions.assumed
    assert assumed["RoleArn"] == settings.query_role and len(assumed["Policy"]) <= 2048
    statements = json.loads(assumed["Policy"])["Statement"]
    reads = next(s for s in statements if s["Action"] == "s3:GetObject")["Resource"]
    assert sorted(reads) == sorted(
        [
            f"arn:aws:s3:::{settings.data_bucket}/athena-results/*",
            f"arn:aws:s3:::{settings.data_bucket}/curated/traffic-flow/u{'0' * 32}/*",
        ]
    )
    tables = next(s for s in statements if "glue:GetTable" in s["Action"])["Resource"]
    assert tables == [
        "arn:aws:glue:*:*:catalog",
        f"arn:aws:glue:*:*:database/{settings.query_catalog}",
        f"arn:aws:glue:*:*:table/{settings.query_catalog}/traffic_flow__v7",
    ]  # a table's read is authorised on its catalog and database too; no other table
    keys = next(s for s in statements if s["Action"] == "kms:Decrypt" and "Condition" in s)
    assert keys["Condition"] == {"StringEquals": {"aws:ResourceTag/cityshare:department": ["transport"]}}


class AssumedRoles:
    """STS, recording each AssumeRole call (moto's answers it)."""

    def __init__(self, sts: Any) -> None:
        self._sts = sts
        self.assumed: list[dict[str, Any]] = []

    def assume_role(self, **request: Any) -> Any:
        self.assumed.append(request)
        return self._sts.assume_role(**request)


def test_a_forecast_rule_on_athena_is_fitted_on_the_windows_athena_reduced(
    moto_aws: Aws, athena_settings: Settings, tmp_path: Path
) -> None:
    """engine athena: the rows never reach a function; Athena reduces them to each group's windows
    (as the rule's reader may read them), and the backtest and each new version's fit run on those.
    Fitted on what Athena answers, the backtest and the alerts are what the rows give in DuckDB."""
    settings = athena_settings
    event = publish(moto_aws, settings, "air", "environment", 1, daily_peaks(), tags=[])
    local = tmp_path / "part-00000.parquet"
    moto_aws.client("s3").download_file(settings.data_bucket, event.files[0], str(local))
    body = {**FORECAST, "forecast": {**FORECAST["forecast"], "engine": "athena"}}
    defined = AlertRuleCreate.model_validate(body)
    on_rows = AlertRule.model_validate({**FORECAST, **IDENTITY})
    scope = ReadScope("air", ["station_id", "district", "measured_at", "pm25"])
    # What Athena answers (moto runs no SQL): the same reduction, done here by DuckDB, as text.
    windows = duckdb.sql(series_sql(on_rows, "data").replace('FROM "data"', f"FROM read_parquet('{local}')")).fetchall()
    backend = athena_backends[DEFAULT_ACCOUNT_ID][REGION]
    for _ in range(2):  # the backtest's query, then the new version's
        cells = [["station_id", "cs:n", "cs:value"], *([str(v) for v in row] for row in windows)]
        backend.query_results_queue.append(
            QueryResults(rows=[{"Data": [{"VarCharValue": v} for v in row]} for row in cells], column_info=[])
        )
    sessions = AssumedRoles(moto_aws.client("sts"))
    services.analytics.cache_clear()
    analytics = services.analytics()
    assert analytics._athena is not None
    analytics._athena._sts = sessions
    rule = analytics.define_rule(member("environment", "p"), "air", defined)  # "p": a principal with a key

    expected = backtest_files(on_rows, Input("data", scope, [local], 1))
    assert rule.backtest == expected and expected.alarms > 0
    (execution,) = backend.executions.values()
    assert 'to_unixtime("measured_at")' in execution.query and f'"{settings.query_catalog}"."air__v1"' in execution.query
    assert "epoch(" not in execution.query and "GROUP BY ALL" not in execution.query  # DuckDB's, not Athena's

    triggers.triggers.cache_clear()
    fired = triggers.triggers()
    assert fired._athena is not None
    fired._athena._sts = sessions
    alerts = fired.evaluate_rules(event)
    on_duckdb = evaluate_files(on_rows, Input("data", scope, [local]))
    assert [(a.group, a.window_start, a.value) for a in alerts] == [(f.group, f.window_start, f.value) for f in on_duckdb]
    assert alerts and all(a.forecast is not None for a in alerts)
    assert [a["RoleArn"] for a in sessions.assumed] == [settings.query_role] * 2  # each query in a session of its inputs
    services.analytics.cache_clear()


FORECAST = forecast_rule(12)
IDENTITY = {"rule_id": "x" + "2" * 24, "dataset_id": "air", "owner": "environment", "created_by": "p", "created_at": "t"}
