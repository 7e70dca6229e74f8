"""Running one path under one fault, then redelivering as SQS would until it settles."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.faults.harness import FaultInjector, FunctionStopped

NUMBERS = itertools.count(1)  # each run's resources are its own: numbered across a module's tests
MAX_DELIVERIES = 5  # the queues' maxReceiveCount (infra/spec.py)
# Every (path, call site, fault) exercised, for the figure `make test` prints.
EXERCISED: dict[str, set[tuple[str, str, str, str]]] = {}


@dataclass
class Deliveries:
    """What became of each delivery of one message."""

    outcomes: list[str] = field(default_factory=list)

    @property
    def settled(self) -> bool:
        return bool(self.outcomes) and self.outcomes[-1] in ("done", "dead-lettered")


def deliver(injector: FaultInjector, run: Callable[[int], str], index: int | None, fault: str | None) -> Deliveries:
    """Run delivery 1 with call `index` failing with `fault`, then redeliver (no fault) while the
    delivery failed, as the queue would: `run(attempt)` returns "done" or "dead-lettered", or raises."""
    deliveries = Deliveries()
    for attempt in range(1, MAX_DELIVERIES + 1):
        if attempt == 1 and index is not None and fault is not None:
            injector.arm(index, fault)
        try:
            deliveries.outcomes.append(run(attempt))
        except FunctionStopped:
            deliveries.outcomes.append("stopped")
        except Exception as error:  # the batch item fails: SQS delivers it again
            deliveries.outcomes.append(f"raised {type(error).__name__}")
        finally:
            injector.disarm()
        if deliveries.settled:
            break
    return deliveries


def record(path: str, injector: FaultInjector, fault: str) -> None:
    if injector.injected is not None:
        call = injector.injected
        EXERCISED.setdefault(path, set()).add((call.service, call.operation, call.site, fault))
