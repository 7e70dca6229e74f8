"""Platform-admin helpers built on the SDK."""

from __future__ import annotations

from pathlib import Path

from cityshare.client import CityShareClient
from cityshare.keys import generate_key
from cityshare.profile import Profile


def enrol(
    admin: CityShareClient,
    admin_profile: Profile,
    department: str,
    principal: str,
    roles: list[str],
    key_file: Path,
    display_name: str = "",
) -> Profile:
    """Register (or update) a principal, give it a fresh key pair (private half written to `key_file`)
    and return the profile it signs with."""
    admin.put_principal(department, principal, roles, display_name=display_name)
    key = admin.add_key(department, principal, generate_key(key_file))
    return admin_profile.as_principal(department, principal, str(key_file), key["kid"])
