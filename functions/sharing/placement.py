"""Where restricted views live in the data bucket, and their removal. No pyarrow here.

- `views/shared/<owner>/<dataset>/v<n>/<terms>/`: views every grant with the same terms may share;
- `views/grant/<owner>/<grantee>/<grant>/...`: views only one grant may read (masked or linked
  columns carry tokens of that grant or of its linkage space);
- `views/clear/<owner>/<grantee>/<grant>/...`: views that hold decrypted values;
- `views/linked/<grantee>/<owner>/<grant>/...`: a grantee's own dataset re-keyed for a linkage grant.

Each lies under the department whose data it holds (functions.core.layout), so only a session
acting for that department reads or deletes it. Per-grant views are deleted when their grant is
revoked, and by the hourly sweep once their grant has ended; views that decrypt are also deleted
24 hours after they were built (and the bucket's lifecycle rule removes whatever a failed sweep left).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from functions.core.layout import owner_of
from functions.core.observability import logger
from functions.core.scoped import DepartmentScopes
from functions.sharing.models import Grant


@dataclass(frozen=True)
class BuiltView:
    """A view in the bucket; `suppressed` says, for an aggregated view, how many groups and rows
    fell below k."""

    key: str
    size: int
    suppressed: dict[str, int] | None = None


CLEAR_VIEW_HOURS = 24
# A decrypting view older than this is rebuilt before its URL is handed out, so a URL never points
# at a view the sweep is about to delete.
CLEAR_VIEW_REUSE_HOURS = 12
_PER_GRANT = ("views/grant/", "views/clear/", "views/linked/")


def view_key(dataset_id: str, version: int, grant: Grant, linked_dataset: bool = False, per_grant: bool = False) -> str:
    """The view of `dataset_id` v`version` under `grant` (`linked_dataset`: the grantee's own
    dataset re-keyed into the grant's linkage space; `per_grant`: it carries the grant's own tokens)."""
    terms = grant.terms
    if linked_dataset:
        return f"{grant_prefix('views/linked/', grant)}{dataset_id}/v{version}/part-00000.parquet"
    place = f"{dataset_id}/v{version}/{terms.fingerprint()}/part-00000.parquet"
    if terms.decrypt_columns:
        return f"{grant_prefix('views/clear/', grant)}{place}"
    if terms.masked_columns or terms.linked_columns or per_grant:
        return f"{grant_prefix('views/grant/', grant)}{place}"
    return f"views/shared/{grant.owner}/{place}"


def grant_prefix(root: str, grant: Grant) -> str:
    """Where `grant`'s own views lie under `root` (a linked view lies under the grantee, whose data it holds)."""
    first, second = (
        (grant.grantee_department, grant.owner) if root == "views/linked/" else (grant.owner, grant.grantee_department)
    )
    return f"{root}{first}/{second}/{grant.grant_id}/"


def is_clear(key: str) -> bool:
    return key.startswith("views/clear/")


class ViewJanitor:
    """Deletes per-grant views: all of one grant's at once (revocation), or those whose grant has
    ended or whose 24 hours are up (the sweep). Deletes go through the session of the department the
    view lies under; `lister` (the sweeping function's own client) only lists keys."""

    def __init__(self, bucket: str, scopes: DepartmentScopes, lister: Any = None) -> None:
        self._bucket = bucket
        self._scopes = scopes
        self._lister = lister

    def forget_grant(self, grant: Grant) -> int:
        deleted = 0
        for root in _PER_GRANT:
            prefix = grant_prefix(root, grant)
            department = owner_of(prefix + "x")
            if department is not None:
                deleted += self._delete([o["Key"] for o in self._listed(self._scopes.s3(department), prefix)])
        return deleted

    def sweep(self, live_grants: Callable[[str, str], set[str]], now: datetime) -> int:
        """Delete per-grant views of grants no longer live (`live_grants(owner, grantee)`: the ids of
        those the policies still let their grantee read under), and decrypting views over 24 hours old."""
        stale: list[str] = []
        live: dict[tuple[str, str], set[str]] = {}
        for root in _PER_GRANT:
            for listed in self._listed(self._lister, root):
                key: str = listed["Key"]
                parts = key[len(root) :].split("/")
                if len(parts) < 4:
                    stale.append(key)
                    continue
                first, second, grant_id = parts[:3]
                owner, grantee = (second, first) if root == "views/linked/" else (first, second)
                if (owner, grantee) not in live:
                    live[(owner, grantee)] = live_grants(owner, grantee)
                too_old = root == "views/clear/" and listed["LastModified"] < now - timedelta(hours=CLEAR_VIEW_HOURS)
                if grant_id not in live[(owner, grantee)] or too_old:
                    stale.append(key)
        return self._delete(stale)

    def _listed(self, s3: Any, prefix: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=self._bucket, Prefix=prefix):
            found.extend(page.get("Contents", []))
        return found

    def _delete(self, keys: list[str]) -> int:
        by_department: dict[str, list[str]] = {}
        for key in keys:
            department = owner_of(key)
            if department is not None:
                by_department.setdefault(department, []).append(key)
        for department, owned in by_department.items():
            s3 = self._scopes.s3(department)
            for start in range(0, len(owned), 1000):
                batch = owned[start : start + 1000]
                response = s3.delete_objects(Bucket=self._bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True})
                for error in response.get("Errors", []):
                    logger.warning("view not deleted", extra={"key": error.get("Key"), "code": error.get("Code")})
        return sum(len(owned) for owned in by_department.values())
