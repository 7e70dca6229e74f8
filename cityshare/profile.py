"""A profile: where the API is and who signs (department, principal, key file, key id)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

DEFAULT_PROFILE = Path(".cityshare/local/profile.json")


@dataclass(frozen=True)
class Profile:
    endpoint: str
    audience: str
    department: str
    principal: str
    key_file: str
    kid: str

    @classmethod
    def load(cls, path: Path | None = None) -> Profile:
        path = path or Path(os.environ.get("CITYSHARE_PROFILE", str(DEFAULT_PROFILE)))
        values = json.loads(path.read_text())
        return cls(**{k: values[k] for k in cls.__dataclass_fields__})

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2))

    def as_principal(self, department: str, principal: str, key_file: str, kid: str) -> Profile:
        return Profile(self.endpoint, self.audience, department, principal, key_file, kid)
