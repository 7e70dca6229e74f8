"""Derived datasets too large for DuckDB on Lambda, run as Athena queries over the Glue tables of
the inputs' exact versions. The definer's SQL is wrapped, never edited: each input it names is a CTE
that selects only the granted columns and rows of its version table, and the SQL was checked to read
no other table. Filter values are written as escaped literals (Athena's parameters are untyped).

In AWS each query runs as the query role, in a session whose policy names the query's inputs alone
(their version tables, the folders of their files, their owners' keys): what the wrapper promises,
AWS enforces. Without a role (tests against moto) the process's own client runs it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from functions.analytics.models import AlertRule
from functions.analytics.scope import ReadScope, filter_sql, quoted
from functions.catalog.models import Dataset
from functions.core import aws
from functions.core.errors import QueryFailed
from functions.core.scoped import DEPARTMENT_TAG
from functions.ingest.glue import version_table

POLL_SECONDS = 1.0
TIMEOUT_SECONDS = 240


def literal(value: Any, temporal: bool = False) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(float(value)) if isinstance(value, float) else str(int(value))
    text = "'" + str(value).replace("'", "''") + "'"
    return f"from_iso8601_timestamp({text})" if temporal else text


def input_cte(name: str, database: str, table: str, scope: ReadScope, temporal: set[str]) -> str:
    where = "true"
    if scope.row_filter is not None:
        where, _ = filter_sql(scope.row_filter, lambda column, value: literal(value, column in temporal))
    return f"{quoted(name)} AS ({scope.query(f'{quoted(database)}.{quoted(table)}', where, 'athena')})"


def version_input(
    name: str, database: str, dataset: Dataset, scope: ReadScope, version: int, files: Sequence[str]
) -> tuple[str, QueryInput]:
    """A version of `dataset` as a query's input `name`: its CTE (what the scope allows of its Glue
    table) and what the query's session may read for it (the table, its files' folders, the owner's key)."""
    temporal = {n for n, c in dataset.table_schema.properties.items() if c.format in ("date-time", "date")}
    table = version_table(dataset.dataset_id, version)
    folders = tuple(sorted({file.rsplit("/", 1)[0] for file in files}))
    return input_cte(name, database, table, scope, temporal), QueryInput(dataset.owner, table, folders)


def forecast_windows(
    runner: AthenaRunner,
    rule: AlertRule,
    database: str,
    dataset: Dataset,
    scope: ReadScope,
    version: int,
    files: Sequence[str],
    path: Path,
    timeout: float,
) -> Path:
    """A forecast rule's windows of a version, reduced by Athena from the rows the scope allows, as
    a CSV file for the fit (functions/analytics/forecast.py series_sql)."""
    from functions.analytics.forecast import series_sql

    cte, query_input = version_input("data", database, dataset, scope, version, files)
    return runner.run_to_csv(wrapped(series_sql(rule, "data", "athena"), [cte]), [query_input], path, timeout)


def wrapped(sql: str, ctes: list[str]) -> str:
    return f"WITH {', '.join(ctes)}\nSELECT * FROM (\n{sql.strip().rstrip(';')}\n) AS result"


@dataclass(frozen=True)
class QueryInput:
    """What one input of a query may be read as: its version's Glue table and files, its owner's key."""

    owner: str
    table: str
    folders: tuple[str, ...]  # the data bucket folders holding the version's files


# AWS refuses a session policy over 2,048 characters of plain text.
MAX_SESSION_POLICY_CHARACTERS = 2048


def session_policy(
    bucket: str,
    database: str,
    inputs: Sequence[QueryInput],
    platform_key: str = "*",
    exact: bool = True,
    partition: str = "aws",
) -> dict[str, Any]:
    """The query session's policy: the query role's permissions narrowed to these inputs (a session
    policy only narrows: where it allows `*`, the role's own policy bounds it). `exact`: the folders
    of the input versions' files; otherwise the inputs' datasets' folders (a shorter policy)."""
    if exact:
        folders = {folder.strip("/") for item in inputs for folder in item.folders}
    else:
        folders = {"/".join(folder.strip("/").split("/")[:3]) for item in inputs for folder in item.folders}
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": [
                    "athena:*",
                    "glue:GetDatabase",
                    "s3:ListBucket",
                    "s3:GetBucketLocation",
                    "s3:PutObject",
                    "kms:GenerateDataKey",
                ],
                "Resource": "*",
            },
            {
                "Effect": "Allow",
                "Action": ["glue:GetTable", "glue:GetPartitions"],
                # Glue authorises a table's read on its catalog and database too.
                "Resource": [
                    f"arn:{partition}:glue:*:*:catalog",
                    f"arn:{partition}:glue:*:*:database/{database}",
                    *(f"arn:{partition}:glue:*:*:table/{database}/{item.table}" for item in inputs),
                ],
            },
            {
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": [f"arn:{partition}:s3:::{bucket}/{folder}/*" for folder in sorted(folders | {"athena-results"})],
            },
            {
                "Effect": "Allow",
                "Action": "kms:Decrypt",
                "Resource": "*",
                "Condition": {"StringEquals": {f"aws:ResourceTag/{DEPARTMENT_TAG}": sorted({i.owner for i in inputs})}},
            },
            {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": platform_key},
        ],
    }


def _athena_csv(value: str | None) -> str:
    """A field as Athena writes its result files: text quoted, NULL an empty field without quotes
    (so an empty text and a NULL stay apart)."""
    return "" if value is None else '"' + value.replace('"', '""') + '"'


def packed(policy: dict[str, Any]) -> str:
    return json.dumps(policy, separators=(",", ":"))


class AthenaRunner:
    athena = aws.LazyClient("athena")
    sts = aws.LazyClient("sts")
    s3 = aws.LazyClient("s3")

    def __init__(
        self,
        workgroup: str,
        database: str,
        bucket: str = "",
        role_arn: str = "",
        platform_key: str = "*",
        athena: Any = None,
        sts: Any = None,
    ) -> None:
        self._workgroup = workgroup
        self._database = database
        self._bucket = bucket
        self._role_arn = role_arn
        self._platform_key = platform_key
        self._athena = athena
        self._sts = sts

    def _client_for(self, inputs: Sequence[QueryInput]) -> Any:
        """Athena as the query role, in a session limited to `inputs` (the process's client without a role)."""
        return self._clients_for(inputs, ("athena",))[0]

    def _clients_for(self, inputs: Sequence[QueryInput], services: Sequence[str]) -> list[Any]:
        """Clients of `services` in one session of the query role limited to `inputs`."""
        if not self._role_arn:
            return [self.s3 if service == "s3" else self.athena for service in services]
        partition = self._role_arn.split(":")[1]
        exact = packed(session_policy(self._bucket, self._database, inputs, self._platform_key, True, partition))
        coarse = packed(session_policy(self._bucket, self._database, inputs, self._platform_key, False, partition))
        # Many inputs: their datasets' folders rather than their versions' (AWS also refuses a
        # policy whose packed form is too large, which it may judge before 2,048 characters).
        candidates = [p for p in (exact, coarse) if len(p) <= MAX_SESSION_POLICY_CHARACTERS]
        if not candidates:
            raise RuntimeError(f"{len(inputs)} inputs are more than one Athena query session can be limited to")
        for number, policy in enumerate(candidates, 1):
            try:
                credentials = self.sts.assume_role(
                    RoleArn=self._role_arn, RoleSessionName="cityshare-query", DurationSeconds=900, Policy=policy
                )["Credentials"]
                break
            except self.sts.exceptions.PackedPolicyTooLargeException:
                if number == len(candidates):
                    raise
        session = aws.new_session(
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
        )
        return [aws.client_of(session, service) for service in services]

    def run(self, query: str, inputs: Sequence[QueryInput] = ()) -> tuple[list[str], list[list[str | None]]]:
        """The query's header and rows (Athena returns text), after it succeeded."""
        athena = self._client_for(inputs)
        started, _ = self._finished(athena, query, TIMEOUT_SECONDS)
        rows = list(self._rows(athena, started))
        header = [str(v) for v in rows[0]] if rows else []
        return header, rows[1:]

    def run_to_csv(self, query: str, inputs: Sequence[QueryInput], path: Path, timeout: float = TIMEOUT_SECONDS) -> Path:
        """The query's result as a CSV file at `path` (a header, then text): the file Athena wrote,
        fetched whole (many rows: paging them through the API would take a call per 1,000)."""
        athena, s3 = self._clients_for(inputs, ("athena", "s3"))
        started, location = self._finished(athena, query, timeout)
        if location.startswith("s3://"):
            bucket, key = location.removeprefix("s3://").split("/", 1)
            s3.download_file(bucket, key, str(path))
            return path
        with path.open("w", encoding="utf-8") as out:  # no result file (moto): the rows, paged
            for row in self._rows(athena, started):
                out.write(",".join(_athena_csv(value) for value in row) + "\n")
        return path

    def _finished(self, athena: Any, query: str, timeout: float) -> tuple[str, str]:
        """Start the query and wait for it: (its id, where its result file is, if Athena says)."""
        started = athena.start_query_execution(
            QueryString=query, WorkGroup=self._workgroup, QueryExecutionContext={"Database": self._database}
        )["QueryExecutionId"]
        deadline = time.monotonic() + timeout
        while True:
            execution = athena.get_query_execution(QueryExecutionId=started)["QueryExecution"]
            status = execution["Status"]
            if status["State"] == "SUCCEEDED":
                return started, str(execution.get("ResultConfiguration", {}).get("OutputLocation", ""))
            if status["State"] in ("FAILED", "CANCELLED"):
                # The data's or the definition's doing (a value Athena cannot read, its scan limit): the
                # same on every retry, so it is skipped like any failing query, never retried.
                reason = f"Athena query {started} {status['State']}: {status.get('StateChangeReason', '')[:500]}"
                raise QueryFailed(reason, f"Athena {status['State']}")
            if time.monotonic() > deadline:
                athena.stop_query_execution(QueryExecutionId=started)
                raise TimeoutError(f"Athena query {started} did not finish in {timeout} s")
            time.sleep(min(POLL_SECONDS, max(deadline - time.monotonic(), 0.05)))

    @staticmethod
    def _rows(athena: Any, execution: str) -> Iterator[list[str | None]]:
        for page in athena.get_paginator("get_query_results").paginate(QueryExecutionId=execution):
            for row in page["ResultSet"]["Rows"]:
                yield [cell.get("VarCharValue") for cell in row["Data"]]
