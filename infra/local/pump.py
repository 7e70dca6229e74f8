"""Delivers SQS messages to the spec's consumer functions, as Lambda's event source mapping does
(and invokes the spec's scheduled functions, as EventBridge's scheduled rules do):
batches of up to `batch_size`, partial batch failures honoured, failed messages left to be
redelivered and, after `max_receive_count` receives, moved to the dead-letter queue by SQS."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from infra.local.lambdas import LocalLambdas
from infra.spec import SPEC, PlatformSpec, QueueSpec, ScheduleSpec


def sqs_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": m.get("MessageAttributes", {}),
                "md5OfBody": m.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": "eu-west-1",
            }
            for m in messages
        ]
    }


logger = logging.getLogger("cityshare.local")
IDLE_POLL_SECONDS = 1.0  # an idle queue's polls when sends wake the pump


class Pump:
    def __init__(
        self,
        sqs: Any,
        queue_urls: dict[str, str],
        lambdas: LocalLambdas,
        spec: PlatformSpec = SPEC,
        after_work: Callable[[], None] | None = None,
        work_arrived: Doorbell | None = None,
    ) -> None:
        """`after_work`: called after each delivered batch and scheduled run (the stack saves its state
        there); `work_arrived`: set when something may have been queued, so an idle queue is polled at
        once rather than on its next idle poll."""
        self._sqs = sqs
        self._urls = queue_urls
        self._lambdas = lambdas
        self._spec = spec
        self._after_work = after_work or (lambda: None)
        self._work_arrived = work_arrived
        self._consumed = [q for q in spec.queues if q.consumer]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for schedule in self._spec.schedules:
            thread = threading.Thread(target=self._tick, args=(schedule,), name=f"pump-schedule-{schedule.name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        for queue in self._consumed:
            thread = threading.Thread(target=self._run, args=(queue,), name=f"pump-{queue.name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        if self._work_arrived:
            self._work_arrived.ring()
        for thread in self._threads:
            thread.join(timeout=5)

    def drain_once(self, queue: QueueSpec) -> int:
        """Deliver one batch; returns how many messages were received."""
        url = self._urls[queue.name]
        received = self._sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=queue.batch_size, WaitTimeSeconds=0, AttributeNames=["All"]
        ).get("Messages", [])
        if not received:
            return 0
        arn = self._sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        assert queue.consumer is not None
        try:
            result = self._lambdas.invoke(queue.consumer, sqs_event(received, arn)) or {}
            failed = {f["itemIdentifier"] for f in result.get("batchItemFailures", [])}
        except Exception:
            failed = {m["MessageId"] for m in received}  # the whole batch is retried, as in Lambda
        done = [m for m in received if m["MessageId"] not in failed]
        for start in range(0, len(done), 10):
            entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done[start : start + 10])]
            self._sqs.delete_message_batch(QueueUrl=url, Entries=entries)
        return len(received)

    def _tick(self, schedule: ScheduleSpec) -> None:
        """EventBridge's scheduled rule, locally: the function invoked every few seconds."""
        while not self._stop.wait(schedule.local_seconds):
            try:
                self._lambdas.invoke(schedule.function, {"cityshare-schedule": schedule.name})
                self._after_work()
            except Exception:  # the next tick tries again, as the next scheduled invocation would
                logger.exception("scheduled invocation failed", extra={"schedule": schedule.name})

    def _run(self, queue: QueueSpec) -> None:
        bell = self._work_arrived
        while not self._stop.is_set():
            seen = bell.rings if bell else 0
            try:
                if self.drain_once(queue) == 0:
                    # Until something may have been queued since this poll began, or a while at most
                    # (a message made visible again by its timeout rings no bell).
                    if bell:
                        bell.wait_after(seen, IDLE_POLL_SECONDS)
                    else:
                        self._stop.wait(0.2)
                else:
                    self._after_work()
            except Exception:
                self._stop.wait(1.0)


class Doorbell:
    """Rung on every call that may queue a message; a poller waits for a ring after its last poll."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self.rings = 0

    def ring(self) -> None:
        with self._condition:
            self.rings += 1
            self._condition.notify_all()

    def wait_after(self, seen: int, timeout: float) -> None:
        with self._condition:
            self._condition.wait_for(lambda: self.rings != seen, timeout)
