"""The deployment's settings, from cdk.json context (`cityshare`), for one stage chosen with
`-c stage=dev|prod` (`make deploy STAGE=dev`); each stage's own settings override the shared ones.
No department is listed here: departments are registered through the API and provisioned at run time."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

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
DEFAULT_STAGE = "dev"


class DeploymentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    stage: str = Field(default=DEFAULT_STAGE, pattern=r"^[a-z][a-z0-9-]{1,15}$")
    region: str | None = None
    account: str | None = None
    audience: str | None = None
    city_name: str = Field(default="The city", alias="cityName", min_length=1, max_length=100)
    # Prod keeps its tables, buckets and keys when the stack is deleted; dev removes what it can.
    retain_data: bool = Field(default=True, alias="retainData")
    # Throttles are not here: infra/spec.py's LimitsSpec holds them for both stacks alike. The WAF's
    # per-IP rate defaults to what the stage itself accepts in 5 minutes: a city's departments often
    # leave through one egress address, so a lower rate would throttle them all together.
    waf_requests_per_ip: int | None = Field(default=None, alias="wafRequestsPerFiveMinutesPerIp", ge=100)
    # AWS Backup of the tables (infra/cloud/backups.py): how long recovery points are kept, and
    # whether the vault is locked for that long (governance mode).
    backup_retention_days: int = Field(default=35, alias="backupRetentionDays", ge=1, le=3650)
    backup_vault_lock: bool = Field(default=False, alias="backupVaultLock")
    # Each function reserves its share of the account's concurrency (infra/spec.py): one department's
    # burst cannot starve the others' functions, nor another workload CityShare. Off by default: a
    # reservation is also a ceiling, and an account below the sum + 100 cannot take it (the preflight says so).
    reserved_concurrency: bool = Field(default=False, alias="reservedConcurrency")
    # How long the data bucket keeps an object's earlier versions (no one may delete one sooner).
    noncurrent_version_days: int = Field(default=90, alias="noncurrentVersionDays", ge=1, le=3650)
    # How long the audit archive's Object Lock (compliance mode) keeps every entry and seal: no one,
    # the account's root included, deletes one sooner. Years in production (a city's records
    # schedule), a day or two in development (a locked bucket cannot be emptied before).
    audit_retention_days: int = Field(default=1, alias="auditRetentionDays", ge=1, le=36500)
    log_retention_days: int = Field(default=30, alias="logRetentionDays")
    alarm_emails: list[str] = Field(default_factory=list, alias="alarmEmails")
    # The console on the city's own name (e.g. data.city.example), with an ACM certificate in us-east-1
    # (CloudFront's region for certificates); without them it is served at its *.cloudfront.net name.
    console_domain_name: str | None = Field(
        default=None, alias="consoleDomainName", max_length=253, pattern=r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$"
    )
    console_certificate_arn: str | None = Field(
        default=None, alias="consoleCertificateArn", pattern=r"^arn:aws[a-z-]*:acm:us-east-1:\d{12}:certificate/[0-9a-f-]{36}$"
    )

    # The API on the city's own name (e.g. api.data.city.example), with an ACM certificate in the
    # stack's region: TLS 1.2 at least, and API Gateway's own execute-api address turned off, so
    # that no client reaches the API around that policy (or around the name's DNS and WAF).
    api_domain_name: str | None = Field(
        default=None, alias="apiDomainName", max_length=253, pattern=r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$"
    )
    api_certificate_arn: str | None = Field(
        default=None, alias="apiCertificateArn", pattern=r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]{36}$"
    )

    @field_validator("log_retention_days")
    @classmethod
    def _retention_cloudwatch_accepts(cls, days: int) -> int:
        if days not in LOG_RETENTION_NAMES:
            raise ValueError(f"logRetentionDays must be one of {sorted(LOG_RETENTION_NAMES)}")
        return days

    @field_validator("alarm_emails")
    @classmethod
    def _addresses(cls, emails: list[str]) -> list[str]:
        for email in emails:
            if "@" not in email or " " in email:
                raise ValueError(f"{email!r} is not an email address")
        return emails

    @model_validator(mode="after")
    def _domain_with_certificate(self) -> DeploymentConfig:
        if (self.console_domain_name is None) != (self.console_certificate_arn is None):
            raise ValueError("consoleDomainName and consoleCertificateArn go together (the certificate must cover the name)")
        if (self.api_domain_name is None) != (self.api_certificate_arn is None):
            raise ValueError("apiDomainName and apiCertificateArn go together (the certificate must cover the name)")
        if self.api_certificate_arn and self.region and f":acm:{self.region}:" not in self.api_certificate_arn:
            raise ValueError(f"apiCertificateArn must be a certificate in the stack's region ({self.region})")
        return self

    @property
    def token_audience(self) -> str:
        return self.audience or f"cityshare-{self.stage}"

    @classmethod
    def from_context(cls, context: Any, stage: str | None = None) -> DeploymentConfig:
        """The settings of `stage` (default dev): the shared ones, then the stage's own."""
        shared = dict(context or {})
        stages = shared.pop("stages", {}) or {}
        chosen = stage or shared.pop("stage", None) or DEFAULT_STAGE
        shared.pop("stage", None)
        if stages and chosen not in stages:
            raise ValueError(f"cdk.json has no stage {chosen!r}; it has {sorted(stages)}")
        return cls.model_validate({**shared, **stages.get(chosen, {}), "stage": chosen})
