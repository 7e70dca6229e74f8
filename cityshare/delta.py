"""A small Delta Sharing reader for a recipient's profile file, for where the official connector
cannot be installed beside CityShare (it pins older pyarrow and pandas): list the shared tables and
read one as a pyarrow table, over the same protocol any connector speaks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import requests

from cityshare.client import parquet_table
from cityshare.keys import write_secret

# The keys of a Delta Sharing profile file (shareCredentialsVersion 1).
PROFILE_KEYS = ("shareCredentialsVersion", "endpoint", "bearerToken", "expirationTime")


def write_profile(issued: dict[str, Any], path: Path) -> Path:
    """The profile file a connector reads, from what `issue_share_profile` answered; owner-only (0600)."""
    write_secret(path, (json.dumps({key: issued[key] for key in PROFILE_KEYS}, indent=2) + "\n").encode())
    return path


class SharedTables:
    def __init__(self, profile: dict[str, Any] | Path, timeout: float = 60.0) -> None:
        values = json.loads(profile.read_text()) if isinstance(profile, Path) else profile
        self.endpoint = str(values["endpoint"]).rstrip("/")
        self._headers = {"Authorization": f"Bearer {values['bearerToken']}"}
        self._timeout = timeout

    def tables(self) -> list[str]:
        """`share.schema.table` of every table shared with the recipient."""
        names = []
        for share in self._pages("/shares"):
            names += [f"{t['share']}.{t['schema']}.{t['name']}" for t in self._pages(f"/shares/{share['name']}/all-tables")]
        return names

    def read(self, table: str, version: int | None = None) -> Any:
        """The table (a version of it) as a pyarrow Table, from the files the query answers."""
        import pyarrow as pa

        share, schema, name = table.split(".")
        body = {"version": version} if version is not None else {}
        answer = self._call("POST", f"/shares/{share}/schemas/{schema}/tables/{name}/query", body)
        lines = [json.loads(line) for line in answer.text.splitlines() if line.strip()]
        files = [line["file"]["url"] for line in lines if "file" in line]
        parts = [parquet_table(requests.get(url, timeout=self._timeout).content) for url in files]
        if parts:
            return pa.concat_tables(parts)
        fields = json.loads(next(line["metaData"]["schemaString"] for line in lines if "metaData" in line))["fields"]
        return pa.table({f["name"]: pa.array([], pa.string()) for f in fields})

    def _pages(self, path: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        token = None
        while True:
            answer = self._call("GET", path + (f"?pageToken={token}" if token else "")).json()
            items += answer.get("items") or []
            token = answer.get("nextPageToken")
            if not token:
                return items

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> requests.Response:
        response = requests.request(method, self.endpoint + path, headers=self._headers, json=body, timeout=self._timeout)
        if response.status_code >= 400:
            try:
                problem = response.json()
            except ValueError:
                problem = {}
            raise RuntimeError(
                f"{response.status_code} {problem.get('errorCode', '')}: {problem.get('message', response.text[:200])}"
            )
        return response
