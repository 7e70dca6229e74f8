"""DuckDB, sandboxed: the inputs are loaded as tables holding only what the reader may read, then
file and network access are switched off and the configuration locked before any rule or
department SQL runs. A query can therefore see nothing but those tables.

Imported only by the functions that evaluate (analytics, triggers): DuckDB is not on the API path.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
from duckdb.func import SPECIAL

from functions.analytics.models import AlertRule, Backtest, PlaceJoin
from functions.analytics.places import place_sql
from functions.analytics.scope import ISO_FORMAT, SQL_AGGREGATES, SQL_COMPARISONS, ReadScope, filter_sql, quoted
from functions.catalog.models import ColumnSchema, Dataset
from functions.columnar.cells import h3_cell
from functions.core.errors import InvalidRequest, QueryFailed
from functions.core.events import Forecasted

QUERY_SECONDS = 60
# DuckDB result types -> the JSON Schema of a derived dataset's column.
_JSON_TYPES: dict[str, dict[str, Any]] = {
    "VARCHAR": {"type": ["string", "null"]},
    "BOOLEAN": {"type": ["boolean", "null"]},
    "DATE": {"type": ["string", "null"], "format": "date"},
    "TIMESTAMP": {"type": ["string", "null"], "format": "date-time"},
    "TIMESTAMP WITH TIME ZONE": {"type": ["string", "null"], "format": "date-time"},
    "TIME": {"type": ["string", "null"], "format": "time"},
}
_INTEGERS = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT"}
_NUMBERS = {"FLOAT", "DOUBLE", "REAL"}
# Arrow types of curated Parquet (DatasetVersion.output_schema) -> DuckDB column types, for checking
# a query against empty tables before any data is read.
_FROM_ARROW = {
    "string": "VARCHAR",
    "large_string": "VARCHAR",
    "bool": "BOOLEAN",
    "int8": "TINYINT",
    "int16": "SMALLINT",
    "int32": "INTEGER",
    "int64": "BIGINT",
    "float": "FLOAT",
    "double": "DOUBLE",
    "date32[day]": "DATE",
    "time64[us]": "TIME",
}


@dataclass(frozen=True)
class Input:
    """One table of the sandbox: its name, what may be read, and the version's local Parquet files."""

    name: str
    scope: ReadScope
    files: list[Path]
    version: int = 0


def duckdb_type(arrow_type: str) -> str:
    if arrow_type.startswith("timestamp"):
        return "TIMESTAMP WITH TIME ZONE" if "tz=" in arrow_type else "TIMESTAMP"
    if arrow_type.startswith("decimal"):
        return "DOUBLE"
    return _FROM_ARROW.get(arrow_type, "VARCHAR")


def json_schema_type(duck_type: str) -> dict[str, Any]:
    base = duck_type.split("(")[0]
    if base in _INTEGERS:
        return {"type": ["integer", "null"]}
    if base in _NUMBERS or base == "DECIMAL":
        return {"type": ["number", "null"]}
    if base in _JSON_TYPES:
        return dict(_JSON_TYPES[base])
    raise InvalidRequest(f"a result column of type {duck_type} cannot be published; cast it to text or a number")


def connect() -> duckdb.DuckDBPyConnection:
    """A DuckDB connection that never fetches or loads an extension on its own: a query naming
    `s3_secret_access_key` or `read_parquet('s3://...')` would otherwise try to download httpfs."""
    connection = duckdb.connect(
        config={"threads": 2, "memory_limit": "1GB", "autoinstall_known_extensions": False, "autoload_known_extensions": False}
    )
    # h3_cell(latitude, longitude, resolution): the H3 cell's hex id, as a grant's cells and views
    # compute it (DuckDB's h3 extension would be downloaded at run time).
    double, integer, text = (duckdb.sqltype(t) for t in ("DOUBLE", "INTEGER", "VARCHAR"))
    connection.create_function("h3_cell", h3_cell, [double, double, integer], text, null_handling=SPECIAL)
    connection.execute("SET TimeZone = 'UTC'")  # windows and times are UTC's, whatever the host's zone
    return connection


@contextmanager
def sandbox(inputs: list[Input], places: Sequence[PlaceJoin] = ()) -> Iterator[duckdb.DuckDBPyConnection]:
    """A DuckDB connection holding `inputs` as tables (empty when an input has no files), and the
    tables of the place joins over them, then sealed."""
    connection = connect()
    try:
        for source in inputs:
            if source.files:
                definition, params = source_cte(source)
                connection.execute(
                    f"CREATE TABLE {quoted(source.name)} AS WITH {definition} SELECT * FROM {quoted(source.name)}", params
                )
            else:
                definition = ", ".join(f"{quoted(c)} {source.scope.column_types.get(c, 'VARCHAR')}" for c in source.scope.columns)
                connection.execute(f"CREATE TABLE {quoted(source.name)} ({definition})")
        for place in places:
            run(connection, f"CREATE TABLE {quoted(place.table)} AS {place_sql(place)}")
        connection.execute("SET enable_external_access = false")
        connection.execute("SET lock_configuration = true")
        yield connection
    finally:
        connection.close()


def run(
    connection: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None, seconds: float = QUERY_SECONDS
) -> list[tuple[Any, ...]]:
    """Run one query with a time limit (DuckDB has none of its own)."""
    timer = threading.Timer(seconds, connection.interrupt)
    timer.start()
    try:
        return connection.execute(sql, params or []).fetchall()
    except duckdb.InterruptException:
        raise TimeoutError(f"the query took more than {seconds:g} seconds") from None
    except duckdb.Error as error:
        raise QueryFailed(str(error).splitlines()[0], type(error).__name__) from None
    finally:
        timer.cancel()


def single_select(sql: str) -> str:
    """The department's SQL, if it is exactly one SELECT statement (a query, not DESCRIBE, SHOW or
    SUMMARIZE, which DuckDB parses as SELECTs over a SHOW_REF)."""
    _select_tree(sql)
    return sql.strip().rstrip(";")


def _select_tree(sql: str) -> dict[str, Any]:
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as error:
        raise InvalidRequest(f"The query does not parse: {str(error).splitlines()[0]}") from None
    if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
        raise InvalidRequest("A derived dataset is exactly one SELECT statement")
    connection = connect()
    try:
        tree: dict[str, Any] = json.loads(connection.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()[0])  # type: ignore[index]
    finally:
        connection.close()
    if tree.get("error"):
        raise InvalidRequest(f"The query does not parse: {tree.get('error_message', '')}")
    if '"SHOW_REF"' in json.dumps(tree):
        raise InvalidRequest("A derived dataset is exactly one SELECT statement (DESCRIBE, SHOW and SUMMARIZE are not)")
    return tree


def table_references(sql: str) -> set[str]:
    """The tables a query reads, by DuckDB's parser; InvalidRequest for a table function (files, URLs)
    or a name with a schema or catalog. CTEs the query defines itself are not counted."""
    tree = _select_tree(sql)
    tables: set[str] = set()
    defined: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            kind = node.get("type")
            if kind == "TABLE_FUNCTION":
                raise InvalidRequest("A derived dataset reads its inputs only: table functions are refused")
            if kind == "BASE_TABLE":
                if node.get("schema_name") or node.get("catalog_name"):
                    raise InvalidRequest(f"Name inputs without a schema: {node.get('schema_name')}.{node.get('table_name')}")
                tables.add(str(node.get("table_name")))
            for entry in (node.get("cte_map") or {}).get("map", []):
                defined.add(str(entry.get("key")))
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(tree)
    return tables - defined


def guard_tables(sql: str, allowed: set[str]) -> None:
    """Refuse a query that reads any table but its declared inputs (before anything runs)."""
    outside = sorted(table_references(sql) - allowed)
    if outside:
        raise InvalidRequest(f"The query reads tables that are not among its inputs: {', '.join(outside)}")


def result_columns(connection: duckdb.DuckDBPyConnection, sql: str) -> dict[str, str]:
    """The query's result columns and types, checked against the sandbox's tables without running it:
    a table or column outside what the reader may read fails here, before any data is touched."""
    try:
        described = connection.execute(f"DESCRIBE {single_select(sql)}").fetchall()
    except InvalidRequest:
        raise
    except duckdb.Error as error:
        first = str(error).splitlines()[0]
        raise InvalidRequest(f"The query reads something outside what you may read, or is invalid: {first}") from None
    return {str(row[0]): str(row[1]) for row in described}


def derived_rows(connection: duckdb.DuckDBPyConnection, sql: str, columns: dict[str, str]) -> list[tuple[Any, ...]]:
    """Run a derived dataset's query; date-times come back as ISO text (ready for CSV)."""
    selected = ", ".join(
        f"strftime({quoted(c)}, '{ISO_FORMAT}') AS {quoted(c)}" if t.startswith("TIMESTAMP") else quoted(c)
        for c, t in columns.items()
    )
    # The department's SQL runs in the sealed sandbox: it can read only the tables loaded for it.
    return run(connection, f"SELECT {selected} FROM ({single_select(sql)}) AS result")


def rule_sql(rule: AlertRule, table: str = "data", source: tuple[str, list[Any]] | None = None) -> tuple[str, list[Any]]:
    """The rule as one query over `table`: one row per (group, window) that fires. `source`, when
    given, is a leading CTE (and its parameters) that defines `table`. The query's own names hold a
    colon, which no column or dataset name can, so a column called `value` or a dataset called
    `windows` cannot be mistaken for them."""
    groups = [quoted(c) for c in rule.group_by]
    measure = (
        "count(*)" if rule.measure.column is None else f"{SQL_AGGREGATES[rule.measure.aggregate]}({quoted(rule.measure.column)})"
    )
    start, value, threshold_name, hit = '"cs:start"', '"cs:value"', '"cs:threshold"', '"cs:hit"'
    windows, judged, flagged, runs = '"cs:windows"', '"cs:judged"', '"cs:flagged"', '"cs:runs"'
    params: list[Any] = list(source[1]) if source else []
    if rule.window is not None:
        bucket = f"time_bucket(to_minutes(CAST(? AS BIGINT)), {quoted(rule.window.column)})"
        params.append(rule.window.minutes)
        present = f"{quoted(rule.window.column)} IS NOT NULL"
    else:
        bucket, present = "NULL::TIMESTAMP", "true"
    partition = f"PARTITION BY {', '.join(groups)} " if groups else ""
    ordering = f"({partition}ORDER BY {start}"
    if rule.baseline is not None:
        statistic = "median" if rule.baseline.statistic == "median" else "avg"
        frame = f"ROWS BETWEEN {int(rule.baseline.windows)} PRECEDING AND 1 PRECEDING)"
        threshold = f"CAST(? AS DOUBLE) * {statistic}({value}) OVER {ordering} {frame}"
        params.append(rule.baseline.factor)
    else:
        threshold = "CAST(? AS DOUBLE)"
        params.append(rule.threshold)
    streak = int(rule.consecutive)
    span = f"{ordering} ROWS BETWEEN {streak - 1} PRECEDING AND CURRENT ROW)"
    consecutive_in_time = "true"
    if rule.window is not None and streak > 1:
        consecutive_in_time = f'{start} - "cs:first" = to_minutes(CAST(? AS BIGINT))'
    group_select = "".join(f"{g}, " for g in groups)
    # Groups come back as JSON text: typed plainly whatever the column (a date-time is text, and
    # DuckDB's Python conversion of time zones, which needs pytz, is never asked for).
    group_output = "".join(f"CAST(to_json({g}) AS VARCHAR), " for g in groups)
    # Built from validated, quoted names; thresholds and sizes are parameters.
    leading = f"{source[0]}, " if source else ""
    with_windows = f"""
WITH {leading}{windows} AS (
  SELECT {group_select}{bucket} AS {start}, CAST({measure} AS DOUBLE) AS {value}
  FROM {quoted(table)} WHERE {present} GROUP BY ALL
)"""
    order = f"ORDER BY {start} NULLS FIRST{''.join(f', {g}' for g in groups)}"
    if rule.baseline is None and streak == 1:
        # The common case needs no window functions: one aggregate, one comparison.
        sql = f"""{with_windows}
SELECT {group_output}strftime({start}, '{ISO_FORMAT}'), {value}, {threshold} FROM {windows}
WHERE {value} {SQL_COMPARISONS[rule.comparison]} {threshold}
{order}
"""
        return sql, [*params, rule.threshold]
    sql = f"""{with_windows}, {judged} AS (
  SELECT *, {threshold} AS {threshold_name} FROM {windows}
), {flagged} AS (
  SELECT *, coalesce({value} {SQL_COMPARISONS[rule.comparison]} {threshold_name}, false) AS {hit} FROM {judged}
), {runs} AS (
  SELECT *, sum(CAST({hit} AS INTEGER)) OVER {span} AS "cs:hits", count(*) OVER {span} AS "cs:n",
         min({start}) OVER {span} AS "cs:first"
  FROM {flagged}
)
SELECT {group_output}strftime({start}, '{ISO_FORMAT}'), {value}, {threshold_name} FROM {runs}
WHERE {hit} AND "cs:hits" = {streak} AND "cs:n" = {streak} AND {consecutive_in_time}
{order}
"""
    if consecutive_in_time != "true":
        params.append((streak - 1) * rule.window.minutes)  # type: ignore[union-attr]
    return sql, params


@dataclass(frozen=True)
class Firing:
    group: dict[str, Any]
    window_start: str | None
    value: float
    threshold: float
    forecast: Forecasted | None = None


def source_cte(source: Input) -> tuple[str, list[Any]]:
    """`name AS (<what the scope allows> FROM read_parquet(files) WHERE <scope filter>)`, with parameters."""
    where, params = filter_sql(source.scope.row_filter) if source.scope.row_filter else ("true", [])
    return f"{quoted(source.name)} AS ({source.scope.query('read_parquet(?)', where)})", [[str(f) for f in source.files], *params]


def evaluate_files(rule: AlertRule, source: Input) -> list[Firing]:
    """Evaluate a rule straight over a version's Parquet files, within the reader's scope. No sandbox
    is needed (the SQL is built by CityShare from validated names, never taken from a department)
    and none is paid for: DuckDB scans only the columns and row groups the query needs."""
    connection = connect()
    try:
        return evaluate(connection, rule, source.name, source_cte(source))
    finally:
        connection.close()


def evaluate(
    connection: duckdb.DuckDBPyConnection,
    rule: AlertRule,
    table: str = "data",
    source: tuple[str, list[Any]] | None = None,
    reduced: bool = False,
) -> list[Firing]:
    """`reduced`: `table` holds a forecast rule's windows already (reduced_series)."""
    if rule.forecast is not None:
        from functions.analytics.forecast import firing_sql

        sql, params = firing_sql(rule, table, source, reduced)
    else:
        sql, params = rule_sql(rule, table, source)
    rows = run(connection, sql, params, rule.forecast.max_seconds if rule.forecast is not None else QUERY_SECONDS)
    firings = []
    for row in rows:
        group = {name: None if value is None else json.loads(value) for name, value in zip(rule.group_by, row, strict=False)}
        window_start, value, threshold, *predicted = row[len(rule.group_by) :]
        forecast = None
        if predicted:
            lower, upper, lead, last_observed = predicted
            forecast = Forecasted(
                lower=float(lower), upper=float(upper), lead_minutes=int(lead), last_observed=str(last_observed)
            )
        firings.append(Firing(group, window_start, float(value), float(threshold), forecast))
    return firings


def backtest_files(rule: AlertRule, source: Input) -> Backtest:
    """A forecast rule's backtest over a version's files, within the reader's scope."""
    connection = connect()
    try:
        return _backtest(connection, rule, source.name, source_cte(source), source.version)
    finally:
        connection.close()


REDUCED = "cs:reduced"


@contextmanager
def reduced_series(rule: AlertRule, windows: Path, types: dict[str, str]) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection holding a forecast rule's windows as Athena reduced them (its result CSV, text),
    typed as the rows were (`types`: DuckDB types of the group columns, CityShare's own names)."""
    groups = "".join(f"CAST({quoted(g)} AS {types.get(g, 'VARCHAR')}) AS {quoted(g)}, " for g in rule.group_by)
    connection = connect()
    try:
        try:
            # A quoted empty field is an empty text, not NULL: Athena writes NULL unquoted.
            connection.execute(
                f'CREATE TEMP TABLE {quoted(REDUCED)} AS SELECT {groups}CAST("cs:n" AS BIGINT) AS "cs:n", '
                'CAST("cs:value" AS DOUBLE) AS "cs:value" '
                "FROM read_csv(?, header = true, all_varchar = true, allow_quoted_nulls = false)",
                [str(windows)],
            )
        except duckdb.Error as failed:
            raise QueryFailed(f"Athena's windows could not be read: {failed}", type(failed).__name__) from None
        yield connection
    finally:
        connection.close()


def group_types(rule: AlertRule, dataset: Dataset, scope: ReadScope) -> dict[str, str]:
    """The DuckDB types of a rule's group columns as its scope reads them (an aggregated grant's
    group_size is a number, its cells text), for the windows Athena answers as text."""
    declared = {name: declared_type(column) for name, column in dataset.table_schema.properties.items()}
    typed = scope.typed(declared).column_types
    return {g: typed.get(g, "VARCHAR") for g in rule.group_by}


def evaluate_series(rule: AlertRule, windows: Path, types: dict[str, str]) -> list[Firing]:
    """A forecast rule's firings, fitted on the windows Athena reduced."""
    with reduced_series(rule, windows, types) as connection:
        return evaluate(connection, rule, REDUCED, reduced=True)


def backtest_series(
    rule: AlertRule, windows: Path, types: dict[str, str], version: int, seconds: float | None = None
) -> Backtest:
    """A forecast rule's backtest, fitted on the windows Athena reduced, within `seconds` (what is
    left of the rule's budget once Athena answered)."""
    with reduced_series(rule, windows, types) as connection:
        return _backtest(connection, rule, REDUCED, None, version, reduced=True, seconds=seconds)


def _backtest(
    connection: duckdb.DuckDBPyConnection,
    rule: AlertRule,
    table: str,
    source: tuple[str, list[Any]] | None,
    version: int,
    reduced: bool = False,
    seconds: float | None = None,
) -> Backtest:
    from functions.analytics.forecast import backtest_of, backtest_sql

    sql, params = backtest_sql(rule, table, source, reduced)
    budget = rule.forecast.max_seconds if rule.forecast else QUERY_SECONDS
    seconds = budget if seconds is None else seconds
    try:
        rows = run(connection, sql, params, seconds)
    except TimeoutError:
        raise InvalidRequest(
            f"The forecast's backtest did not finish within its {budget} seconds (max_seconds): "
            "fewer groups, a longer window or a shorter history would fit"
        ) from None
    except QueryFailed as failed:
        raise InvalidRequest(f"The forecast's backtest failed on the history: {failed}") from None
    return backtest_of(rows[0]).model_copy(update={"history_version": version or None})


_JSON_TO_DUCKDB = {"string": "VARCHAR", "integer": "BIGINT", "number": "DOUBLE", "boolean": "BOOLEAN"}
_TEMPORAL = {"date-time": "TIMESTAMP WITH TIME ZONE", "date": "DATE", "time": "TIME"}


def declared_type(column: ColumnSchema) -> str:
    """The DuckDB type of a column as its schema declares it."""
    kinds = column.kinds()
    return _TEMPORAL.get(column.format or "", _JSON_TO_DUCKDB.get(kinds[0] if kinds else "string", "VARCHAR"))


def alert_id(rule_id: str, dataset_id: str, version: int, firing: Firing) -> str:
    """The same firing of the same rule on the same version always has the same id (dedupe)."""
    identity = json.dumps([rule_id, dataset_id, version, firing.group, firing.window_start], sort_keys=True, default=str)
    return "a" + hashlib.sha256(identity.encode()).hexdigest()[:24]
