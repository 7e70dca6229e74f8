"""The outbox sweeper: publishes the events of committed changes whose publication did not finish
(the API function writes them with the change, publishes, then clears them). Run on a schedule by
the triggers function; consumers dedupe on each event's key, so publishing twice is harmless."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from functions.core.events import EventPublisher
from functions.core.observability import logger
from functions.sharing.repository import SharingRepository

# Younger entries may still be in the hands of the request that wrote them.
GRACE = timedelta(seconds=30)


def _now() -> datetime:
    return datetime.now(UTC)


class OutboxSweeper:
    def __init__(self, repository: SharingRepository, publisher: EventPublisher, clock: Callable[[], datetime] = _now) -> None:
        self._repository = repository
        self._publisher = publisher
        self._clock = clock

    def sweep(self) -> int:
        """Publish and clear what is left; returns how many entries it published."""
        cutoff = (self._clock() - GRACE).isoformat(timespec="microseconds")
        published = 0
        for entry, events in self._repository.outbox(cutoff):
            self._publisher.publish(*events)
            self._repository.clear_outbox(entry)
            published += 1
        if published:
            logger.info("outbox swept", extra={"entries": published})
        return published
