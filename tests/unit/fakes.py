"""In-memory stand-ins for the directory and nonce tables, for unit tests of the verifier only
(the real repositories are tested against moto in tests/integration)."""

from __future__ import annotations

from functions.core.settings import Settings
from functions.identity.directory import Signer
from functions.identity.models import Department, Principal, PublicKey


class MemoryDirectory:
    def __init__(self) -> None:
        self.departments: dict[str, Department] = {}
        self.principals: dict[tuple[str, str], Principal] = {}
        self.keys: dict[tuple[str, str], PublicKey] = {}

    def find_signer(self, department_id: str, principal_id: str, kid: str) -> Signer:
        return Signer(
            department=self.departments.get(department_id),
            principal=self.principals.get((department_id, principal_id)),
            key=self.keys.get((department_id, kid)),
        )


class MemoryNonces:
    def __init__(self) -> None:
        self.seen: dict[str, int] = {}

    def use_once(self, nonce: str, expires_at: int, now: int, principal: str = "") -> bool:
        if nonce in self.seen and self.seen[nonce] >= now:
            return False
        self.seen[nonce] = expires_at
        return True


def settings(audience: str = "cityshare-test") -> Settings:
    """Settings as a function would read them, with placeholder resource names."""
    return Settings.model_validate(
        {
            "CITYSHARE_STAGE": "test",
            "CITYSHARE_AUDIENCE": audience,
            "CATALOG_TABLE": "c",
            "DIRECTORY_TABLE": "d",
            "NONCES_TABLE": "n",
            "AUDIT_TABLE": "a",
            "SHARING_TABLE": "s",
            "PLATFORM_KEY": "alias/test",
            "DATA_BUCKET": "b",
            "EVENT_BUS": "e",
            "NOTIFICATIONS_TABLE": "i",
            "ANALYTICS_TABLE": "y",
            "IDEMPOTENCY_TABLE": "k",
        }
    )
