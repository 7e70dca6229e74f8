"""The embedded stack's snapshot of moto's state: what it keeps, how it stores S3 objects, and that a
crash leaves a whole snapshot."""

from __future__ import annotations

import pickle
import threading
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from moto.moto_api._internal.models import moto_api_backend

from infra.local.persistence import BLOBS, SNAPSHOT, PersistentState, SharedExclusiveLock

REGION = "eu-west-1"


def _changed(state: PersistentState) -> None:
    state.changed()
    state.save()


@mock_aws
def test_every_service_comes_back_with_its_keys_queues_objects_and_items(tmp_path: Path) -> None:
    s3, kms, sqs, dynamodb = (boto3.client(name, region_name=REGION) for name in ("s3", "kms", "sqs", "dynamodb"))
    s3.create_bucket(Bucket="kept", CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_bucket_versioning(Bucket="kept", VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket="kept", Key="a.parquet", Body=b"same bytes")
    s3.put_object(Bucket="kept", Key="b.parquet", Body=b"same bytes")
    s3.put_object(Bucket="kept", Key="c.parquet", Body=b"other bytes")
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    signing_key = kms.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    sealed = kms.encrypt(KeyId=key_id, Plaintext=b"department data key")["CiphertextBlob"]
    signature = kms.sign(KeyId=signing_key, Message=b"m", SigningAlgorithm="RSASSA_PKCS1_V1_5_SHA_256")["Signature"]
    queue = sqs.create_queue(QueueName="work")["QueueUrl"]
    sqs.send_message(QueueUrl=queue, MessageBody="publish v1")
    dynamodb.create_table(
        TableName="catalog",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.put_item(TableName="catalog", Item={"pk": {"S": "DATASET#air"}, "title": {"S": "Air"}})

    state = PersistentState(tmp_path)
    _changed(state)
    assert len(list((tmp_path / BLOBS).iterdir())) == 2  # one file per distinct content
    moto_api_backend.reset()  # everything forgotten, as after a restart
    assert PersistentState(tmp_path).restore()

    assert s3.get_object(Bucket="kept", Key="b.parquet")["Body"].read() == b"same bytes"
    assert kms.decrypt(CiphertextBlob=sealed)["Plaintext"] == b"department data key"
    verified = kms.verify(
        KeyId=signing_key, Message=b"m", Signature=signature, SigningAlgorithm="RSASSA_PKCS1_V1_5_SHA_256"
    )  # the private key material itself came back
    assert verified["SignatureValid"]
    assert sqs.receive_message(QueueUrl=queue)["Messages"][0]["Body"] == "publish v1"
    assert dynamodb.get_item(TableName="catalog", Key={"pk": {"S": "DATASET#air"}})["Item"]["title"]["S"] == "Air"
    sqs.send_message(QueueUrl=queue, MessageBody="a restored queue's lock works")


@mock_aws
def test_contents_no_longer_referenced_are_deleted_and_a_crash_leaves_the_last_whole_snapshot(tmp_path: Path) -> None:
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="kept", CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_object(Bucket="kept", Key="a", Body=b"first")
    state = PersistentState(tmp_path)
    _changed(state)
    s3.delete_object(Bucket="kept", Key="a")
    s3.put_object(Bucket="kept", Key="b", Body=b"second")
    # A crash while the next snapshot is written: its partial file is ignored, the last one stands.
    (tmp_path / SNAPSHOT).with_suffix(".partial").write_bytes(b"half a snap")
    moto_api_backend.reset()
    assert PersistentState(tmp_path).restore()
    assert s3.get_object(Bucket="kept", Key="a")["Body"].read() == b"first"
    s3.delete_object(Bucket="kept", Key="a")
    s3.put_object(Bucket="kept", Key="b", Body=b"second")
    _changed(state)
    assert len(list((tmp_path / BLOBS).iterdir())) == 1  # "first" is referenced no more


def test_a_snapshot_waits_for_calls_in_flight_and_holds_new_ones() -> None:
    lock = SharedExclusiveLock()
    events: list[str] = []
    with lock.shared():
        saver = threading.Thread(target=lambda: _exclusive(lock, events))
        saver.start()
        saver.join(0.2)
        assert saver.is_alive() and events == []  # waits for the call in flight
        events.append("call done")
    saver.join(5)
    assert events == ["call done", "snapshot"]


def _exclusive(lock: SharedExclusiveLock, events: list[str]) -> None:
    with lock.exclusive():
        events.append("snapshot")


def test_a_snapshot_of_another_format_is_refused_not_misread(tmp_path: Path) -> None:
    (tmp_path / SNAPSHOT).write_bytes(pickle.dumps({"format": 0, "backends": {}}))
    with pytest.raises(RuntimeError, match="local reset"):
        PersistentState(tmp_path).restore()
