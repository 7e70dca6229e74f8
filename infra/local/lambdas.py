"""Runs the spec's Lambda handlers in this process, one invocation at a time per function, as a
single Lambda instance would (the handlers keep per-invocation state in module globals)."""

from __future__ import annotations

import importlib
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from infra.spec import SPEC, PlatformSpec

Handler = Callable[[dict[str, Any], Any], Any]


@dataclass
class LocalContext:
    """The parts of the Lambda context object that Powertools reads."""

    function_name: str
    memory_limit_in_mb: int
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    invoked_function_arn: str = ""
    log_group_name: str = ""
    log_stream_name: str = ""
    timeout_seconds: int = 29
    started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        """As in Lambda: what is left of the function's timeout (nothing stops it here when it runs out)."""
        return max(0, int((self.started + self.timeout_seconds - time.monotonic()) * 1000))


class LocalLambdas:
    def __init__(self, spec: PlatformSpec = SPEC) -> None:
        self._spec = spec
        self._handlers: dict[str, Handler] = {}
        self._locks = {f.name: threading.Lock() for f in spec.functions}

    def preload(self) -> None:
        """Import every handler now, in one thread: concurrent first imports of the same packages
        from the gateway's and the pump's threads can see half-initialised modules."""
        for function in self._spec.functions:
            self.handler(function.name)

    def handler(self, name: str) -> Handler:
        if name not in self._handlers:
            module_name, _, attribute = self._spec.function(name).handler.rpartition(".")
            self._handlers[name] = getattr(importlib.import_module(module_name), attribute)
        return self._handlers[name]

    def invoke(self, name: str, event: dict[str, Any]) -> Any:
        function = self._spec.function(name)
        context = LocalContext(
            function_name=f"cityshare-local-{name}",
            memory_limit_in_mb=function.memory_mb,
            timeout_seconds=function.timeout_seconds,
            invoked_function_arn=f"arn:aws:lambda:eu-west-1:123456789012:function:cityshare-local-{name}",
        )
        handler = self.handler(name)
        with self._locks[name]:
            return handler(event, context)
