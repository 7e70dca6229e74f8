"""The Delta Sharing protocol (delta-io/delta-sharing, PROTOCOL.md) over CityShare's grants.

- A recipient token stands for one (owner, recipient department) pair: its one **share** is named
  after the owner; its **schemas** are the owner's tags (a dataset's first tag, else `default`);
  its **tables** are the owner's published datasets that a live grant to the recipient department
  covers (on the dataset or on its tags). A revoked or expired grant drops its tables at once.
- A table's **version** is the dataset's version number; `version` and `timestamp` travel over them.
- A **query** answers exactly what `GET /datasets/{id}/data` would for the recipient department:
  the curated files or the grant's view (columns, rows, masking, generalisation, aggregation), as
  presigned HTTPS URLs, decided by the same Cedar policies and audited in the owner's chain.
- Each version is a whole snapshot, so a version's **changes** (the change data feed) are its
  predecessor's rows deleted and its own inserted: `remove` lines for the one, `add` lines for the
  other, each read decided and audited like a query.

Answers are plain data (JSON objects and newline-delimited lines); the handler shapes the HTTP.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import struct
import urllib.request
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from pydantic import ConfigDict, Field

from functions.catalog.models import Dataset
from functions.catalog.repository import CatalogQuery, CatalogRepository
from functions.catalog.service import CatalogService
from functions.core.clock import utc_now
from functions.core.dynamo import batch_get
from functions.core.errors import InvalidRequest, NotFound, Unauthenticated
from functions.core.model import Model
from functions.identity.directory import DirectoryRepository
from functions.ingest.repository import IngestRepository
from functions.sharing.models import DataAccess, Grant
from functions.sharing.recipients import RecipientRepository, ShareReader, live_recipient, recipient_caller
from functions.sharing.repository import SharingRepository
from functions.sharing.service import SharingService

DEFAULT_SCHEMA = "default"
MAX_PAGE = 1000
_FOOTER_PROBE = 64 * 1024


class QueryRequest(Model):
    """The body of a query. Hints are accepted and safely ignored: the answer is the grant's whole
    view of the version, which the connector filters and limits itself."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False, populate_by_name=True)

    predicate_hints: list[str] | None = Field(default=None, alias="predicateHints")
    json_predicate_hints: str | None = Field(default=None, alias="jsonPredicateHints")
    limit_hint: int | None = Field(default=None, alias="limitHint", ge=0)
    version: int | None = Field(default=None, ge=0)
    timestamp: str | None = None
    starting_version: int | None = Field(default=None, alias="startingVersion")
    ending_version: int | None = Field(default=None, alias="endingVersion")


# A recipient holding several grants on one dataset reads one table per grant, named
# `<dataset>__<grant>` (dataset ids hold no underscore), never whichever grant comes first.
GRANT_SEPARATOR = "__"


@dataclass(frozen=True)
class SharedTable:
    share: str
    schema: str
    dataset: Dataset
    grants: tuple[str, ...] = ()  # the live grants covering it: what it serves follows from them and the version
    live: tuple[Grant, ...] = ()
    between: tuple[Grant, ...] = ()  # every grant from the owner to the recipient department, as fetched
    grant_id: str | None = None  # the grant it is read under, when the name says so
    reader: ShareReader | None = None  # who reads it, as confirmed when it was looked up

    @property
    def name(self) -> str:
        if self.grant_id is None:
            return self.dataset.dataset_id
        return f"{self.dataset.dataset_id}{GRANT_SEPARATOR}{self.grant_id}"

    @property
    def under(self) -> str | None:
        """The grant a read uses: the one the name says, else the only one covering it."""
        return self.grant_id or (self.grants[0] if len(self.grants) == 1 else None)

    def listing(self) -> dict[str, str]:
        return {"name": self.name, "schema": self.schema, "share": self.share, "shareId": self.share, "id": self.name}


@dataclass(frozen=True)
class Confirmed:
    reader: ShareReader  # its department's status as the directory holds it now
    dataset: Dataset | None = None
    grants: list[Grant] = field(default_factory=list)  # every grant from the owner to the department, if asked


class RecipientLookup:
    """The recipient's token record and department as they stand now, read in one BatchGetItem with
    whatever else the request needs (a dataset, the department's index of grants)."""

    def __init__(
        self,
        recipients: RecipientRepository,
        directory: DirectoryRepository,
        catalog: CatalogRepository,
        grants: SharingRepository,
        clock: Callable[[], str] = utc_now,
    ) -> None:
        self._recipients = recipients
        self._directory = directory
        self._catalog = catalog
        self._grants = grants
        self._clock = clock

    def confirm(self, reader: ShareReader, dataset_id: str | None = None, with_grants: bool = False) -> Confirmed:
        """Unauthenticated if the token is no longer live or its department is gone. With a dataset
        (or `with_grants`), every grant the owner gave the department: from its index, read in the same
        round trip, or (no index yet) from a grants query."""
        keys: dict[str, list[dict[str, Any]]] = defaultdict(list)
        keys[self._recipients.table_name].append(self._recipients.key(reader.recipient_id))
        keys[self._directory.table_name].append(self._directory.department_key(reader.department))
        if dataset_id is not None:
            keys[self._catalog.table_name].append(self._catalog.key(dataset_id))
        if dataset_id is not None or with_grants:
            keys[self._grants.table_name].append(self._grants.index_key(reader.department))
        found = batch_get(self._grants.client, dict(keys))
        by_kind = {item["pk"]["S"].split("#", 1)[0]: item for items in found.values() for item in items}
        stored = self._recipients.from_stored(by_kind["RECIPIENT"]) if "RECIPIENT" in by_kind else None
        recipient = live_recipient(stored, reader.token_sha256, self._clock())
        if recipient.owner != reader.owner or recipient.department != reader.department:
            raise Unauthenticated("unknown_token")
        if "DEPT" not in by_kind:
            raise Unauthenticated("unknown_department")
        department = self._directory.department_from(by_kind["DEPT"])
        dataset = self._catalog.from_stored(by_kind["DATASET"]) if "DATASET" in by_kind else None
        grants: list[Grant] = []
        if dataset_id is not None or with_grants:
            indexed = self._grants.grants_in_index(by_kind.get("GRANTEE"), reader.owner)
            grants = indexed if indexed is not None else self._grants.grants_between(reader.owner, reader.department)
        return Confirmed(replace(reader, department_status=department.status), dataset, grants)


def schema_of(dataset: Dataset) -> str:
    return dataset.tags[0] if dataset.tags else DEFAULT_SCHEMA


def page(items: list[dict[str, Any]], max_results: int | None, page_token: str | None) -> dict[str, Any]:
    """A page of a list answer; the token is the position to resume from."""
    start = 0
    if page_token:
        try:
            position = base64.urlsafe_b64decode(page_token.encode()).decode()
            if not position.isascii() or not position.isdigit():
                raise ValueError(position)
            start = int(position)
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise InvalidRequest("pageToken is not one this server gave") from None
    if max_results is not None and not 0 <= max_results <= MAX_PAGE:
        raise InvalidRequest(f"maxResults must be between 0 and {MAX_PAGE}")
    size = MAX_PAGE if max_results is None else max_results
    chunk = items[start : start + size]
    answer: dict[str, Any] = {"items": chunk}
    if start + size < len(items):
        answer["nextPageToken"] = base64.urlsafe_b64encode(str(start + size).encode()).decode()
    return answer


# Arrow type (as text) -> Spark SQL type of the schemaString
_SPARK_TYPES = {
    "string": "string",
    "large_string": "string",
    "bool": "boolean",
    "int8": "byte",
    "int16": "short",
    "int32": "integer",
    "int64": "long",
    "float": "float",
    "double": "double",
    "date32[day]": "date",
    "binary": "binary",
}


def spark_type(arrow_type: Any) -> str:
    import pyarrow as pa

    text = str(arrow_type)
    if text in _SPARK_TYPES:
        return _SPARK_TYPES[text]
    if pa.types.is_timestamp(arrow_type):
        return "timestamp"
    if pa.types.is_decimal(arrow_type):
        return f"decimal({arrow_type.precision},{arrow_type.scale})"
    if pa.types.is_dictionary(arrow_type):
        return spark_type(arrow_type.value_type)
    return "string"  # times of day and anything else Spark has no type for travel as text


def schema_string(arrow_schema: Any) -> str:
    fields = [{"name": f.name, "type": spark_type(f.type), "nullable": True, "metadata": {}} for f in arrow_schema]
    return json.dumps({"type": "struct", "fields": fields})


def parquet_footer(url: str) -> Any:
    """The Parquet metadata of a file behind a presigned URL, from its last bytes (one or two range reads)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not url.startswith(("https://", "http://")):
        raise ValueError("not a presigned HTTP(S) URL")

    def tail(size: int) -> bytes:
        request = urllib.request.Request(url, headers={"Range": f"bytes=-{size}"})  # noqa: S310 - checked above
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - our own presigned URL
            return bytes(response.read())

    data = tail(_FOOTER_PROBE)
    length = struct.unpack("<I", data[-8:-4])[0]
    if length + 8 > len(data):
        data = tail(length + 8)
    return pq.read_metadata(pa.BufferReader(b"PAR1" + data[-(length + 8) :]))


class DeltaSharingService:
    def __init__(
        self,
        catalog: CatalogRepository,
        grants: SharingRepository,
        versions: IngestRepository,
        sharing: SharingService,
        policies: CatalogService,
        lookup: RecipientLookup,
        footer: Callable[[str], Any] = parquet_footer,
        clock: Callable[[], str] = utc_now,
    ) -> None:
        self._lookup = lookup
        self._catalog = catalog
        self._grants = grants
        self._versions = versions
        self._sharing = sharing
        self._policies = policies
        self._footer = footer
        self._clock = clock
        # What a table serves is fixed by (dataset, version, the grants covering it): its metaData is
        # kept, so a metadata request (a connector's first call) needs no read. Footers by object path.
        self._metadata_cache: dict[tuple[str, int, tuple[str, ...]], dict[str, Any]] = {}
        self._footers: dict[str, Any] = {}

    # -- lists
    def shares(self, recipient: ShareReader) -> list[dict[str, str]]:
        self._lookup.confirm(recipient)
        return [{"name": recipient.owner, "id": recipient.owner}]

    def share(self, recipient: ShareReader, share: str) -> dict[str, str]:
        self._lookup.confirm(recipient)  # first: a dead token learns nothing, not even the share's name
        self._check_share(recipient, share)
        return {"name": recipient.owner, "id": recipient.owner}

    def schemas(self, recipient: ShareReader, share: str) -> list[dict[str, str]]:
        names = sorted({t.schema for t in self.tables(recipient, share)})
        return [{"name": name, "share": recipient.owner} for name in names]

    def tables(self, recipient: ShareReader, share: str, schema: str | None = None) -> list[SharedTable]:
        """The owner's published datasets that the policies let the recipient department read under a
        grant to the department, now (decided per dataset in one call, not audited: a listing)."""
        confirmed = self._lookup.confirm(recipient, with_grants=True)
        self._check_share(recipient, share)
        reader = recipient_caller(confirmed.reader)
        candidates = [g for g in confirmed.grants if g.grantee_principal is None]
        datasets: dict[str, Dataset] = {}
        for grant in candidates:
            if grant.dataset_id and grant.dataset_id not in datasets:
                found = self._catalog.get(grant.dataset_id)
                if found is not None:
                    datasets[found.dataset_id] = found
        if any(not g.dataset_id for g in candidates):
            for dataset, _ in self._catalog.scan_pages(CatalogQuery(owner=recipient.owner), page_size=100, cursor=None):
                datasets.setdefault(dataset.dataset_id, dataset)
        shared = []
        for dataset in datasets.values():
            if dataset.latest_version < 1 or (schema is not None and schema_of(dataset) != schema.lower()):
                continue
            allowing = self._policies.permitted(reader, "ReadData", dataset, candidates)
            grant_ids = tuple(sorted(g.grant_id for g in allowing))
            if len(grant_ids) == 1:
                shared.append(SharedTable(recipient.owner, schema_of(dataset), dataset, grant_ids))
            else:  # several grants, several views: one table each, the grant in its name
                shared.extend(SharedTable(recipient.owner, schema_of(dataset), dataset, (g,), grant_id=g) for g in grant_ids)
        if schema is not None and not shared and schema.lower() not in {t.schema for t in self.tables(recipient, share)}:
            raise NotFound(f"No schema {schema} in share {share}")
        return sorted(shared, key=lambda t: (t.schema, t.name))

    # -- a table
    def table(self, recipient: ShareReader, share: str, schema: str, name: str) -> SharedTable:
        """One shared table: the dataset and the grants to the recipient in one read, whatever the share holds."""
        missing = NotFound(f"No table {share}.{schema}.{name} is shared with your department")
        # The token, its department, the dataset and the grants to the department: one round trip.
        dataset_name, _, grant_id = name.lower().partition(GRANT_SEPARATOR)
        confirmed = self._lookup.confirm(recipient, dataset_name)
        self._check_share(recipient, share)
        dataset = confirmed.dataset
        if dataset is None or dataset.owner != recipient.owner or dataset.latest_version < 1:
            raise missing
        between = confirmed.grants
        department_grants = [g for g in between if g.grantee_principal is None]
        covering = self._policies.permitted(recipient_caller(confirmed.reader), "ReadData", dataset, department_grants)
        if grant_id:
            covering = [g for g in covering if g.grant_id == grant_id]
        if not covering or schema_of(dataset) != schema.lower():
            raise missing
        if not grant_id and len(covering) > 1:
            names = ", ".join(f"{dataset_name}{GRANT_SEPARATOR}{g.grant_id}" for g in sorted(covering, key=lambda g: g.grant_id))
            raise InvalidRequest(f"Your department holds several grants on {dataset_name}: read one of its tables {names}")
        return SharedTable(
            recipient.owner,
            schema_of(dataset),
            dataset,
            tuple(sorted(g.grant_id for g in covering)),
            tuple(covering),
            tuple(between),
            grant_id=grant_id or None,
            reader=confirmed.reader,
        )

    def table_version(self, recipient: ShareReader, share: str, schema: str, name: str, starting_timestamp: str | None) -> int:
        table = self.table(recipient, share, schema, name)
        if starting_timestamp is None:
            return table.dataset.latest_version
        return self._version_at(table.dataset, starting_timestamp, earliest_after=True)

    def metadata(self, recipient: ShareReader, share: str, schema: str, name: str) -> tuple[int, list[dict[str, Any]]]:
        table = self.table(recipient, share, schema, name)
        recipient = table.reader or recipient
        kept = self._metadata_cache.get((table.name, table.dataset.latest_version, table.grants))
        if kept is not None:
            # Still decided by the policies (a suspended department sees nothing), not audited: no data goes out.
            if not self._policies.viewable(recipient_caller(recipient), table.dataset, list(table.live)):
                raise NotFound(f"No table {share}.{schema}.{name} is shared with your department")
            return table.dataset.latest_version, [self._protocol(), kept]
        access = self._read(recipient, table, None, "metadata")
        footers = [self._footer_of(access.files[0].url)] if access.files else []
        return access.version, [self._protocol(), self._metadata(table, access, footers)]

    def query(
        self, recipient: ShareReader, share: str, schema: str, name: str, request: QueryRequest
    ) -> tuple[int, list[dict[str, Any]]]:
        table = self.table(recipient, share, schema, name)
        recipient = table.reader or recipient
        if request.starting_version is not None or request.ending_version is not None:
            raise InvalidRequest("Ask .../changes for a range of versions; a query reads one version")
        if request.version is not None and request.timestamp is not None:
            raise InvalidRequest("Give version or timestamp, not both")
        number = request.version
        if request.timestamp is not None:
            number = self._version_at(table.dataset, request.timestamp, earliest_after=False)
        if number is not None and not 1 <= number <= table.dataset.latest_version:
            raise NotFound(f"{name} has no version {number}")
        access = self._read(recipient, table, number, "query")
        footers = [self._footer_of(file.url) for file in access.files]
        lines = [self._protocol(), self._metadata(table, access, footers)]
        for file, footer in zip(access.files, footers, strict=True):
            path = file.url.split("?", 1)[0]
            lines.append(
                {
                    "file": {
                        "url": file.url,
                        "id": hashlib.sha256(path.encode()).hexdigest()[:32],
                        "partitionValues": {},
                        "size": file.size_bytes,
                        "stats": json.dumps({"numRecords": footer.num_rows}),
                        "expirationTimestamp": _millis(file.expires_at),
                        "version": access.version,
                    }
                }
            )
        return access.version, lines

    def changes(
        self,
        recipient: ShareReader,
        share: str,
        schema: str,
        name: str,
        starting_version: int | None,
        ending_version: int | None = None,
        starting_timestamp: str | None = None,
        ending_timestamp: str | None = None,
    ) -> tuple[int, list[dict[str, Any]]]:
        """The change data feed from `starting_version` to `ending_version` (default: the latest),
        inclusive: for each version, its predecessor's files removed and its own added."""
        table = self.table(recipient, share, schema, name)
        recipient = table.reader or recipient
        latest = table.dataset.latest_version
        if starting_version is None and starting_timestamp is None:
            raise InvalidRequest("Give startingVersion or startingTimestamp")
        start = (
            starting_version if starting_version is not None else self._version_at(table.dataset, str(starting_timestamp), True)
        )
        end = ending_version if ending_version is not None else latest
        if ending_timestamp is not None and ending_version is None:
            end = self._version_at(table.dataset, ending_timestamp, earliest_after=False)
        if not 1 <= start <= end <= latest:
            raise InvalidRequest(f"Versions must satisfy 1 <= startingVersion <= endingVersion <= {latest}")
        committed = {v.version: _millis(v.created_at) for v in self._versions.list_versions(table.dataset.dataset_id, limit=1000)}
        accesses: dict[int, DataAccess] = {}

        def access(version: int) -> DataAccess:
            if version not in accesses:
                accesses[version] = self._read(recipient, table, version, "changes")
            return accesses[version]

        footers = [self._footer_of(file.url) for file in access(end).files]
        lines = [self._protocol(), self._metadata(table, access(end), footers)]
        for version in range(start, end + 1):
            when = committed.get(version, 0)
            if version > 1:
                lines += [{"remove": self._file(f, version, when)} for f in access(version - 1).files]
            lines += [
                {"add": dict(self._file(f, version, when), stats=json.dumps({"numRecords": self._footer_of(f.url).num_rows}))}
                for f in access(version).files
            ]
        return end, lines

    @staticmethod
    def _file(file: Any, version: int, when: int) -> dict[str, Any]:
        path = file.url.split("?", 1)[0]
        return {
            "url": file.url,
            "id": hashlib.sha256(path.encode()).hexdigest()[:32],
            "partitionValues": {},
            "size": file.size_bytes,
            "expirationTimestamp": _millis(file.expires_at),
            "version": version,
            "timestamp": when,
        }

    # -- helpers
    def _check_share(self, recipient: ShareReader, share: str) -> None:
        if share.lower() != recipient.owner:
            raise NotFound(f"No share {share} for this recipient")

    def _read(self, recipient: ShareReader, table: SharedTable, version: int | None, what: str) -> DataAccess:
        caller = recipient_caller(recipient)
        # The dataset and the grants were read for this request already: the decision reuses them.
        fetched = (table.dataset, list(table.between))
        request_id = f"delta-sharing-{what}"
        return self._sharing.read(caller, table.dataset.dataset_id, version, table.under, request_id=request_id, fetched=fetched)

    def _protocol(self) -> dict[str, Any]:
        return {"protocol": {"minReaderVersion": 1}}

    def _footer_of(self, url: str) -> Any:
        path = url.split("?", 1)[0]  # presigned anew each time; the object behind it never changes
        if path not in self._footers:
            if len(self._footers) > 1000:
                self._footers.clear()
            self._footers[path] = self._footer(url)
        return self._footers[path]

    def _metadata(self, table: SharedTable, access: DataAccess, footers: list[Any]) -> dict[str, Any]:
        arrow_schema = footers[0].schema.to_arrow_schema() if footers else None
        metadata = self._metadata_line(table, access, arrow_schema)
        if len(self._metadata_cache) > 1000:
            self._metadata_cache.clear()
        self._metadata_cache[(table.name, access.version, table.grants)] = metadata
        return metadata

    def _metadata_line(self, table: SharedTable, access: DataAccess, arrow_schema: Any) -> dict[str, Any]:
        return {
            "metaData": {
                "id": f"{table.share}.{table.name}",
                "name": table.name,
                "description": table.dataset.title + (f" (under grant {table.grant_id})" if table.grant_id else ""),
                "format": {"provider": "parquet", "options": {}},
                "schemaString": schema_string(arrow_schema) if arrow_schema is not None else schema_string([]),
                "partitionColumns": [],
                "configuration": {"enableChangeDataFeed": "true"},
                "version": access.version,
                "numFiles": len(access.files),
                "size": sum(f.size_bytes for f in access.files),
            }
        }

    def _version_at(self, dataset: Dataset, timestamp: str, earliest_after: bool) -> int:
        """The version current at `timestamp` (or, for a starting timestamp, the first one at or after it)."""
        moment = _parse_time(timestamp)
        versions = sorted(self._versions.list_versions(dataset.dataset_id, limit=1000), key=lambda v: v.version)
        if earliest_after:
            later = [v.version for v in versions if _parse_time(v.created_at) >= moment]
            if not later:
                raise InvalidRequest(f"No version of {dataset.dataset_id} at or after {timestamp}")
            return later[0]
        earlier = [v.version for v in versions if _parse_time(v.created_at) <= moment]
        if not earlier:
            raise InvalidRequest(f"{dataset.dataset_id} had no version yet at {timestamp}")
        return earlier[-1]


def _parse_time(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidRequest(f"{value!r} is not an ISO 8601 timestamp") from None
    if moment.tzinfo is None:
        raise InvalidRequest(f"{value!r} has no time zone")
    return moment


def _millis(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)
