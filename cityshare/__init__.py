"""CityShare's Python SDK and `cityshare` CLI: signs every request with your department key."""

from cityshare.client import CityShareClient, CityShareError
from cityshare.profile import Profile

__all__ = ["CityShareClient", "CityShareError", "Profile"]
