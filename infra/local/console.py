"""The stewards' console on the embedded stack: the built static files of console/ at /console/,
with the same security headers CloudFront sets in AWS, and a config.json telling the page where the
API is (this gateway) and the audience its signed requests carry."""

from __future__ import annotations

import json
import mimetypes
from pathlib import Path

from infra.spec import CONSOLE_HEADERS, CONSOLE_PATH

ROOT = Path(__file__).resolve().parents[2]
BUILT = ROOT / "console" / "dist"


class ConsoleFiles:
    def __init__(self, audience: str, folder: Path = BUILT) -> None:
        self._audience = audience
        self._folder = folder.resolve()

    @property
    def available(self) -> bool:
        return (self._folder / "index.html").is_file()

    def answer(self, path: str, origin: str) -> tuple[int, dict[str, str], bytes]:
        """`path` under /console/: a built file, or config.json; 404 for anything else."""
        name = path[len(CONSOLE_PATH) :] or "index.html"
        headers = dict(CONSOLE_HEADERS, **{"Cache-Control": "no-cache"})
        if name == "config.json":
            body = json.dumps({"endpoint": origin, "audience": self._audience}).encode()
            return 200, dict(headers, **{"Content-Type": "application/json"}), body
        target = (self._folder / name).resolve()
        if not target.is_file() or self._folder not in target.parents:
            return 404, dict(headers, **{"Content-Type": "text/plain; charset=utf-8"}), b"Not found"
        content_type = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        if content_type.startswith("text/") or content_type.endswith("javascript"):
            content_type += "; charset=utf-8"
        return 200, dict(headers, **{"Content-Type": content_type}), target.read_bytes()
