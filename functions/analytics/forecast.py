"""Forecast rules: each series of a rule's windows (one per group) forecast a few windows ahead, in
SQL, by a seasonal profile with an AR(1) correction, and its backtest over the history.

The model, per series, at an origin window o (the last one observed):
- profile(t): the mean of the same phase of the season (the hour of the week, or of the day) over
  the last `history` seasons, all before t;
- r(o) = y(o) - profile(o), the residual now, which decays towards the profile at the rate phi
  fitted over the last `history` seasons (least squares of r(t) on r(t-1), held within +-0.98);
- forecast(o + k) = profile(o + k) + phi^k * r(o), with a normal interval whose variance is the
  innovations' (var(r) * (1 - phi^2)) summed over k steps.

Why SQL and not a forecasting library: the libraries compared (README, Analytics triggers) bring
scipy, pandas, statsmodels or numba into a function whose layer holds DuckDB alone, and take
seconds to import; this model beats the seasonal-naive baseline on the series measured
(benchmarks/forecast.py) and, being SQL, runs wherever the rule runs, with nothing to import.
"""

from __future__ import annotations

from statistics import NormalDist
from typing import Any

from functions.analytics.models import SEASON_MINUTES, AlertRule, Backtest
from functions.analytics.scope import ISO_FORMAT, SQL_AGGREGATES, SQL_COMPARISONS, quoted

MAX_WINDOWS = 10_000
PHI_LIMIT = 0.98


def series_sql(rule: AlertRule, table: str, dialect: str = "duckdb") -> str:
    """Each group's windows, reduced from the rows: the groups, "cs:n" (the window's number, counted
    from the epoch: the n-th window starts at n x width seconds, the same for every group, version
    and engine) and "cs:value" (the rule's measure). The one step that reads every row: on Athena for
    a rule whose forecast's `engine` is athena (the rows never reach the function, the windows do)."""
    assert rule.window is not None
    groups = [quoted(c) for c in rule.group_by]
    measure = (
        "count(*)" if rule.measure.column is None else f"{SQL_AGGREGATES[rule.measure.aggregate]}({quoted(rule.measure.column)})"
    )
    seconds = "to_unixtime" if dialect == "athena" else "epoch"
    window = f"CAST(floor({seconds}({quoted(rule.window.column)}) / {int(rule.window.minutes) * 60}) AS BIGINT)"
    return (
        f'SELECT {"".join(f"{g}, " for g in groups)}{window} AS "cs:n", CAST({measure} AS DOUBLE) AS "cs:value"\n'
        f"FROM {quoted(table)} WHERE {quoted(rule.window.column)} IS NOT NULL GROUP BY {', '.join([*groups, window])}"
    )


def _fitted(
    rule: AlertRule, table: str, source: tuple[str, list[Any]] | None, latest_only: bool = False, reduced: bool = False
) -> tuple[str, list[Any]]:
    """CTEs up to "cs:fitted": every window of each series on a regular grid (its horizon after its
    last window included), with the profile, the residual, phi and the innovations' variance.
    `reduced`: `table` holds the series already (series_sql's columns, as Athena computed them)."""
    assert rule.forecast is not None and rule.window is not None
    terms, minutes = rule.forecast, rule.window.minutes
    season = SEASON_MINUTES[terms.season] // minutes
    groups = [quoted(c) for c in rule.group_by]
    params: list[Any] = list(source[1]) if source else []
    leading = f"{source[0]}, " if source else ""
    group_select = "".join(f"{g}, " for g in groups)
    span_groups = "".join(f"s.{g}, " for g in groups)
    same_series = " AND ".join([*(f"v.{g} IS NOT DISTINCT FROM s.{g}" for g in groups), 'v."cs:n" = g."cs:n"'])
    by_phase = f'PARTITION BY "cs:id", "cs:n" % {season}'
    latest = ' AND "cs:n" = "cs:last"' if latest_only else ""
    # At most this many of a group's windows, the latest (a stray reading from 1970 does not make a
    # grid of decades): the whole history the fit needs, eight times over, or 10,000 windows.
    most = max(8 * (int(terms.history) + 1) * season, MAX_WINDOWS)
    # Built from validated, quoted names and integers.
    series = f"SELECT * FROM {quoted(table)}" if reduced else series_sql(rule, table)
    sql = f"""
WITH {leading}"cs:series" AS (
  {series}
), "cs:span" AS (
  SELECT {group_select}greatest(min("cs:n"), max("cs:n") - {most}) AS "cs:first", max("cs:n") AS "cs:last",
         row_number() OVER () AS "cs:id"
  FROM "cs:series" GROUP BY ALL
), "cs:grid" AS (
  SELECT {span_groups}s."cs:id", g."cs:n", s."cs:last", v."cs:value"
  FROM "cs:span" AS s CROSS JOIN generate_series(s."cs:first", s."cs:last" + {int(terms.horizon)}) AS g("cs:n")
  LEFT JOIN "cs:series" AS v ON {same_series}
), "cs:profiled" AS (
  SELECT *, avg("cs:value") OVER ({by_phase} ORDER BY "cs:n"
                                  RANGE BETWEEN {int(terms.history) * season} PRECEDING AND 1 PRECEDING) AS "cs:profile"
  FROM "cs:grid"
), "cs:residuals" AS (
  SELECT *, "cs:value" - "cs:profile" AS "cs:r",
         lag("cs:value" - "cs:profile") OVER (PARTITION BY "cs:id" ORDER BY "cs:n") AS "cs:r1"
  FROM "cs:profiled"
), "cs:fitted" AS (
  SELECT *,
    least({PHI_LIMIT}, greatest(-{PHI_LIMIT}, coalesce(
      sum("cs:r" * "cs:r1") OVER "cs:past"
        / nullif(sum(CASE WHEN "cs:r" IS NOT NULL THEN "cs:r1" * "cs:r1" END) OVER "cs:past", 0),
      0))) AS "cs:phi",
    coalesce(var_samp("cs:r") OVER "cs:past", 0) AS "cs:var"
  FROM "cs:residuals"
  WINDOW "cs:past" AS (PARTITION BY "cs:id" ORDER BY "cs:n" RANGE BETWEEN {int(terms.history) * season} PRECEDING AND CURRENT ROW)
), "cs:origins" AS (
  SELECT *, k AS "cs:k", "cs:n" + k AS "cs:target"
  FROM "cs:fitted" CROSS JOIN range(1, {int(terms.horizon) + 1}) AS steps(k)
  WHERE "cs:r" IS NOT NULL{latest}
), "cs:forecasts" AS (
  -- from each origin with a residual, each of the horizon's windows (one equi-join on integers)
  SELECT {"".join(f"o.{g}, " for g in groups)}o."cs:id", o."cs:n" AS "cs:origin", o."cs:k", o."cs:target", o."cs:last",
         t."cs:value" AS "cs:actual",
         t."cs:profile" + power(o."cs:phi", o."cs:k") * o."cs:r" AS "cs:forecast",
         -- the k-step variance of an AR(1) with stationary variance var: var * (1 - phi^2k)
         sqrt(o."cs:var" * (1 - power(o."cs:phi", 2 * o."cs:k"))) AS "cs:sd"
  FROM "cs:origins" AS o JOIN "cs:fitted" AS t ON t."cs:id" = o."cs:id" AND t."cs:n" = o."cs:target"
  WHERE t."cs:profile" IS NOT NULL
)"""
    return sql, params


def _z(rule: AlertRule) -> float:
    assert rule.forecast is not None
    return NormalDist().inv_cdf((1 + rule.forecast.level) / 2)


def _crosses(rule: AlertRule, forecast: str) -> str:
    """SQL: whether the forecast (or its interval's far bound, for trigger "interval") crosses."""
    assert rule.forecast is not None
    compared = forecast
    if rule.forecast.trigger == "interval":
        toward = "+" if rule.comparison in ("gt", "ge") else "-"
        compared = f'({forecast} {toward} {_z(rule)!r} * "cs:sd")'
    return f"{compared} {SQL_COMPARISONS[rule.comparison]} CAST(? AS DOUBLE)"


def firing_sql(rule: AlertRule, table: str, source: tuple[str, list[Any]] | None, reduced: bool = False) -> tuple[str, list[Any]]:
    """The rule's firings now: per series, the first window of the horizon after the last observed
    window that is predicted to cross. Columns: the groups as JSON text, then the window's start,
    the forecast, the threshold, the interval, the lead in windows and the last observed window."""
    assert rule.window is not None
    fitted, params = _fitted(rule, table, source, latest_only=True, reduced=reduced)
    groups = [quoted(c) for c in rule.group_by]
    group_output = "".join(f"CAST(to_json({g}) AS VARCHAR), " for g in groups)
    minutes = int(rule.window.minutes)
    z = _z(rule)
    sql = f"""{fitted}, "cs:now" AS (
  SELECT *, row_number() OVER (PARTITION BY "cs:id" ORDER BY "cs:k") AS "cs:first"
  FROM "cs:forecasts"
  WHERE "cs:origin" = "cs:last" AND {_crosses(rule, '"cs:forecast"')}
    -- a group that stopped reporting forecasts nothing already past: only windows after the data's last
    AND "cs:origin" + "cs:k" > (SELECT max("cs:last") FROM "cs:span")
)
SELECT {group_output}strftime(to_timestamp(("cs:origin" + "cs:k") * {minutes * 60}), '{ISO_FORMAT}'), "cs:forecast",
       CAST(? AS DOUBLE), "cs:forecast" - {z!r} * "cs:sd", "cs:forecast" + {z!r} * "cs:sd", "cs:k" * {minutes},
       strftime(to_timestamp("cs:origin" * {minutes * 60}), '{ISO_FORMAT}')
FROM "cs:now" WHERE "cs:first" = 1
ORDER BY 1{"".join(f", {i + 2}" for i in range(len(groups)))}
"""
    return sql, [*params, rule.threshold, rule.threshold]


def backtest_sql(
    rule: AlertRule, table: str, source: tuple[str, list[Any]] | None, reduced: bool = False
) -> tuple[str, list[Any]]:
    """The rule run at every origin of the history, scored against what then happened:
    - an alarm is an origin (per series) at which the rule would have fired; a false alarm, one
      after which no window of the horizon crossed;
    - an event is a window that crossed after one that did not, while the model was in service
      (its previous window had a forecast); a hit, an event that some origin in the horizon before
      it predicted for that window (lead: from the earliest such origin); else a miss;
    - MASE: the mean absolute error of every forecast, over that of the seasonal-naive forecast
      (the value a season earlier: a week for the week season)."""
    assert rule.window is not None and rule.forecast is not None
    fitted, params = _fitted(rule, table, source, reduced=reduced)
    minutes = int(rule.window.minutes)
    naive_lag = SEASON_MINUTES[rule.forecast.season] // minutes  # the seasonal-naive forecast: a season earlier
    crossed = f'"cs:actual" {SQL_COMPARISONS[rule.comparison]} CAST(? AS DOUBLE)'
    beyond = f"{SQL_COMPARISONS[rule.comparison]} CAST(? AS DOUBLE)"
    sql = f"""{fitted}, "cs:alarms" AS (
  SELECT "cs:id", "cs:origin", bool_or({_crosses(rule, '"cs:forecast"')}) AS "cs:fired",
         bool_or(coalesce({crossed}, false)) AS "cs:came"
  FROM "cs:forecasts" WHERE "cs:origin" + {int(rule.forecast.horizon)} <= "cs:last"  -- what came can be told
  GROUP BY ALL
), "cs:observed" AS (
  SELECT "cs:id", "cs:n", "cs:value",
         lag("cs:value") OVER (PARTITION BY "cs:id" ORDER BY "cs:n") AS "cs:before",
         lag("cs:r") OVER (PARTITION BY "cs:id" ORDER BY "cs:n") AS "cs:in_service",
         lag("cs:value", {naive_lag}) OVER (PARTITION BY "cs:id" ORDER BY "cs:n") AS "cs:naive"
  FROM "cs:fitted"
), "cs:events" AS (
  SELECT * FROM "cs:observed"
  WHERE "cs:value" {beyond} AND NOT coalesce("cs:before" {beyond}, false) AND "cs:in_service" IS NOT NULL
), "cs:predicted" AS (
  SELECT "cs:id", "cs:target", min("cs:origin") AS "cs:earliest" FROM "cs:forecasts"
  WHERE {_crosses(rule, '"cs:forecast"')} GROUP BY ALL
), "cs:scored" AS (
  SELECT e."cs:n", e."cs:n" - p."cs:earliest" AS "cs:lead"
  FROM "cs:events" AS e LEFT JOIN "cs:predicted" AS p ON p."cs:id" = e."cs:id" AND p."cs:target" = e."cs:n"
)
SELECT
  (SELECT count(*) FROM "cs:scored"),
  (SELECT count("cs:lead") FROM "cs:scored"),
  (SELECT avg("cs:lead") FROM "cs:scored") * {minutes},
  (SELECT count(*) FILTER (WHERE "cs:fired") FROM "cs:alarms"),
  (SELECT count(*) FILTER (WHERE "cs:fired" AND NOT "cs:came") FROM "cs:alarms"),
  (SELECT count(*) FROM "cs:alarms"),
  (SELECT avg(abs("cs:actual" - "cs:forecast")) FROM "cs:forecasts")
    / nullif((SELECT avg(abs("cs:value" - "cs:naive")) FROM "cs:observed"), 0),
  (SELECT count("cs:actual") FROM "cs:forecasts")
"""
    # The threshold: the alarms' crossing and their outcome; the events (twice); the predictions.
    return sql, [*params, *[rule.threshold] * 5]


def backtest_of(row: tuple[Any, ...]) -> Backtest:
    events, hits, lead, alarms, false_alarms, origins, mase, scored = row
    return Backtest(
        events=int(events),
        hits=int(hits),
        misses=int(events) - int(hits),
        alarms=int(alarms),
        false_alarms=int(false_alarms),
        origins=int(origins),
        hit_rate=round(hits / events, 4) if events else None,
        false_alarm_ratio=round(false_alarms / alarms, 4) if alarms else None,
        mean_lead_minutes=round(float(lead), 1) if lead is not None else None,
        mase=round(float(mase), 4) if mase is not None else None,
        forecasts_scored=int(scored),
    )
