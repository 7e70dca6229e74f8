"""The stewards' console on the embedded stack: the built static files of console/ at /console/,
with the same security headers CloudFront sets in AWS, and a config.json telling the page where the
API is (this gateway) and the audience its signed requests carry."""

from __future__ import annotations

import json
import mimetypes
from pathlib import Path

from infra.spec import CONSOLE_HEADERS, CONSOLE_PATH, console_content_security_policy

ROOT = Path(__file__).resolve().parents[2]
BUILT = ROOT / "console" / "dist"


class ConsoleFiles:
    """`api_origin`: the API's origin when it is not the page's own (as in AWS, where CloudFront serves
    the page and API Gateway the API): it goes in config.json and in the CSP's connect-src."""

    def __init__(self, audience: str, folder: Path = BUILT, api_origin: str | None = None) -> None:
        self._audience = audience
        self._folder = folder.resolve()
        self._api_origin = api_origin
        self._headers = dict(CONSOLE_HEADERS, **{"Content-Security-Policy": console_content_security_policy(api_origin)})

    @property
    def available(self) -> bool:
        return (self._folder / "index.html").is_file()

    def answer(self, path: str, origin: str) -> tuple[int, dict[str, str], bytes]:
        """`path` under /console/: a built file, or config.json; 404 for anything else."""
        name = path[len(CONSOLE_PATH) :] or "index.html"
        headers = dict(self._headers, **{"Cache-Control": "no-cache"})
        if name == "config.json":
            body = json.dumps({"endpoint": self._api_origin or origin, "audience": self._audience}).encode()
            return 200, dict(headers, **{"Content-Type": "application/json"}), body
        target = (self._folder / name).resolve()
        if not target.is_file() or self._folder not in target.parents:
            return 404, dict(headers, **{"Content-Type": "text/plain; charset=utf-8"}), b"Not found"
        content_type = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        if content_type.startswith("text/") or content_type.endswith("javascript"):
            content_type += "; charset=utf-8"
        return 200, dict(headers, **{"Content-Type": content_type}), target.read_bytes()
