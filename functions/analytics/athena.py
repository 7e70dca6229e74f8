"""Derived datasets too large for DuckDB on Lambda, run as Athena queries over the Glue tables of
the inputs' exact versions. The definer's SQL is wrapped, never edited: each input it names is a CTE
that selects only the granted columns and rows of its version table, and the SQL was checked to read
no other table. Filter values are written as escaped literals (Athena's parameters are untyped)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from functions.analytics.scope import ReadScope, filter_sql, quoted
from functions.core import aws

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


def wrapped(sql: str, ctes: list[str]) -> str:
    return f"WITH {', '.join(ctes)}\nSELECT * FROM (\n{sql.strip().rstrip(';')}\n) AS result"


class AthenaRunner:
    athena = aws.LazyClient("athena")

    def __init__(self, workgroup: str, database: str, athena: Any = None) -> None:
        self._workgroup = workgroup
        self._database = database
        self._athena = athena

    def run(self, query: str) -> tuple[list[str], list[list[str | None]]]:
        """The query's header and rows (Athena returns text), after it succeeded."""
        started = self.athena.start_query_execution(
            QueryString=query, WorkGroup=self._workgroup, QueryExecutionContext={"Database": self._database}
        )["QueryExecutionId"]
        deadline = time.monotonic() + TIMEOUT_SECONDS
        while True:
            status = self.athena.get_query_execution(QueryExecutionId=started)["QueryExecution"]["Status"]
            if status["State"] == "SUCCEEDED":
                break
            if status["State"] in ("FAILED", "CANCELLED"):
                raise RuntimeError(f"Athena query {started} {status['State']}: {status.get('StateChangeReason', '')[:500]}")
            if time.monotonic() > deadline:
                self.athena.stop_query_execution(QueryExecutionId=started)
                raise TimeoutError(f"Athena query {started} did not finish in {TIMEOUT_SECONDS} s")
            time.sleep(POLL_SECONDS)
        rows = list(self._rows(started))
        header = [str(v) for v in rows[0]] if rows else []
        return header, rows[1:]

    def _rows(self, execution: str) -> Iterator[list[str | None]]:
        for page in self.athena.get_paginator("get_query_results").paginate(QueryExecutionId=execution):
            for row in page["ResultSet"]["Rows"]:
                yield [cell.get("VarCharValue") for cell in row["Data"]]
