"""Keys and share profiles are readable by their owner only, from the first byte they hold."""

from __future__ import annotations

import stat
from pathlib import Path

from cityshare.delta import write_profile
from cityshare.keys import generate_key, load_private_key


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_key_written_over_a_world_readable_file_is_owner_only(tmp_path: Path) -> None:
    key_file = tmp_path / "member.pem"
    key_file.write_text("old")
    key_file.chmod(0o644)
    generate_key(key_file)
    assert mode(key_file) == 0o600 and load_private_key(key_file) is not None


def test_a_share_profile_is_owner_only_even_over_an_existing_file(tmp_path: Path) -> None:
    issued = {
        "shareCredentialsVersion": 1,
        "endpoint": "https://api.city.example/delta-sharing",
        "bearerToken": "s0.x",
        "expirationTime": "2027-01-01T00:00:00Z",
    }
    fresh, existing = tmp_path / "fresh.share", tmp_path / "existing.share"
    existing.write_text("{}")
    existing.chmod(0o666)
    for path in (fresh, existing):
        write_profile(issued, path)
        assert mode(path) == 0o600 and "s0.x" in path.read_text()
