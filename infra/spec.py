"""ONE description of CityShare's resources, read by both provisioners (infra/cloud and infra/local).

Plain data: no CDK, no boto3. Names here are logical; each provisioner gives them physical names
and passes those to the functions through the environment variables listed in ENVIRONMENT.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

AttributeType = Literal["S", "N"]


@dataclass(frozen=True)
class Key:
    name: str
    type: AttributeType = "S"


@dataclass(frozen=True)
class IndexSpec:
    name: str
    partition_key: Key
    sort_key: Key | None = None


@dataclass(frozen=True)
class TableSpec:
    name: str
    partition_key: Key
    sort_key: Key | None = None
    indexes: tuple[IndexSpec, ...] = ()
    ttl_attribute: str | None = None
    purpose: str = ""
    append_only: bool = False  # a resource policy denies every principal deletes and updates


@dataclass(frozen=True)
class ExpirySpec:
    """A lifecycle rule: objects under `prefix` (carrying `tag`, if given) are deleted `days` after
    they were written; `noncurrent_days` removes what a delete leaves behind in the versioned bucket."""

    prefix: str
    days: int
    why: str
    tag: tuple[str, str] | None = None
    noncurrent_days: int | None = None


@dataclass(frozen=True)
class BucketSpec:
    name: str
    # Top-level prefixes and what they hold; `notify` prefixes send ObjectCreated to the named queue.
    prefixes: dict[str, str] = field(default_factory=dict)
    notify: dict[str, str] = field(default_factory=dict)
    expiries: tuple[ExpirySpec, ...] = ()
    # Object Lock in compliance mode: no object version is deleted or overwritten by anyone before
    # the stage's retention (cdk.json `auditRetentionDays`) has passed.
    object_lock: bool = False


@dataclass(frozen=True)
class QueueSpec:
    name: str
    consumer: str | None = None  # function name; None while no function consumes it yet
    visibility_timeout_seconds: int = 360
    max_receive_count: int = 5
    batch_size: int = 10
    # At most this many concurrent consumers (AWS: the event source mapping's maximum concurrency),
    # so a burst of uploads cannot take the account's whole Lambda concurrency from the API.
    max_concurrency: int = 10


@dataclass(frozen=True)
class RuleSpec:
    name: str
    detail_types: tuple[str, ...]
    target_queue: str


@dataclass(frozen=True)
class ScheduleSpec:
    """Invoke `function` every `minutes` (every `local_seconds` in the embedded stack) with `{"cityshare-schedule": name}`."""

    name: str
    function: str
    minutes: int
    local_seconds: int


# DynamoDB actions, by what a function does with a table (a transaction needs the action of each item it writes).
READ = ("GetItem", "BatchGetItem", "Query")
APPEND = ("PutItem", "Query", "GetItem")  # the audit table: conditional appends and reads, never more
WRITE = (*READ, "PutItem", "UpdateItem", "ConditionCheckItem")  # TransactWriteItems is authorised item by item
DELETE = ("DeleteItem",)


@dataclass(frozen=True)
class FunctionSpec:
    """A function and exactly what its role may do (least privilege: infra/cloud/permissions.py
    turns this into its IAM policy; tests/infra checks the template against it)."""

    name: str
    handler: str  # module path "package.module.function" inside the one functions asset
    memory_mb: int = 512
    timeout_seconds: int = 29
    tables: dict[str, tuple[str, ...]] = field(default_factory=dict)  # table -> DynamoDB actions
    publishes_events: bool = False
    ephemeral_storage_mb: int = 512
    # Assumes the data role, session-tagged with a department, to touch that department's objects and
    # use its KMS key (functions/core/scoped.py); the function's own role reaches no department's data.
    acts_for_departments: bool = False
    platform_secret: bool = False  # decrypts the platform secret (masking and linkage keys)
    # Writes the catalog's SECRET items (key ciphertexts, made on first use: functions/privacy/keys.py).
    # A role that writes the catalog without it is refused those items by its own policy.
    keeps_secrets: bool = False
    own_prefixes: dict[str, tuple[str, ...]] = field(default_factory=dict)  # data bucket prefix -> S3 actions of its own
    layers: tuple[str, ...] = ("core",)  # dependency layers (functions/requirements-<layer>.txt)
    topics: tuple[str, ...] = ()  # SNS topics it publishes to
    query_catalog: Literal["read", "write"] | None = None  # the Glue database of curated versions
    runs_queries: bool = False  # starts Athena queries in the derived workgroup, as the query role
    dead_letters: tuple[str, ...] = ()  # queues whose dead-letter queue it sends to (failures no retry can mend)
    provisions_departments: bool = False  # creates departments' KMS keys and API keys
    # Signs audit seals with the seal key and writes the audit archive (functions/audit/sealing.py).
    seals_audit: bool = False
    # Reads seals from the archive and the seal key's public half (to answer GET /audit/seal).
    reads_audit_seals: bool = False
    invokes: tuple[str, ...] = ()  # functions it calls synchronously (by their stage-qualified names)


PUBLIC = "public"  # a route anyone may call without signing (the open-data catalog)


# How long API Gateway keeps an authorizer's answer per Authorization header (0: asked on every
# request). The signed-request authorizer is never cached (each token is single-use). The recipient
# authorizer is: what it answers (the recipient, the department's throttling key) changes rarely,
# and the Delta Sharing function confirms the token and the department on every request anyway.
AUTHORIZER_CACHE_SECONDS = {"recipient-authorizer": 300}


@dataclass(frozen=True)
class RouteSpec:
    method: str
    path: str  # API Gateway form: /datasets/{dataset_id}
    function: str
    authorizer: str | None = None  # the function that verifies callers; None: the platform's (signed requests); PUBLIC: none


@dataclass(frozen=True)
class LimitsSpec:
    """Request limits, applied alike by API Gateway in AWS (a usage plan whose key each department
    gets, and the stage's throttle) and by the embedded gateway locally."""

    rate_per_second: float = 50.0  # each department
    burst: int = 100
    stage_rate_per_second: float = 500.0  # all departments together
    stage_burst: int = 1000
    max_body_bytes: int = 1_048_576


@dataclass(frozen=True)
class PlatformSpec:
    tables: tuple[TableSpec, ...]
    buckets: tuple[BucketSpec, ...]
    queues: tuple[QueueSpec, ...]
    event_bus: str
    rules: tuple[RuleSpec, ...]
    topics: tuple[str, ...]
    functions: tuple[FunctionSpec, ...]
    schedules: tuple[ScheduleSpec, ...]
    authorizer: str
    routes: tuple[RouteSpec, ...]
    limits: LimitsSpec = LimitsSpec()
    # Each published version is a Glue table (<dataset>__v<n>) in this database; large derived
    # datasets run as Athena queries in this workgroup (AWS only).
    query_catalog: str = "curated"
    query_workgroup: str = "derived"

    def table(self, name: str) -> TableSpec:
        return next(t for t in self.tables if t.name == name)

    def function(self, name: str) -> FunctionSpec:
        return next(f for f in self.functions if f.name == name)

    def queue(self, name: str) -> QueueSpec:
        return next(q for q in self.queues if q.name == name)

    def reserved_concurrency(self) -> dict[str, int]:
        """What each function reserves of the account's concurrency where a stage asks for it
        (cdk.json `reservedConcurrency`): a reservation is also each function's ceiling.

        The stage admits `stage_rate_per_second` requests; a signed request costs the authorizer and
        its function ≈ 50 to 100 ms each, so at the stage's full rate ≈ 50 of each run at once: the
        authorizer and the API get that with a margin, the other HTTP functions a share. A queue's
        consumer gets its event source's maximum concurrency, and one more per schedule it runs."""
        at_full_rate = -int(-self.limits.stage_rate_per_second * SIGNED_REQUEST_SECONDS * 1.2 // 1)  # rounded up
        reserved = {"authorizer": at_full_rate, "api": at_full_rate}
        for function in self.functions:
            consuming = [q.max_concurrency for q in self.queues if q.consumer == function.name]
            scheduled = sum(1 for schedule in self.schedules if schedule.function == function.name)
            if function.name not in reserved:
                reserved[function.name] = sum(consuming) + scheduled if consuming else max(10, at_full_rate // 5)
        return reserved


SIGNED_REQUEST_SECONDS = 0.1  # an authorizer's or an API function's time per request, measured in the embedded stack
UNRESERVED_MINIMUM = 100  # AWS keeps at least this much of an account's concurrency unreserved


# The tag the ingest function puts on a rejected upload's original (functions/ingest/service.py).
REJECTED_UPLOAD_TAG = ("cityshare-upload", "rejected")
REJECTED_RETENTION_DAYS = 7
FAILED_UPLOAD_TAG = ("cityshare-upload", "failed")
FAILED_RETENTION_DAYS = 14  # as long as the dead-letter queue keeps its message

SPEC = PlatformSpec(
    tables=(
        TableSpec(
            "catalog",
            Key("pk"),
            Key("sk"),
            indexes=(
                IndexSpec("by_owner", Key("catalog_owner"), Key("dataset_id")),
                IndexSpec("all_datasets", Key("listing"), Key("dataset_id")),
            ),
            purpose="datasets, their versions and profiles",
        ),
        TableSpec(
            "directory",
            Key("pk"),
            Key("sk"),
            indexes=(IndexSpec("by_kind", Key("kind"), Key("department_id")),),
            purpose="departments, principals with their roles, public keys",
        ),
        TableSpec("nonces", Key("nonce"), ttl_attribute="expires_at", purpose="used request token ids until they expire"),
        TableSpec(
            "idempotency",
            Key("id"),
            ttl_attribute="expires_at",
            purpose="idempotency keys of mutating calls and their answers, kept a day",
        ),
        TableSpec("audit", Key("chain"), Key("seq", "N"), purpose="hash-chained audit entries per department", append_only=True),
        TableSpec(
            "sharing",
            Key("pk"),
            Key("sk"),
            indexes=(
                IndexSpec("by_grantee", Key("grantee_department"), Key("sk")),
                IndexSpec("by_owner_status", Key("owner_status"), Key("created_at")),
            ),
            purpose="grants by owner, access requests beside their dataset",
        ),
        TableSpec(
            "notifications",
            Key("pk"),
            Key("sk"),
            ttl_attribute="expires_at",
            purpose="each department's inbox, kept 90 days",
        ),
        TableSpec(
            "analytics",
            Key("pk"),
            Key("sk"),
            indexes=(IndexSpec("by_department", Key("department"), Key("sk")),),
            purpose="alert rules, subscriptions, derived dataset definitions and lineage, raised alerts",
        ),
    ),
    topics=("notifications",),
    # Publishes the events of committed changes whose publication did not finish (the outbox).
    # Deletes views of ended grants and decrypting views over 24 hours old.
    schedules=(
        ScheduleSpec("outbox", "triggers", minutes=1, local_seconds=5),
        ScheduleSpec("views", "triggers", minutes=60, local_seconds=60),
        # Provisions any department an event missed (and the platform department made at bootstrap).
        ScheduleSpec("departments", "provisioner", minutes=5, local_seconds=2),
        # Finishes what an ingest function left between an upload's end and its announcement.
        ScheduleSpec("settle", "ingest", minutes=2, local_seconds=5),
        # Deletes the files of ingest attempts that died or lost their upload to another attempt.
        ScheduleSpec("orphans", "ingest", minutes=60, local_seconds=60),
        # Archives each audit chain's new entries under Object Lock and signs its head.
        ScheduleSpec("seal", "sealer", minutes=5, local_seconds=10),
    ),
    buckets=(
        BucketSpec(
            "data",
            prefixes={
                "landing/": "uploads as sent, until they are published (then deleted) or rejected (kept 7 days)",
                "curated/": "validated, protected Parquet by dataset and upload",
                "vault/": "sealed token -> value pairs of pseudonymised columns, opened only under a linkage grant",
                "quarantine/": "rejected rows (personal columns protected as in curated) and reports",
                "views/": "materialised restricted views (expiring; per grant when they hold its tokens or clear values)",
            },
            notify={"landing/": "ingest"},
            expiries=(
                ExpirySpec(
                    "landing/",
                    REJECTED_RETENTION_DAYS,
                    "a rejected upload's original, kept for its owner to look at",
                    tag=REJECTED_UPLOAD_TAG,
                    noncurrent_days=1,
                ),
                ExpirySpec(
                    "landing/",
                    FAILED_RETENTION_DAYS,
                    "a failed upload's original, kept while its message waits in the dead-letter queue",
                    tag=FAILED_UPLOAD_TAG,
                    noncurrent_days=1,
                ),
                ExpirySpec(
                    "landing/", 30, "backstop: an original whose deletion failed, or an upload never processed", noncurrent_days=1
                ),
                ExpirySpec("views/", 7, "views are caches, rebuilt on demand", noncurrent_days=1),
                ExpirySpec(
                    "athena-results/",
                    7,
                    "Athena's result files (read once: by the triggers function through Athena, or as a forecast's windows)",
                    noncurrent_days=1,
                ),
                ExpirySpec(
                    "views/clear/", 1, "backstop of the hourly sweep for views holding decrypted values", noncurrent_days=1
                ),
            ),
        ),
        BucketSpec(
            "audit-archive",
            prefixes={
                "audit/": "every audit entry, per chain, as JSON lines per sealed range",
                "seals/": "each chain's signed seals, and its latest",
            },
            object_lock=True,
        ),
    ),
    # Visibility: six times the consumer's timeout, as AWS advises for Lambda event sources.
    queues=(
        QueueSpec("ingest", consumer="ingest", batch_size=1, visibility_timeout_seconds=1800),
        QueueSpec("events", consumer="triggers", visibility_timeout_seconds=1800),
        QueueSpec("provisioning", consumer="provisioner", visibility_timeout_seconds=360, batch_size=1, max_concurrency=2),
    ),
    event_bus="cityshare",
    rules=(
        RuleSpec(
            "platform-events",
            ("DatasetVersionPublished", "AlertRaised", "GrantChanged", "AccessRequestChanged", "PrivacyBudgetExhausted"),
            "events",
        ),
        RuleSpec("departments", ("DepartmentRegistered",), "provisioning"),
    ),
    functions=(
        FunctionSpec(
            "authorizer",
            "functions.handlers.authorizer.handler",
            memory_mb=512,
            timeout_seconds=10,
            tables={"directory": ("GetItem", "BatchGetItem"), "nonces": ("PutItem",), "audit": APPEND},
        ),
        FunctionSpec(
            "ingest",
            "functions.handlers.ingest.handler",
            memory_mb=3008,
            timeout_seconds=300,
            tables={"catalog": (*WRITE, *DELETE), "directory": ("GetItem",), "audit": APPEND},  # DeleteItem: settled ends
            publishes_events=True,
            acts_for_departments=True,
            # Lists the attempt folders for the orphan sweep (deletes act for each owner).
            own_prefixes={root: ("s3:ListBucket",) for root in ("curated/", "vault/", "quarantine/")},
            query_catalog="write",
            ephemeral_storage_mb=10240,
            layers=("core", "data"),
            dead_letters=("ingest",),
            keeps_secrets=True,  # each department's pseudonymisation key
        ),
        FunctionSpec(
            "api",
            "functions.handlers.api.handler",
            memory_mb=1024,
            tables={
                "catalog": WRITE,
                "directory": WRITE,
                "audit": APPEND,
                "sharing": (*WRITE, *DELETE),  # DeleteItem: a published outbox entry
                "notifications": ("Query",),
                "idempotency": (*WRITE, *DELETE),  # DeleteItem: the key of a call that failed
                "analytics": READ,  # the city picture: indicators' definitions, rules and alerts
            },
            publishes_events=True,
            platform_secret=True,  # masking and linkage keys for views
            keeps_secrets=True,
            reads_audit_seals=True,
            layers=("core", "data"),  # pyarrow is imported only to build a restricted view
            invokes=("sessions",),  # data sessions for the request it serves (it may not assume the data role)
        ),
        FunctionSpec(
            "triggers",
            "functions.handlers.triggers.handler",
            memory_mb=2048,
            timeout_seconds=300,
            tables={
                "catalog": WRITE,
                "directory": ("GetItem", "Query"),  # who a rule, a derived dataset or a subscription acts for, now
                "sharing": (*READ, *DELETE),  # the outbox sweep deletes what it published
                "notifications": (*WRITE, *DELETE),  # a notification whose publication failed is forgotten
                "audit": APPEND,
                "analytics": (*WRITE, *DELETE, "BatchWriteItem"),
            },
            publishes_events=True,
            acts_for_departments=True,  # reads versions, writes derived results to landing/
            own_prefixes={"views/": ("s3:ListBucket",)},  # Athena's results: the query role's (infra/cloud/permissions.py)
            ephemeral_storage_mb=10240,
            topics=("notifications",),
            layers=("core", "analytics"),
            runs_queries=True,  # as the query role, which reads the catalog's tables (infra/cloud/permissions.py)
        ),
        FunctionSpec(
            "analytics",
            "functions.handlers.analytics.handler",
            memory_mb=1024,
            tables={
                "catalog": WRITE,
                "sharing": READ,
                "audit": APPEND,
                "analytics": (*WRITE, *DELETE),
                "idempotency": (*WRITE, *DELETE),
            },
            ephemeral_storage_mb=4096,  # the version's files, copied for DuckDB
            layers=("core", "analytics"),  # DuckDB checks a derived dataset's query before it is accepted
            runs_queries=True,  # a forecast's backtest on Athena's windows (engine athena), as the query role
            # A forecast rule's backtest reads the latest version, as its definer may: through a session
            # the broker vends for the request (it may not assume the data role).
            invokes=("sessions",),
        ),
        # The session broker (functions/sharing/sessions.py): the one request-path role that may assume the
        # data role, for a request the authorizer verified (its token in the nonces table) or a live Delta
        # Sharing recipient's token, and, for another department, only for a dataset the caller may read.
        FunctionSpec(
            "sessions",
            "functions.handlers.sessions.handler",
            memory_mb=512,
            timeout_seconds=10,
            tables={
                "nonces": ("GetItem",),
                "catalog": ("GetItem",),
                "sharing": READ,  # the caller's candidate grants; a recipient's token record
                "directory": READ,  # the caller's principal as the policies see it
            },
            acts_for_departments=True,
        ),
        # Delta Sharing: recipients' bearer tokens, then the protocol's endpoints (functions/sharing/delta.py).
        FunctionSpec(
            "recipient-authorizer",
            "functions.handlers.recipient_authorizer.handler",
            memory_mb=256,
            timeout_seconds=10,
            tables={"sharing": ("GetItem",), "directory": ("GetItem",), "audit": APPEND},
        ),
        FunctionSpec(
            "delta-sharing",
            "functions.handlers.delta_sharing.handler",
            memory_mb=1024,
            tables={
                "catalog": (*READ, "PutItem"),  # PutItem: a view's key made on first use, conditionally
                # ConditionCheckItem: a read's audit entry is written only while its grant is active.
                "sharing": (*READ, "ConditionCheckItem"),
                "directory": ("GetItem", "BatchGetItem"),
                "audit": APPEND,
            },
            platform_secret=True,  # masking and linkage keys of views
            keeps_secrets=True,
            layers=("core", "data"),
            # Presigns the owner's files and builds the grant's view through sessions the broker vends for
            # the recipient's token (it may not assume the data role).
            invokes=("privacy", "sessions"),
        ),
        # Differentially private releases (OpenDP, in a layer of its own: it does not fit beside
        # pyarrow): exact, bounded aggregates in, noisy groups out. No table, bucket or key.
        FunctionSpec(
            "privacy", "functions.handlers.privacy.handler", memory_mb=1024, timeout_seconds=30, layers=("core", "privacy")
        ),
        FunctionSpec(
            "open-data",
            "functions.handlers.open_data.handler",
            memory_mb=512,
            tables={"catalog": READ, "directory": ("GetItem",)},
        ),
        FunctionSpec(
            "provisioner",
            "functions.handlers.provisioner.handler",
            memory_mb=256,
            timeout_seconds=60,
            tables={"directory": ("GetItem", "Query", "UpdateItem")},
            provisions_departments=True,
        ),
        # Reads every chain, writes none: archives entries and signs heads (functions/audit/sealing.py).
        FunctionSpec(
            "sealer",
            "functions.handlers.sealer.handler",
            memory_mb=512,
            timeout_seconds=240,  # under its 5-minute schedule: one run ends before the next starts
            tables={"audit": ("Query",), "directory": ("Query",)},
            seals_audit=True,
        ),
    ),
    authorizer="authorizer",
    routes=tuple(
        RouteSpec(method, path, "api")
        for method, path in (
            ("GET", "/me"),
            ("POST", "/datasets"),
            ("GET", "/datasets"),
            ("GET", "/datasets/{dataset_id}"),
            ("PATCH", "/datasets/{dataset_id}"),
            ("GET", "/audit"),
            ("GET", "/audit/seal"),
            ("POST", "/datasets/{dataset_id}/uploads"),
            ("GET", "/datasets/{dataset_id}/uploads/{upload_id}"),
            ("POST", "/datasets/{dataset_id}/uploads/{upload_id}/complete"),
            ("POST", "/datasets/{dataset_id}/records"),
            ("GET", "/datasets/{dataset_id}/versions"),
            ("GET", "/datasets/{dataset_id}/versions/{version}"),
            ("POST", "/datasets/{dataset_id}/access-requests"),
            ("GET", "/access-requests"),
            ("POST", "/datasets/{dataset_id}/access-requests/{access_request_id}/approve"),
            ("POST", "/datasets/{dataset_id}/access-requests/{access_request_id}/deny"),
            ("POST", "/datasets/{dataset_id}/grants"),
            ("GET", "/datasets/{dataset_id}/grants"),
            ("DELETE", "/datasets/{dataset_id}/grants/{grant_id}"),
            ("GET", "/datasets/{dataset_id}/data"),
            ("POST", "/grants"),
            ("GET", "/grants"),
            ("DELETE", "/grants/{grant_id}"),
            ("GET", "/notifications"),
            ("POST", "/admin/departments"),
            ("GET", "/admin/departments"),
            ("GET", "/admin/departments/{department_id}"),
            ("PATCH", "/admin/departments/{department_id}"),
            ("PUT", "/admin/departments/{department_id}/principals/{principal_id}"),
            ("PATCH", "/admin/departments/{department_id}/principals/{principal_id}"),
            ("POST", "/admin/departments/{department_id}/principals/{principal_id}/keys"),
            ("DELETE", "/admin/departments/{department_id}/keys/{kid}"),
            ("POST", "/share-recipients"),
            ("GET", "/share-recipients"),
            ("DELETE", "/share-recipients/{recipient_id}"),
            ("GET", "/city"),
        )
    )
    # Served by the analytics function, which carries DuckDB (kept off the main API's cold start).
    + tuple(
        RouteSpec(method, path, "analytics")
        for method, path in (
            ("POST", "/datasets/{dataset_id}/alert-rules"),
            ("GET", "/datasets/{dataset_id}/alert-rules"),
            ("DELETE", "/datasets/{dataset_id}/alert-rules/{rule_id}"),
            ("GET", "/datasets/{dataset_id}/alerts"),
            ("POST", "/subscriptions"),
            ("GET", "/subscriptions"),
            ("DELETE", "/subscriptions/{subscription_id}"),
            ("POST", "/derived-datasets"),
            ("GET", "/datasets/{dataset_id}/lineage"),
        )
    )
    # The Delta Sharing protocol, for recipients' own tools, behind bearer tokens (not signed requests).
    + tuple(
        RouteSpec(method, f"/delta-sharing{path}", "delta-sharing", authorizer="recipient-authorizer")
        for method, path in (
            ("GET", "/shares"),
            ("GET", "/shares/{share}"),
            ("GET", "/shares/{share}/schemas"),
            ("GET", "/shares/{share}/schemas/{schema}/tables"),
            ("GET", "/shares/{share}/all-tables"),
            ("GET", "/shares/{share}/schemas/{schema}/tables/{table}/version"),
            ("HEAD", "/shares/{share}/schemas/{schema}/tables/{table}/version"),
            ("GET", "/shares/{share}/schemas/{schema}/tables/{table}/metadata"),
            ("POST", "/shares/{share}/schemas/{schema}/tables/{table}/query"),
            ("GET", "/shares/{share}/schemas/{schema}/tables/{table}/changes"),
        )
    )
    # The open-data catalog (DCAT-AP) of public datasets, for the city's portal: public, no signature.
    + (RouteSpec("GET", "/catalog/dcat", "open-data", authorizer=PUBLIC),),
)

# Environment variable -> (kind, logical name) of the resource whose physical name it carries.
RESOURCE_ENVIRONMENT: dict[str, tuple[str, str]] = {
    "CATALOG_TABLE": ("table", "catalog"),
    "DIRECTORY_TABLE": ("table", "directory"),
    "NONCES_TABLE": ("table", "nonces"),
    "AUDIT_TABLE": ("table", "audit"),
    "SHARING_TABLE": ("table", "sharing"),
    "DATA_BUCKET": ("bucket", "data"),
    "EVENT_BUS": ("bus", "cityshare"),
    "NOTIFICATIONS_TABLE": ("table", "notifications"),
    "NOTIFICATIONS_TOPIC": ("topic", "notifications"),
    "ANALYTICS_TABLE": ("table", "analytics"),
    "IDEMPOTENCY_TABLE": ("table", "idempotency"),
    "QUERY_CATALOG": ("catalog", "curated"),
    "QUERY_WORKGROUP": ("workgroup", "derived"),
    "PLATFORM_KEY": ("key", "platform"),
    "INGEST_DEAD_LETTERS": ("dead-letters", "ingest"),
    "DATA_ROLE_ARN": ("role", "data"),
    "QUERY_ROLE_ARN": ("role", "queries"),
    "USAGE_PLAN_ID": ("usage-plan", "departments"),
    "PRIVACY_FUNCTION": ("function", "privacy"),
    "SESSIONS_FUNCTION": ("function", "sessions"),
    "AUDIT_ARCHIVE_BUCKET": ("bucket", "audit-archive"),
    "AUDIT_SEAL_KEY": ("key", "audit-seal"),
}

# The stewards' console (console/, a static page) is served with these headers by the embedded gateway
# and by CloudFront: scripts only from the page's own origin; Observable Plot sets inline styles. The
# page calls the API at `connect-src`: its own origin on the embedded stack, API Gateway's in AWS.
CONSOLE_PATH = "/console/"
CONSOLE_HSTS_MAX_AGE_SECONDS = 31_536_000


def console_content_security_policy(api_origin: str | None = None) -> str:
    """`api_origin`: where the API is when it is not the page's own origin (the page reads its
    config.json from its own origin in any case)."""
    connect = "'self'" + (f" {api_origin}" if api_origin else "")
    return (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
        f"connect-src {connect}; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )


# Browsers may reuse a preflight's answer this long (Chromium caps it at 2 hours).
PREFLIGHT_MAX_AGE_SECONDS = 3600


# The Delta Sharing protocol's error code of each status the gateway answers itself (the function's
# own answers use functions/core/errors.py; a test keeps the two equal).
GATEWAY_DELTA_SHARING_CODES = {
    400: "INVALID_PARAMETER_VALUE",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "RESOURCE_DOES_NOT_EXIST",
    429: "RESOURCE_EXHAUSTED",
}


def gateway_delta_sharing_code(status: int) -> str:
    return GATEWAY_DELTA_SHARING_CODES.get(status, "INTERNAL_ERROR" if status >= 500 else "INVALID_PARAMETER_VALUE")


def gateway_problem(status: int, code: str, title: str, detail: str) -> dict[str, object]:
    """An answer of the gateway itself (a refused caller, no such route, throttling): problem+json,
    whose extension members `errorCode` and `message` are the Delta Sharing protocol's error. The
    protocol's routes share the API, and API Gateway has one set of gateway responses per API."""
    return {
        "type": f"https://cityshare.city/problems/{code}",
        "title": title,
        "status": status,
        "code": code,
        "detail": detail,
        "errorCode": gateway_delta_sharing_code(status),
        "message": detail,
    }


def browser_error_headers(origin: str) -> dict[str, str]:
    """On the gateway's own errors (refused signature, throttling...), so the console can show them."""
    return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}


def preflight_headers(origin: str, methods: set[str]) -> dict[str, str]:
    """The answer to a CORS preflight on a signed route's path, for the console's origin alone (API
    Gateway's mock integration in AWS, the embedded gateway locally when given a browser origin)."""
    return {
        **browser_error_headers(origin),
        "Access-Control-Allow-Methods": ",".join(sorted(methods)),
        "Access-Control-Allow-Headers": "Authorization,Content-Type,Idempotency-Key",
        "Access-Control-Max-Age": str(PREFLIGHT_MAX_AGE_SECONDS),
    }


def signed_route_methods(routes: tuple[RouteSpec, ...]) -> dict[str, set[str]]:
    """Path -> methods, of the routes behind the signed-request authorizer (those the console calls)."""
    methods: dict[str, set[str]] = {}
    for route in routes:
        if route.authorizer is None:
            methods.setdefault(route.path, set()).add(route.method)
    return methods


CONSOLE_HEADERS = {
    "Content-Security-Policy": console_content_security_policy(),
    "Strict-Transport-Security": f"max-age={CONSOLE_HSTS_MAX_AGE_SECONDS}; includeSubDomains",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}

# The data bucket's roots under which every object belongs to one department, named right after the
# root (functions/core/layout.py lays keys out so): the data role reaches `<root>/<its department>/*`.
DEPARTMENT_ROOTS = ("landing", "curated", "vault", "quarantine", "views/shared", "views/grant", "views/clear", "views/linked")
DEPARTMENT_TAG = "cityshare:department"


def stalled_after_seconds(queue: QueueSpec) -> int:
    """When an upload still processing has used every attempt: one visibility timeout per receive, and one more."""
    return (queue.max_receive_count + 1) * queue.visibility_timeout_seconds


def function_environment(physical: dict[tuple[str, str], str], stage: str, audience: str) -> dict[str, str]:
    """The environment every function gets, from the provisioner's physical names."""
    env = {variable: physical[resource] for variable, resource in RESOURCE_ENVIRONMENT.items()}
    env.update(
        CITYSHARE_STAGE=stage,
        CITYSHARE_AUDIENCE=audience,
        MAX_BODY_BYTES=str(SPEC.limits.max_body_bytes),
        INGEST_MAX_ATTEMPTS=str(SPEC.queue("ingest").max_receive_count),
        INGEST_STALLED_AFTER_SECONDS=str(stalled_after_seconds(SPEC.queue("ingest"))),
        POWERTOOLS_SERVICE_NAME="cityshare",
    )
    return env
