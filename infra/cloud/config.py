"""The deployment's settings, from cdk.json context (`cityshare`), overridable with -c on the CLI."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Days -> the name of CDK's RetentionDays member (the CloudWatch Logs retention values offered).
LOG_RETENTION_NAMES = {
    7: "ONE_WEEK",
    14: "TWO_WEEKS",
    30: "ONE_MONTH",
    60: "TWO_MONTHS",
    90: "THREE_MONTHS",
    180: "SIX_MONTHS",
    365: "ONE_YEAR",
    400: "THIRTEEN_MONTHS",
    731: "TWO_YEARS",
    1827: "FIVE_YEARS",
    3653: "TEN_YEARS",
}


class DeploymentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    stage: str = Field(default="prod", pattern=r"^[a-z][a-z0-9-]{1,15}$")
    region: str | None = None
    account: str | None = None
    audience: str | None = None
    departments: list[str] = Field(min_length=1)
    rate_limit: float = Field(default=50.0, alias="rateLimit", gt=0)
    burst_limit: int = Field(default=100, alias="burstLimit", gt=0)
    log_retention_days: int = Field(default=30, alias="logRetentionDays")
    alarm_email: str | None = Field(default=None, alias="alarmEmail")

    @field_validator("departments")
    @classmethod
    def _department_ids(cls, departments: list[str]) -> list[str]:
        for department in departments:
            if not re.fullmatch(r"[a-z][a-z0-9-]{1,31}", department):
                raise ValueError(f"department id {department!r} must be lower-case letters, digits and dashes")
        return sorted(set(departments))

    @field_validator("log_retention_days")
    @classmethod
    def _retention_cloudwatch_accepts(cls, days: int) -> int:
        if days not in LOG_RETENTION_NAMES:
            raise ValueError(f"logRetentionDays must be one of {sorted(LOG_RETENTION_NAMES)}")
        return days

    @property
    def token_audience(self) -> str:
        return self.audience or f"cityshare-{self.stage}"

    @classmethod
    def from_context(cls, context: Any) -> DeploymentConfig:
        return cls.model_validate(context or {})
