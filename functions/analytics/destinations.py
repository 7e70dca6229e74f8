"""Where a webhook may go: public https addresses only, except in the embedded stack (its receivers
listen on 127.0.0.1). Light on imports: the API checks a subscription's URL with it too."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit


class UnsafeDestination(ValueError):
    pass


def check_destination(url: str, allow_private: bool, resolve: bool = True) -> list[str]:
    """The addresses to connect to for `url`: every one its host resolves to (when `resolve`; the
    literal address itself when it is one), all public; UnsafeDestination otherwise. With
    `allow_private` (the embedded stack) nothing is checked and no address is pinned ([])."""
    import ipaddress  # only when a webhook is named: not on the analytics function's cold path

    parts = urlsplit(url)
    if parts.scheme != "https" and not allow_private:
        raise UnsafeDestination("A webhook URL must use https")
    if allow_private:
        return []
    host = parts.hostname or ""
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        if not resolve:
            return []
        try:
            found = socket.getaddrinfo(host, parts.port or 443, proto=socket.IPPROTO_TCP)
        except (OSError, UnicodeError):
            raise UnsafeDestination(f"{host[:100]} does not resolve") from None
        addresses = [ipaddress.ip_address(str(entry[4][0]).split("%")[0]) for entry in found]
    if not addresses or not all(address.is_global for address in addresses):
        raise UnsafeDestination("A webhook must go to a public address")
    return [str(address) for address in addresses]
