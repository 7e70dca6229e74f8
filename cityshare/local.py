"""`cityshare local`: the embedded stack (the only part of the client that reaches into infra/local)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

DEFAULT_STATE_DIR = Path(".cityshare/local")


class LocalStackError(RuntimeError):
    """What stops a stack from starting or resetting, said for a person (a port taken, a stack running)."""


def up(
    state_dir: Path = DEFAULT_STATE_DIR, port: int | None = None, browser_origin: str | None = None, persistent: bool = True
) -> None:
    from infra.local.persistence import StateOfAnotherVersion
    from infra.local.stack import PortTaken, StackAlreadyRunning, serve_forever

    try:
        serve_forever(state_dir, port, browser_origin, persistent)
    except (PortTaken, StackAlreadyRunning, StateOfAnotherVersion) as error:
        raise LocalStackError(str(error)) from None


def reset(state_dir: Path = DEFAULT_STATE_DIR, confirm: Callable[[], bool] = lambda: True) -> bool:
    """Forget the stack's state: datasets, grants, keys, audit chains, share tokens, everything.
    Refused while a stack runs on it (before `confirm` is asked); False when `confirm` says no."""
    from infra.local.stack import StackAlreadyRunning
    from infra.local.stack import reset as reset_state

    try:
        return reset_state(state_dir, confirm)
    except StackAlreadyRunning as error:
        raise LocalStackError(str(error)) from None


def start(state_dir: Path) -> tuple[object, Path, str | None]:
    """Start a stack in this process; returns it (call `.stop()`), the admin profile's path and the
    console's URL (None when console/ is not built)."""
    from infra.local.stack import LocalStack

    stack = LocalStack(state_dir)
    endpoints = stack.start()
    stack.remember_port()  # the demo's profiles name this port: `local up` on its folder comes back to it
    return stack, endpoints.profile_path, endpoints.console_url
