"""The local provisioner's wiring: S3 landing -> ingest queue, bus -> events queue, pump -> handler -> DLQ."""

from __future__ import annotations

import json
from dataclasses import replace
from urllib.parse import unquote_plus

from infra.local.lambdas import LocalLambdas
from infra.local.provision import physical_names, provision
from infra.local.pump import Pump
from infra.spec import SPEC, FunctionSpec, QueueSpec
from tests.integration import consumer
from tests.integration.conftest import Aws


def _bodies(sqs: object, url: str) -> list[str]:
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])  # type: ignore[attr-defined]
    return [m["Body"] for m in messages]


def test_uploads_to_landing_notify_the_ingest_queue(moto_aws: Aws) -> None:
    s3, sqs = moto_aws.client("s3"), moto_aws.client("sqs")
    bucket = moto_aws.names[("bucket", "data")]
    s3.put_object(Bucket=bucket, Key="curated/ignored.parquet", Body=b"x")
    s3.put_object(Bucket=bucket, Key="landing/transport/traffic-flow/u1/data.csv", Body=b"a,b\n1,2\n")
    records = [json.loads(body) for body in _bodies(sqs, moto_aws.queue_urls["ingest"])]
    keys = [unquote_plus(r["s3"]["object"]["key"]) for body in records for r in body.get("Records", [])]
    assert keys == ["landing/transport/traffic-flow/u1/data.csv"]


def test_platform_events_reach_the_events_queue(moto_aws: Aws) -> None:
    events, sqs = moto_aws.client("events"), moto_aws.client("sqs")
    bus = moto_aws.names[("bus", SPEC.event_bus)]
    events.put_events(
        Entries=[
            {"EventBusName": bus, "Source": "cityshare", "DetailType": "DatasetVersionPublished", "Detail": json.dumps({"v": 1})},
            {"EventBusName": bus, "Source": "cityshare", "DetailType": "SomethingElse", "Detail": "{}"},
        ]
    )
    delivered = [json.loads(body) for body in _bodies(sqs, moto_aws.queue_urls["events"])]
    assert [d["detail-type"] for d in delivered] == ["DatasetVersionPublished"]


def test_the_pump_delivers_batches_and_poison_ends_in_the_dead_letter_queue(moto_aws: Aws) -> None:
    spec = replace(
        SPEC,
        queues=(QueueSpec("work", consumer="worker", visibility_timeout_seconds=0, max_receive_count=2),),
        functions=(FunctionSpec("worker", "tests.integration.consumer.handler"),),
        rules=(),
        buckets=(),
    )
    names = physical_names("pump", spec)
    urls = provision(moto_aws.session, names, spec)
    sqs = moto_aws.client("sqs")
    for body in ("good-1", "poison-1", "good-2"):
        sqs.send_message(QueueUrl=urls["work"], MessageBody=body)
    consumer.received.clear()
    pump = Pump(sqs, urls, LocalLambdas(spec), spec)
    for _ in range(5):
        pump.drain_once(spec.queues[0])
    assert consumer.received.count("good-1") == 1 and consumer.received.count("good-2") == 1
    assert consumer.received.count("poison-1") == 2  # retried, then given up on
    dead_letters = sqs.get_queue_url(QueueName=f"{names[('queue', 'work')]}-dlq")["QueueUrl"]
    assert _bodies(sqs, dead_letters) == ["poison-1"]  # the payload intact
