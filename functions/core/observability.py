"""Logger and metrics shared by every function (JSON logs; CloudWatch metrics in embedded metric
format, per department where a figure is a department's: its requests, refusals, uploads and ingest
lag, which the dashboard of infra/cloud/monitoring.py shows). The embedded stack turns metrics off
(POWERTOOLS_METRICS_DISABLED)."""

from __future__ import annotations

from typing import Literal

from aws_lambda_powertools import Logger

logger = Logger(service="cityshare")
METRICS_NAMESPACE = "CityShare"
DEPARTMENT_DIMENSION = "department"


def record_metric(
    name: str, department: str | None = None, value: float = 1, unit: Literal["Count", "Seconds"] = "Count"
) -> None:
    """One figure, written at once (a function may end by raising, losing anything buffered)."""
    # Imported here: Powertools' metrics package costs ~60 ms of every cold start otherwise.
    from aws_lambda_powertools.metrics import MetricUnit, single_metric
    from aws_lambda_powertools.metrics.functions import is_metrics_disabled

    if is_metrics_disabled():  # single_metric itself does not look at POWERTOOLS_METRICS_DISABLED
        return
    try:
        with single_metric(name=name, unit=MetricUnit(unit), value=value, namespace=METRICS_NAMESPACE) as metric:
            if department:
                metric.add_dimension(DEPARTMENT_DIMENSION, department)
    except Exception:  # a metric must never fail the request it describes
        logger.warning("metric not recorded", extra={"metric": name})
