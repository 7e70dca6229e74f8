"""The CityShare SDK: one method per API operation, every request signed.

from cityshare import CityShareClient, Profile
client = CityShareClient.from_profile(Profile.load())
for dataset in client.iter_datasets(tag="traffic"):
    print(dataset["dataset_id"], dataset["title"])
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import requests

from cityshare.audit import ChainReport, verify_chain
from cityshare.keys import load_private_key
from cityshare.profile import Profile
from cityshare.signing import RequestSigner, request_target


class CityShareError(Exception):
    """An API error: the problem+json body's `code`, HTTP status and detail."""

    def __init__(self, status: int, code: str, detail: str, problem: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.problem = problem or {}


class CityShareClient:
    def __init__(self, endpoint: str, signer: RequestSigner, timeout: float = 30.0) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.signer = signer
        self.timeout = timeout
        self._http = requests.Session()

    @classmethod
    def from_profile(cls, profile: Profile) -> CityShareClient:
        signer = RequestSigner(
            profile.department, profile.principal, load_private_key(Path(profile.key_file)), profile.kid, profile.audience
        )
        return cls(profile.endpoint, signer)

    # -- transport
    def request(self, method: str, path: str, params: dict[str, Any] | None = None, body: Any = None) -> Any:
        query = urlencode({k: v for k, v in (params or {}).items() if v is not None}, doseq=True)
        path_and_query = path + (f"?{query}" if query else "")
        data = b"" if body is None else json.dumps(body).encode()
        headers = {"Authorization": f"Bearer {self.signer.token(method, request_target(path_and_query), data)}"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        response = self._http.request(
            method, self.endpoint + path_and_query, data=data or None, headers=headers, timeout=self.timeout
        )
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

    def register_department(self, department_id: str, name: str) -> dict[str, Any]:
        return dict(self.request("POST", "/admin/departments", body={"department_id": department_id, "name": name}))

    def list_departments(self) -> list[dict[str, Any]]:
        return list(self.request("GET", "/admin/departments"))

    def describe_department(self, department_id: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/admin/departments/{department_id}"))

    def set_department_status(self, department_id: str, status: str) -> dict[str, Any]:
        return dict(self.request("PATCH", f"/admin/departments/{department_id}", body={"status": status}))

    def put_principal(self, department_id: str, principal_id: str, roles: list[str], display_name: str = "") -> dict[str, Any]:
        body = {"roles": roles, "display_name": display_name}
        return dict(self.request("PUT", f"/admin/departments/{department_id}/principals/{principal_id}", body=body))

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
    ) -> dict[str, Any]:
        body = {
            "dataset_id": dataset_id,
            "title": title,
            "description": description,
            "tags": tags or [],
            "classification": classification,
            "schema": schema,
        }
        return dict(self.request("POST", "/datasets", body=body))

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

    def verify_audit(self, department: str | None = None) -> ChainReport:
        chain = department or self.signer.department
        return verify_chain(chain, self.iter_audit(department))
