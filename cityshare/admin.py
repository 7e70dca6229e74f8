"""Platform-admin helpers built on the SDK."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cityshare.client import CityShareClient, CityShareError
from cityshare.keys import generate_key, key_id, load_private_key, public_jwk, write_secret
from cityshare.profile import Profile

# The roles each kind of principal gets: stewards decide on their department's data, and are members.
ROLES_OF = {"member": ["member"], "steward": ["member", "steward"]}


@dataclass(frozen=True)
class Onboarded:
    principal: str
    roles: list[str]
    kid: str
    profile_path: Path
    key_file: Path | None  # None when the principal's own public key was registered


def enrol(
    admin: CityShareClient,
    admin_profile: Profile,
    department: str,
    principal: str,
    roles: list[str],
    key_file: Path,
    display_name: str = "",
) -> Profile:
    """Register (or update) a principal with a key pair and return the profile it signs with. The
    pair is made (private half written to `key_file`) unless `key_file` holds one already: then that
    key is kept, and registered only if the directory does not hold it yet, so onboarding twice into
    the same folder adds no key and overwrites none."""
    admin.put_principal(department, principal, roles, display_name=display_name)
    if key_file.exists():
        kid = key_id(key_file)
        registered = {key["kid"] for key in admin.describe_department(department)["keys"] if key.get("status") == "active"}
        if kid not in registered:
            admin.add_key(department, principal, public_jwk(load_private_key(key_file)))
        return admin_profile.as_principal(department, principal, str(key_file), kid)
    key = admin.add_key(department, principal, generate_key(key_file))
    return admin_profile.as_principal(department, principal, str(key_file), key["kid"])


def onboard(
    admin: CityShareClient,
    admin_profile: Profile,
    department: str,
    name: str,
    principals: dict[str, str],
    out_dir: Path,
    public_keys: dict[str, dict[str, Any]] | None = None,
) -> list[Onboarded]:
    """A department ready to work in one step: registered (kept as it is when it already exists),
    its principals (`{principal: "steward" | "member"}`) registered with their roles, each with a key
    pair made here (or its own public key from `public_keys`, the private half never leaving its
    owner) and a ready profile in `out_dir` (files readable by their owner only)."""
    try:
        admin.register_department(department, name)
    except CityShareError as error:
        if error.code != "already_exists":
            raise
    out_dir.mkdir(parents=True, exist_ok=True)
    onboarded = []
    for principal, kind in principals.items():
        roles = ROLES_OF[kind]
        given = (public_keys or {}).get(principal)
        profile_path = out_dir / f"{principal}.json"
        if profile_path.exists() and Profile.load(profile_path).department != department:
            # Its key is another department's principal's: one folder per department.
            raise ValueError(
                f"{out_dir} holds {principal}'s profile for {Profile.load(profile_path).department}: "
                f"onboard {department} into a folder of its own (--out-dir {department}/)"
            )
        if given is None:
            key_file = out_dir / f"{principal}.pem"
            profile = enrol(admin, admin_profile, department, principal, roles, key_file.resolve())
        else:
            key_file = None
            admin.put_principal(department, principal, roles)
            kid = admin.add_key(department, principal, given)["kid"]
            # Where its owner is to put the private half it kept.
            profile = admin_profile.as_principal(department, principal, str((out_dir / f"{principal}.pem").resolve()), kid)
        write_secret(profile_path, json.dumps(asdict(profile), indent=2).encode())
        onboarded.append(Onboarded(principal, roles, profile.kid, profile_path, key_file))
    return onboarded
