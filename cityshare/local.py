"""`cityshare local`: the embedded stack (the only part of the client that reaches into infra/local)."""

from __future__ import annotations

from pathlib import Path

DEFAULT_STATE_DIR = Path(".cityshare/local")


def up(state_dir: Path = DEFAULT_STATE_DIR, port: int = 0, browser_origin: str | None = None) -> None:
    from infra.local.stack import serve_forever

    serve_forever(state_dir, port, browser_origin)


def start(state_dir: Path) -> tuple[object, Path, str | None]:
    """Start a stack in this process; returns it (call `.stop()`), the admin profile's path and the
    console's URL (None when console/ is not built)."""
    from infra.local.stack import LocalStack

    stack = LocalStack(state_dir)
    endpoints = stack.start()
    return stack, endpoints.profile_path, endpoints.console_url
