"""Logger and tracer shared by every function (JSON logs; X-Ray when the runtime has it)."""

from __future__ import annotations

from aws_lambda_powertools import Logger

logger = Logger(service="cityshare")
