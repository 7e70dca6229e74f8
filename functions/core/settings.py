"""Configuration, read once per process from the environment that the CDK stack and the local stack set."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

_DEFAULT_POLICIES_DIR = str(Path(__file__).resolve().parents[2] / "policies")


class Settings(BaseModel):
    """Every field is filled from the environment variable named by its alias."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    stage: str = Field(alias="CITYSHARE_STAGE")
    audience: str = Field(alias="CITYSHARE_AUDIENCE")
    catalog_table: str = Field(alias="CATALOG_TABLE")
    directory_table: str = Field(alias="DIRECTORY_TABLE")
    nonces_table: str = Field(alias="NONCES_TABLE")
    audit_table: str = Field(alias="AUDIT_TABLE")
    sharing_table: str = Field(alias="SHARING_TABLE")
    data_bucket: str = Field(alias="DATA_BUCKET")
    event_bus: str = Field(alias="EVENT_BUS")
    notifications_table: str = Field(alias="NOTIFICATIONS_TABLE")
    notifications_topic: str = Field(default="", alias="NOTIFICATIONS_TOPIC")
    analytics_table: str = Field(alias="ANALYTICS_TABLE")
    idempotency_table: str = Field(alias="IDEMPOTENCY_TABLE")
    # The Glue database where each curated version is registered, and the Athena workgroup for large
    # derived datasets ("" where Athena cannot run, as in the embedded stack).
    query_catalog: str = Field(default="", alias="QUERY_CATALOG")
    query_workgroup: str = Field(default="", alias="QUERY_WORKGROUP")
    # Webhooks must be https, except in the embedded stack (receivers on 127.0.0.1).
    allow_http_webhooks: bool = Field(default=False, alias="ALLOW_HTTP_WEBHOOKS")
    platform_key: str = Field(alias="PLATFORM_KEY")
    # The Object Lock bucket holding audit entries and seals, and the asymmetric key seals are
    # signed with (functions/audit/sealing.py).
    audit_archive_bucket: str = Field(default="", alias="AUDIT_ARCHIVE_BUCKET")
    audit_seal_key: str = Field(default="", alias="AUDIT_SEAL_KEY")
    # The role functions assume, session-tagged with a department, to touch that department's data
    # (functions/core/scoped.py); "" in unit tests, where the process's own clients are used.
    data_role: str = Field(default="", alias="DATA_ROLE_ARN")
    # AWS only: the role that reads departments' curated data through Athena (their keys' policies name it).
    query_role: str = Field(default="", alias="QUERY_ROLE_ARN")
    city_name: str = Field(default="The city", alias="CITY_NAME", description="Named in the open-data catalog")
    # The usage plan each department's API key joins (AWS; "" in the embedded stack, which throttles itself).
    usage_plan: str = Field(default="", alias="USAGE_PLAN_ID")
    # AWS only: the console's origin (https://<its CloudFront name>), the one origin browsers may read
    # answers from; "" on the embedded stack, which serves the console and the API from one origin.
    console_origin: str = Field(default="", alias="CONSOLE_ORIGIN")
    policies_dir: str = Field(default=_DEFAULT_POLICIES_DIR, alias="POLICIES_DIR")
    # AWS only: the function that computes differentially private releases (its layer holds OpenDP);
    # "" on the embedded stack, where the API function computes them itself.
    privacy_function: str = Field(default="", alias="PRIVACY_FUNCTION")
    # The sessions function (functions/sharing/sessions.py); empty: the broker runs in this process.
    session_broker: str = Field(default="", alias="SESSIONS_FUNCTION")
    # The least k (distinct subjects per group) an aggregated grant on data about people may set.
    min_group_size_floor: int = Field(default=5, ge=2, alias="MIN_GROUP_SIZE_FLOOR")
    # Signed-request limits (DESIGN.md, Trust and security).
    # Room for the signed request target (the gate allows 4 KB of path and query) and an RSA signature.
    max_token_bytes: int = Field(default=16384, alias="MAX_TOKEN_BYTES")
    max_token_lifetime_seconds: int = Field(default=300, alias="MAX_TOKEN_LIFETIME_SECONDS")
    clock_skew_seconds: int = Field(default=30, alias="CLOCK_SKEW_SECONDS")
    max_body_bytes: int = Field(default=1_048_576, alias="MAX_BODY_BYTES")
    # The ingest queue's receive limit (its messages then go to the DLQ named here).
    ingest_max_attempts: int = Field(default=5, alias="INGEST_MAX_ATTEMPTS")
    ingest_dead_letters: str = Field(default="", alias="INGEST_DEAD_LETTERS")
    # An upload still `processing` this long after its last claim has run out of attempts (each
    # attempt holds the message for the queue's visibility timeout): it is reported `failed`.
    ingest_stalled_after_seconds: int = Field(default=2520, alias="INGEST_STALLED_AFTER_SECONDS")


def environment_names() -> set[str]:
    """The environment variables a function may be given (the spec test checks the stack sets them)."""
    return {str(field.alias) for field in Settings.model_fields.values()}


def required_environment_names() -> set[str]:
    return {str(field.alias) for field in Settings.model_fields.values() if field.is_required()}


@cache
def get_settings() -> Settings:
    present = {name: os.environ[name] for name in environment_names() if name in os.environ}
    return Settings.model_validate(present)
