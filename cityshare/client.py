"""The CityShare SDK: one method per API operation, every request signed.

from cityshare import CityShareClient, Profile
client = CityShareClient.from_profile(Profile.load())
for dataset in client.iter_datasets(tag="traffic"):
    print(dataset["dataset_id"], dataset["title"])
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import requests

from cityshare.audit import ChainReport, verify_chain
from cityshare.keys import load_private_key
from cityshare.profile import Profile
from cityshare.signing import RequestSigner, request_target


def parquet_table(data: bytes) -> Any:
    """Parquet bytes as a pyarrow Table, read on this thread. Arrow's reader threads can outlive the
    interpreter and abort the CLI at exit after its work is done (apache/arrow#34314: 13 of 120 short
    processes with `pq.read_table`, none of 320 this way); decoding alone costs 25 ms more per 1M rows."""
    import io

    import pyarrow.parquet as pq

    return pq.ParquetFile(io.BytesIO(data)).read(use_threads=False)


class CityShareError(Exception):
    """An API error: the problem+json body's `code`, HTTP status and detail."""

    def __init__(self, status: int, code: str, detail: str, problem: dict[str, Any] | None = None) -> None:
        self.status = status
        self.code = code
        self.detail = detail
        self.problem = problem or {}
        super().__init__("; ".join([f"{status} {code}: {detail}", *self.problems()]))

    def problems(self) -> list[str]:
        """Each per-field problem the server named (where, and what is wrong), as text."""
        found = []
        for issue in self.problem.get("errors") or []:
            if isinstance(issue, dict):
                where = ".".join(str(part) for part in issue.get("location") or [] if part not in ("body",))
                found.append(f"{where or 'request'}: {issue.get('message', '')}")
        return found


# Answers worth trying again: throttling, the gateway or the function failing or timing out, and a
# call with the same idempotency key still in progress. A mutating call is retried with the same
# Idempotency-Key, so the server does it once and answers the retry with the first call's result.
_RETRIED_STATUSES = {429, 500, 502, 503, 504}
_MUTATING = {"POST", "PUT", "PATCH", "DELETE"}


def _worth_retrying(response: requests.Response) -> bool:
    if response.status_code in _RETRIED_STATUSES:
        return True
    if response.status_code == 409:
        try:
            return bool(response.json().get("code") == "idempotency_in_progress")
        except ValueError:
            return False
    return False


def _retry_after(response: requests.Response) -> float | None:
    try:
        return min(float(response.headers.get("Retry-After", "")), 30.0)
    except ValueError:
        return None


class CityShareClient:
    def __init__(
        self, endpoint: str, signer: RequestSigner, timeout: float = 30.0, retries: int = 4, backoff: float = 0.5
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.signer = signer
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self._http = requests.Session()

    @classmethod
    def from_profile(cls, profile: Profile) -> CityShareClient:
        signer = RequestSigner(
            profile.department, profile.principal, load_private_key(Path(profile.key_file)), profile.kid, profile.audience
        )
        return cls(profile.endpoint, signer)

    # -- transport
    def request(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None = None,
        body: Any = None,
        idempotency_key: str | None = None,
    ) -> Any:
        """One API call, signed afresh on each attempt; retried on throttling, 5xx and dropped
        connections. A mutating call carries an Idempotency-Key (a new one per call unless given),
        the same on every retry."""
        query = urlencode({k: v for k, v in (params or {}).items() if v is not None}, doseq=True)
        path_and_query = path + (f"?{query}" if query else "")
        data = b"" if body is None else json.dumps(body).encode()
        key = (idempotency_key or str(uuid.uuid4())) if method.upper() in _MUTATING else None
        for attempt in range(self.retries + 1):
            headers = {"Authorization": f"Bearer {self.signer.token(method, request_target(path_and_query), data)}"}
            if body is not None:
                headers["Content-Type"] = "application/json"
            if key is not None:
                headers["Idempotency-Key"] = key
            try:
                response = self._http.request(
                    method, self.endpoint + path_and_query, data=data or None, headers=headers, timeout=self.timeout
                )
            except (requests.ConnectionError, requests.Timeout):
                if attempt == self.retries:
                    raise
                time.sleep(self.backoff * 2**attempt)
                continue
            if attempt < self.retries and _worth_retrying(response):
                time.sleep(_retry_after(response) or self.backoff * 2**attempt)
                continue
            break
        if response.status_code >= 400:
            try:
                problem = response.json()
            except ValueError:
                problem = {}
            raise CityShareError(
                response.status_code,
                str(problem.get("code", "http_error")),
                str(problem.get("detail", response.text[:200])),
                problem,
            )
        return response.json() if response.content else None

    # -- identity and directory (platform admin)
    def whoami(self) -> dict[str, Any]:
        return dict(self.request("GET", "/me"))

    def register_department(self, department_id: str, name: str, wait: float = 120.0) -> dict[str, Any]:
        """Register a department; with `wait`, return once its resources (its KMS key) exist, which
        the provisioner makes within seconds (it can publish nothing before)."""
        registered = dict(self.request("POST", "/admin/departments", body={"department_id": department_id, "name": name}))
        deadline = time.monotonic() + wait
        while wait and not registered.get("data_key") and time.monotonic() < deadline:
            time.sleep(0.2)
            registered = dict(self.describe_department(department_id)["department"])
        return registered

    def list_departments(self) -> list[dict[str, Any]]:
        return list(self.request("GET", "/admin/departments"))

    def describe_department(self, department_id: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/admin/departments/{department_id}"))

    def set_department_status(self, department_id: str, status: str) -> dict[str, Any]:
        return dict(self.request("PATCH", f"/admin/departments/{department_id}", body={"status": status}))

    def put_principal(self, department_id: str, principal_id: str, roles: list[str], display_name: str = "") -> dict[str, Any]:
        body = {"roles": roles, "display_name": display_name}
        return dict(self.request("PUT", f"/admin/departments/{department_id}/principals/{principal_id}", body=body))

    def set_principal_status(self, department_id: str, principal_id: str, status: str) -> dict[str, Any]:
        """Suspend ("suspended") or reinstate ("active") one principal."""
        path = f"/admin/departments/{department_id}/principals/{principal_id}"
        return dict(self.request("PATCH", path, body={"status": status}))

    def add_key(self, department_id: str, principal_id: str, jwk: dict[str, Any]) -> dict[str, Any]:
        path = f"/admin/departments/{department_id}/principals/{principal_id}/keys"
        return dict(self.request("POST", path, body={"jwk": jwk}))

    def retire_key(self, department_id: str, kid: str) -> None:
        self.request("DELETE", f"/admin/departments/{department_id}/keys/{kid}")

    # -- catalog
    def create_dataset(
        self,
        dataset_id: str,
        title: str,
        classification: str,
        schema: dict[str, Any],
        description: str = "",
        tags: list[str] | None = None,
        licence: str | None = None,
        contact_point: dict[str, str] | None = None,
        themes: list[str] | None = None,
        ingest: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """`licence` (a URL), `contact_point` ({name, email}) and `themes` (EU data themes such as
        TRAN) describe a public dataset in the open-data catalog (GET /catalog/dcat); `ingest`
        ({on_invalid_rows, max_invalid_share}) says what becomes of a file with invalid rows."""
        body: dict[str, Any] = {
            "dataset_id": dataset_id,
            "title": title,
            "description": description,
            "tags": tags or [],
            "classification": classification,
            "schema": schema,
            "themes": themes or [],
        }
        if licence:
            body["licence"] = licence
        if contact_point:
            body["contact_point"] = contact_point
        if ingest:
            body["ingest"] = ingest
        return dict(self.request("POST", "/datasets", body=body))

    def open_data_catalog(self, turtle: bool = False) -> str:
        """The public DCAT-AP catalog, as anyone (no signature) gets it: JSON-LD, or Turtle."""
        accept = "text/turtle" if turtle else "application/ld+json"
        response = self._http.get(f"{self.endpoint}/catalog/dcat", headers={"Accept": accept}, timeout=self.timeout)
        response.raise_for_status()
        return str(response.text)

    def get_dataset(self, dataset_id: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/datasets/{dataset_id}"))

    def update_dataset(self, dataset_id: str, **changes: Any) -> dict[str, Any]:
        return dict(self.request("PATCH", f"/datasets/{dataset_id}", body=changes))

    def list_datasets(
        self,
        owner: str | None = None,
        classification: str | None = None,
        tag: str | None = None,
        q: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        params = {"owner": owner, "classification": classification, "tag": tag, "q": q, "limit": limit, "cursor": cursor}
        return dict(self.request("GET", "/datasets", params=params))

    def iter_datasets(self, **filters: Any) -> Iterator[dict[str, Any]]:
        cursor = None
        while True:
            page = self.list_datasets(cursor=cursor, **filters)
            yield from page["datasets"]
            cursor = page.get("next_cursor")
            if not cursor:
                return

    # -- ingestion
    def request_upload(
        self,
        dataset_id: str,
        filename: str,
        file_format: str,
        size_bytes: int,
        compression: str = "none",
        csv: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"filename": filename, "format": file_format, "compression": compression, "size_bytes": size_bytes}
        if csv:
            body["csv"] = csv
        return dict(self.request("POST", f"/datasets/{dataset_id}/uploads", body=body))

    def upload_file(
        self,
        dataset_id: str,
        path: Path,
        file_format: str | None = None,
        compression: str | None = None,
        csv: dict[str, str] | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> dict[str, Any]:
        """Send a file through a presigned upload (multipart when large); returns the upload ticket.
        The file is looked at first: one that is not CSV, JSON lines or Parquet is refused here
        (`UnsuitableFile`), and a CSV's delimiter and encoding, when not given, are detected."""
        guessed_format, guessed_compression = guess_format(path)
        file_format, compression = file_format or guessed_format, compression or guessed_compression
        size = path.stat().st_size
        head = _head(path, compression)
        check_file(path.name, head, file_format)
        if file_format == "csv":
            csv = sniff_csv(head) | (csv or {})
        ticket = self.request_upload(dataset_id, _safe_filename(path.name), file_format, size, compression, csv)
        with path.open("rb") as handle:
            if ticket.get("url"):
                self._put(ticket["url"], _Counting(handle, size, progress), size, ticket.get("headers") or {})
                return ticket
            parts = []
            for part in ticket["parts"]:
                chunk = handle.read(part["size_bytes"])
                etag = self._put(part["url"], chunk, len(chunk))
                parts.append({"part_number": part["part_number"], "etag": etag})
                if progress:
                    progress(len(chunk))
        self.request("POST", f"/datasets/{dataset_id}/uploads/{ticket['upload_id']}/complete", body={"parts": parts})
        return ticket

    def _put(self, url: str, data: Any, size: int, signed: dict[str, str] | None = None) -> str:
        """PUT to a presigned URL with the headers it was signed with (its size, type, encryption)."""
        headers = {**(signed or {}), "Content-Type": "application/octet-stream", "Content-Length": str(size)}
        response = self._http.put(url, data=data, headers=headers, timeout=max(self.timeout, 600))
        if response.status_code >= 300:
            raise CityShareError(response.status_code, "upload_failed", response.text[:300])
        return str(response.headers.get("ETag", ""))

    def upload_status(self, dataset_id: str, upload_id: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/datasets/{dataset_id}/uploads/{upload_id}"))

    def wait_for_upload(self, dataset_id: str, upload_id: str, timeout: float = 300.0) -> dict[str, Any]:
        """Poll until the upload ends: published, rejected or failed."""
        deadline = time.monotonic() + timeout
        delay = 0.1
        while True:
            upload = self.upload_status(dataset_id, upload_id)
            if upload["status"] in ("published", "rejected", "failed") or time.monotonic() > deadline:
                return upload
            time.sleep(delay)
            delay = min(delay * 1.5, 2.0)

    def push_records(self, dataset_id: str, records: list[dict[str, Any]]) -> dict[str, Any]:
        return dict(self.request("POST", f"/datasets/{dataset_id}/records", body={"records": records}))

    def list_versions(self, dataset_id: str) -> list[dict[str, Any]]:
        return list(self.request("GET", f"/datasets/{dataset_id}/versions")["versions"])

    def get_version(self, dataset_id: str, version: int) -> dict[str, Any]:
        return dict(self.request("GET", f"/datasets/{dataset_id}/versions/{version}"))

    # -- sharing
    def request_access(
        self, dataset_id: str, purpose: str, purpose_category: str, legal_basis: str, until: str, columns: list[str] | None = None
    ) -> dict[str, Any]:
        body = {
            "purpose": purpose,
            "purpose_category": purpose_category,
            "legal_basis": legal_basis,
            "until": until,
            "columns": columns or [],
        }
        return dict(self.request("POST", f"/datasets/{dataset_id}/access-requests", body=body))

    def pending_requests(self) -> list[dict[str, Any]]:
        """Every request waiting for the department's stewards (all pages)."""
        found: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            page = self.pending_requests_page(limit=100, cursor=cursor)
            found.extend(page["requests"])
            cursor = page.get("next_cursor")
            if not cursor:
                return found

    def pending_requests_page(self, limit: int = 50, cursor: str | None = None) -> dict[str, Any]:
        """One page of the waiting requests, with their datasets' titles and how many wait in all."""
        return dict(self.request("GET", "/access-requests", params={"limit": limit, "cursor": cursor}))

    def approve_request(
        self, dataset_id: str, access_request_id: str, terms: dict[str, Any] | None = None, note: str = ""
    ) -> dict[str, Any]:
        body = {"terms": terms, "note": note} if terms else {"note": note}
        return dict(self.request("POST", f"/datasets/{dataset_id}/access-requests/{access_request_id}/approve", body=body))

    def deny_request(self, dataset_id: str, access_request_id: str, reason: str) -> dict[str, Any]:
        return dict(
            self.request("POST", f"/datasets/{dataset_id}/access-requests/{access_request_id}/deny", body={"reason": reason})
        )

    def grant(
        self,
        dataset_id: str,
        grantee_department: str,
        purpose: str,
        purpose_category: str,
        terms: dict[str, Any] | None = None,
        grantee_principal: str | None = None,
        legal_basis: str | None = None,
    ) -> dict[str, Any]:
        """Grant a department (or one of its principals) `dataset_id` under `terms`; `legal_basis`
        is required when the dataset is about people (never assumed)."""
        body = {
            "grantee_department": grantee_department,
            "grantee_principal": grantee_principal,
            "purpose": purpose,
            "purpose_category": purpose_category,
            "legal_basis": legal_basis,
            "terms": terms or {},
        }
        return dict(self.request("POST", f"/datasets/{dataset_id}/grants", body=body))

    def grants(self, dataset_id: str) -> list[dict[str, Any]]:
        return list(self.request("GET", f"/datasets/{dataset_id}/grants")["grants"])

    def revoke_grant(self, dataset_id: str, grant_id: str) -> dict[str, Any]:
        return dict(self.request("DELETE", f"/datasets/{dataset_id}/grants/{grant_id}"))

    def grant_by_tags(
        self,
        grantee_department: str,
        tags: list[str],
        purpose: str,
        purpose_category: str,
        max_classification: str = "internal",
        expires_at: str | None = None,
        grantee_principal: str | None = None,
    ) -> dict[str, Any]:
        """Grant every dataset of your department carrying all `tags` (now and later), up to a classification."""
        body = {
            "grantee_department": grantee_department,
            "grantee_principal": grantee_principal,
            "tags": tags,
            "max_classification": max_classification,
            "purpose": purpose,
            "purpose_category": purpose_category,
            "terms": {"expires_at": expires_at} if expires_at else {},
        }
        return dict(self.request("POST", "/grants", body=body))

    def department_grants(self, direction: str = "received") -> list[dict[str, Any]]:
        """Grants your department received, or (stewards) gave: direction "received" or "given"."""
        return list(self.request("GET", "/grants", params={"direction": direction})["grants"])

    def revoke_department_grant(self, grant_id: str) -> dict[str, Any]:
        """Revoke any grant your department gave (tag grants included), by id."""
        return dict(self.request("DELETE", f"/grants/{grant_id}"))

    # -- Delta Sharing recipients (stewards)
    def issue_share_profile(self, department: str, expires_in_days: int = 90, label: str = "") -> dict[str, Any]:
        """A Delta Sharing profile for `department` to read what your department's live grants give it,
        from pandas, Spark or Power BI. The token is in it, shown this once. The endpoint is the one
        this client talks to (the server's guess may not know a custom domain)."""
        issued = dict(
            self.request(
                "POST", "/share-recipients", body={"department": department, "expires_in_days": expires_in_days, "label": label}
            )
        )
        issued["endpoint"] = f"{self.endpoint}/delta-sharing"
        return issued

    def share_recipients(self) -> list[dict[str, Any]]:
        return list(self.request("GET", "/share-recipients")["recipients"])

    def revoke_share_recipient(self, recipient_id: str) -> dict[str, Any]:
        return dict(self.request("DELETE", f"/share-recipients/{recipient_id}"))

    # -- analytics
    def define_alert_rule(self, dataset_id: str, rule: dict[str, Any]) -> dict[str, Any]:
        """E.g. {"name": ..., "measure": {"aggregate": "mean", "column": "pm25"}, "group_by": ["station_id"],
        "window": {"column": "measured_at", "minutes": 60}, "comparison": "gt", "threshold": 75}."""
        return dict(self.request("POST", f"/datasets/{dataset_id}/alert-rules", body=rule))

    def alert_rules(self, dataset_id: str) -> list[dict[str, Any]]:
        return list(self.request("GET", f"/datasets/{dataset_id}/alert-rules")["rules"])

    def delete_alert_rule(self, dataset_id: str, rule_id: str) -> dict[str, Any]:
        return dict(self.request("DELETE", f"/datasets/{dataset_id}/alert-rules/{rule_id}"))

    def alerts(self, dataset_id: str) -> list[dict[str, Any]]:
        return list(self.request("GET", f"/datasets/{dataset_id}/alerts")["alerts"])

    def subscribe(
        self,
        dataset_id: str | None = None,
        tag: str | None = None,
        kinds: list[str] | None = None,
        webhook_url: str | None = None,
    ) -> dict[str, Any]:
        """Subscribe to a dataset (or a tag); with a webhook, the answer holds its secret, shown once."""
        body = {"dataset_id": dataset_id, "tag": tag, "kinds": kinds or ["versions"], "webhook_url": webhook_url}
        return dict(self.request("POST", "/subscriptions", body={k: v for k, v in body.items() if v is not None}))

    def subscriptions(self) -> list[dict[str, Any]]:
        return list(self.request("GET", "/subscriptions")["subscriptions"])

    def unsubscribe(self, subscription_id: str) -> dict[str, Any]:
        return dict(self.request("DELETE", f"/subscriptions/{subscription_id}"))

    def define_derived_dataset(
        self,
        dataset_id: str,
        title: str,
        inputs: list[str],
        sql: str,
        description: str = "",
        tags: list[str] | None = None,
        engine: str = "duckdb",
        result_columns: dict[str, str] | None = None,
        indicator: dict[str, Any] | None = None,
        places: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """A dataset computed by `sql` over `inputs` (named in the SQL with `_` for `-`), rebuilt when they
        change. `engine="athena"` (AWS only) runs Athena SQL and needs `result_columns` {name: type}.
        `indicator` ({"title", "unit", "value", "district", "time", "combine", "limit", "better"}) shows it
        in the department's city picture (`city_picture()`). `places` ([{"table", "points", "longitude",
        "latitude" (or "point"), "areas", "geometry", "area_columns"}]) joins points to the areas holding
        them, as tables the SQL reads."""
        body: dict[str, Any] = {
            "dataset_id": dataset_id,
            "title": title,
            "inputs": inputs,
            "sql": sql,
            "description": description,
            "tags": tags or [],
            "engine": engine,
        }
        if result_columns:
            body["result_columns"] = result_columns
        if indicator:
            body["indicator"] = indicator
        if places:
            body["places"] = places
        return dict(self.request("POST", "/derived-datasets", body=body))

    def lineage(self, dataset_id: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/datasets/{dataset_id}/lineage"))

    def city_picture(self) -> dict[str, Any]:
        """The department's indicators by district and over time, its rules' alerts and the districts' map."""
        return dict(self.request("GET", "/city"))

    # -- notifications
    def notifications(self, after: str | None = None, limit: int = 50) -> dict[str, Any]:
        return dict(self.request("GET", "/notifications", params={"after": after, "limit": limit}))

    def follow_notifications(
        self, after: str | None = None, poll_seconds: float = 2.0, stop: Callable[[], bool] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Yield notifications as they arrive (the newest page first when `after` is None), each once.

        Each poll looks back a little before the cursor: two notifications stored at nearly the same
        time by different function instances may become visible out of order."""
        seen: dict[str, float] = {}
        start = after  # what the caller has already read
        look_back = True
        while stop is None or not stop():
            page = self.notifications(after=_looking_back(after, FOLLOW_LOOKBACK_SECONDS) if look_back else after, limit=100)
            fresh = [
                n
                for n in page["notifications"]
                if n["notification_id"] not in seen and (start is None or n["notification_id"] > start)
            ]
            now = time.monotonic()
            for item in fresh:
                seen[item["notification_id"]] = now
                yield item
            seen = {k: t for k, t in seen.items() if now - t < 10 * FOLLOW_LOOKBACK_SECONDS}
            if page.get("next_cursor") and (after is None or page["next_cursor"] > after):
                after = page["next_cursor"]
            full = len(page["notifications"]) == 100
            look_back = bool(fresh) or not full  # a full page of repeats: read on from the cursor itself
            if not full:
                time.sleep(poll_seconds)

    def data_access(
        self,
        dataset_id: str,
        version: int | None = None,
        grant_id: str | None = None,
        linkage: str | None = None,
        decrypt: list[str] | None = None,
    ) -> dict[str, Any]:
        """Presigned URLs to a version: whole, the view of `grant_id`, or (`linkage`: a linkage grant your
        department holds) your own dataset with the identifiers it links re-keyed into its linkage space.
        `decrypt` (the owner only): encrypted columns to read in clear, audited."""
        params = {"version": version, "grant_id": grant_id, "linkage": linkage, "decrypt": ",".join(decrypt) if decrypt else None}
        return dict(self.request("GET", f"/datasets/{dataset_id}/data", params=params))

    def read_table(
        self,
        dataset_id: str,
        version: int | None = None,
        grant_id: str | None = None,
        linkage: str | None = None,
        decrypt: list[str] | None = None,
    ) -> Any:
        """The version (or the caller's grant's view of it) as a pyarrow Table; `.to_pandas()` with pandas installed."""
        import pyarrow as pa

        access = self.data_access(dataset_id, version, grant_id, linkage, decrypt)
        tables = []
        for file in access["files"]:
            response = self._http.get(file["url"], timeout=max(self.timeout, 600))
            if response.status_code != 200:
                raise CityShareError(response.status_code, "download_failed", response.text[:300])
            tables.append(parquet_table(response.content))
        table = pa.concat_tables(tables)
        # What was read, and under which grant (none: your own or public data), kept with the table.
        read = {
            b"cityshare.version": str(access["version"]).encode(),
            b"cityshare.grant_id": (access.get("grant_id") or "").encode(),
        }
        return table.replace_schema_metadata({**(table.schema.metadata or {}), **read})

    def download(
        self,
        dataset_id: str,
        folder: Path,
        version: int | None = None,
        grant_id: str | None = None,
        progress: Callable[[int, int], None] | None = None,
        linkage: str | None = None,
    ) -> list[Path]:
        """Save the version's Parquet files (or the grant's view) in `folder`, streamed; returns their paths.

        `progress(bytes_done, bytes_total)` is called as bytes arrive. A file is written under a
        temporary name and renamed when complete, so an interrupted download leaves no partial file.
        """
        access = self.data_access(dataset_id, version, grant_id, linkage)
        folder.mkdir(parents=True, exist_ok=True)
        total = sum(int(f["size_bytes"]) for f in access["files"])
        done = 0
        saved: list[Path] = []
        for number, file in enumerate(access["files"]):
            target = folder / f"{dataset_id}-v{access['version']}-part{number:05d}.parquet"
            partial = target.with_suffix(".parquet.partial")
            with self._http.get(file["url"], stream=True, timeout=max(self.timeout, 600)) as response:
                if response.status_code != 200:
                    raise CityShareError(response.status_code, "download_failed", response.text[:300])
                with partial.open("wb") as handle:
                    for chunk in response.iter_content(chunk_size=1 << 20):
                        handle.write(chunk)
                        done += len(chunk)
                        if progress:
                            progress(done, total)
            partial.replace(target)
            saved.append(target)
        return saved

    def read_dataframe(
        self,
        dataset_id: str,
        version: int | None = None,
        grant_id: str | None = None,
        linkage: str | None = None,
        decrypt: list[str] | None = None,
    ) -> Any:
        """The version (or the caller's grant's view of it) as a pandas DataFrame."""
        return self.read_table(dataset_id, version, grant_id, linkage, decrypt).to_pandas()

    # -- audit
    def audit(self, department: str | None = None, after: int = 0, limit: int = 100) -> dict[str, Any]:
        return dict(self.request("GET", "/audit", params={"department": department, "after": after, "limit": limit}))

    def iter_audit(self, department: str | None = None) -> Iterator[dict[str, Any]]:
        after = 0
        while True:
            page = self.audit(department, after=after, limit=500)
            yield from page["entries"]
            if page.get("next_after") is None:
                return
            after = int(page["next_after"])

    def audit_seal(self, department: str | None = None) -> dict[str, Any]:
        """The chain's latest seal (None before the first) and the seal key's public half (PEM)."""
        return dict(self.request("GET", "/audit/seal", params={"department": department}))

    def verify_audit(self, department: str | None = None, witness: dict[str, Any] | None = None) -> ChainReport:
        """Verify a chain, and its platform seal; with `witness` (a head verified before, and the
        seal key pinned then), also that nothing was cut off since."""
        chain = department or self.signer.department
        sealed = self.audit_seal(department)
        return verify_chain(chain, self.iter_audit(department), witness, sealed.get("seal"), str(sealed.get("public_key") or ""))


FOLLOW_LOOKBACK_SECONDS = 5


def _looking_back(cursor: str | None, seconds: float) -> str | None:
    """The cursor moved `seconds` earlier (cursors are `<ISO time>#<event id>`)."""
    if cursor is None:
        return None
    from datetime import datetime, timedelta

    try:
        moment = datetime.fromisoformat(cursor.split("#", 1)[0])
    except ValueError:
        return cursor
    return (moment - timedelta(seconds=seconds)).isoformat(timespec="microseconds")


def guess_format(path: Path) -> tuple[str, str]:
    """(format, compression) from a file name: data.csv, data.jsonl.gz, data.parquet ..."""
    suffixes = [s.lower() for s in path.suffixes]
    compression = "gzip" if suffixes and suffixes[-1] in (".gz", ".gzip") else "none"
    if compression == "gzip":
        suffixes = suffixes[:-1]
    last = suffixes[-1] if suffixes else ""
    formats = {".csv": "csv", ".tsv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".parquet": "parquet"}
    return formats.get(last, "csv"), compression


class UnsuitableFile(ValueError):
    """A file CityShare cannot take, said before anything is sent."""


# What files that are not data look like at their first bytes, and what to do instead.
_NOT_DATA = {
    b"PK\x03\x04": "a ZIP archive or an Office document (.xlsx, .docx): export the sheet as CSV",
    b"\xd0\xcf\x11\xe0": "an old Office document (.xls): export the sheet as CSV",
    b"%PDF": "a PDF: CityShare takes CSV, JSON lines or Parquet",
    b"\x89PNG": "an image: CityShare takes CSV, JSON lines or Parquet",
    b"\xff\xd8\xff": "an image: CityShare takes CSV, JSON lines or Parquet",
}
SNIFF_BYTES = 64 * 1024


def _head(path: Path, compression: str) -> bytes:
    """The file's first bytes, decompressed when it is gzip."""
    import gzip

    with path.open("rb") as raw:
        if compression == "gzip" or raw.read(2) == b"\x1f\x8b":
            raw.seek(0)
            try:
                with gzip.open(raw) as unpacked:
                    return unpacked.read(SNIFF_BYTES)
            except (OSError, EOFError) as error:
                raise UnsuitableFile(f"{path.name} is not valid gzip: {error}") from None
        raw.seek(0)
        return raw.read(SNIFF_BYTES)


def check_file(name: str, head: bytes, file_format: str) -> None:
    """Refuse what cannot be ingested before it is uploaded, with what to do instead."""
    if not head:
        raise UnsuitableFile(f"{name} is empty")
    for magic, what in _NOT_DATA.items():
        if head.startswith(magic):
            raise UnsuitableFile(f"{name} is {what}")
    if file_format == "parquet" and not head.startswith(b"PAR1"):
        raise UnsuitableFile(f"{name} is not a Parquet file (no PAR1 header): pass --format csv or jsonl if it is one")
    if file_format != "parquet" and head.startswith(b"PAR1"):
        raise UnsuitableFile(f"{name} is a Parquet file: name it .parquet or pass --format parquet")


def sniff_csv(head: bytes) -> dict[str, str]:
    """A CSV's encoding and delimiter from its first bytes (what a spreadsheet exports: semicolons
    in much of Europe, Windows-1252 or UTF-16 text, a byte-order mark)."""
    import csv as csv_module

    if head.startswith(b"\xef\xbb\xbf"):
        encoding, text = "utf-8-sig", head[3:].decode("utf-8", errors="ignore")
    elif head.startswith((b"\xff\xfe", b"\xfe\xff")):
        encoding, text = "utf-16", head.decode("utf-16", errors="ignore")
    else:
        try:
            encoding, text = "utf-8", head.decode("utf-8")
        except UnicodeDecodeError as error:
            if error.start >= len(head) - 3:  # a character cut by the sample's end, not another encoding
                encoding, text = "utf-8", head[: error.start].decode("utf-8")
            else:
                encoding, text = "windows-1252", head.decode("windows-1252", errors="replace")
    lines = text.splitlines()[:50]
    try:
        delimiter = csv_module.Sniffer().sniff("\n".join(lines), delimiters=",;\t|").delimiter
    except csv_module.Error:  # one column, or too little to tell: the header line decides
        header = lines[0] if lines else ""
        delimiter = max(",;\t|", key=header.count) if any(d in header for d in ",;\t|") else ","
    return {"delimiter": delimiter, "encoding": encoding}


def _safe_filename(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)[-200:] or "upload"


class _Counting:
    """A file wrapper that reports bytes read (for a progress bar) while requests streams it."""

    def __init__(self, handle: Any, size: int, progress: Callable[[int], None] | None) -> None:
        self._handle, self._size, self._progress = handle, size, progress

    def __len__(self) -> int:
        return self._size

    def read(self, size: int = -1) -> bytes:
        chunk: bytes = self._handle.read(size)
        if self._progress and chunk:
            self._progress(len(chunk))
        return chunk
