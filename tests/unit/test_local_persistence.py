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

from infra.local.persistence import BLOBS, SNAPSHOT, PersistentState, SharedExclusiveLock, StateOfAnotherVersion

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
    with pytest.raises(StateOfAnotherVersion, match="local reset"):
        PersistentState(tmp_path).restore()


def _table(dynamodb: object, name: str) -> None:
    dynamodb.create_table(  # type: ignore[attr-defined]
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


@mock_aws
def test_a_table_written_since_the_last_snapshot_is_saved_again_and_only_then(tmp_path: Path) -> None:
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    state = PersistentState(tmp_path)
    _table(dynamodb, "nonces")
    _table(dynamodb, "catalog")
    dynamodb.put_item(TableName="catalog", Item={"pk": {"S": "air"}})
    _changed(state)
    dynamodb.put_item(TableName="nonces", Item={"pk": {"S": "jti-1"}})
    dynamodb.transact_write_items(TransactItems=[{"Put": {"TableName": "catalog", "Item": {"pk": {"S": "flow"}}}}])
    _changed(state)
    moto_api_backend.reset()
    assert PersistentState(tmp_path).restore()
    assert dynamodb.get_item(TableName="nonces", Key={"pk": {"S": "jti-1"}}).get("Item")
    assert dynamodb.get_item(TableName="catalog", Key={"pk": {"S": "flow"}}).get("Item")


@mock_aws
def test_expired_items_are_deleted_as_dynamodb_time_to_live_does() -> None:
    from infra.local.fidelity import expire_items

    dynamodb = boto3.client("dynamodb", region_name=REGION)
    _table(dynamodb, "nonces")
    for name, expires in (("old", 1_000), ("live", 3_000), ("none", None)):
        item = {"pk": {"S": name}} | ({"expires_at": {"N": str(expires)}} if expires else {})
        dynamodb.put_item(TableName="nonces", Item=item)
    assert expire_items(dynamodb, {"nonces": "expires_at"}, now=2_000) == 1
    left = {item["pk"]["S"] for item in dynamodb.scan(TableName="nonces")["Items"]}
    assert left == {"live", "none"}


@mock_aws
def test_items_are_journalled_and_a_save_that_died_before_its_snapshot_is_never_replayed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import infra.local.items as items

    dynamodb = boto3.client("dynamodb", region_name=REGION)
    state = PersistentState(tmp_path)
    _table(dynamodb, "audit")
    dynamodb.put_item(TableName="audit", Item={"pk": {"S": "entry-1"}})
    _changed(state)  # the first save writes a base of every item
    for n in range(2, 5):
        dynamodb.put_item(TableName="audit", Item={"pk": {"S": f"entry-{n}"}})
        _changed(state)  # each later one journals what it wrote
    dynamodb.delete_item(TableName="audit", Key={"pk": {"S": "entry-2"}})
    _changed(state)
    journal = next(tmp_path.glob("items-journal-*.log"))
    assert len(list(tmp_path.glob("items-base-*.pickle"))) == 1 and journal.stat().st_size < 4096
    # A save that appended its record and died before renaming its snapshot into place:
    snapshot = (tmp_path / SNAPSHOT).read_bytes()
    dynamodb.put_item(TableName="audit", Item={"pk": {"S": "never-acknowledged"}})
    _changed(state)
    (tmp_path / SNAPSHOT).write_bytes(snapshot)
    with journal.open("ab") as tail:
        tail.write(b"\x00\x00\x00\x00\x00\x00\x01\x00half a record")  # and one cut mid-write
    moto_api_backend.reset()
    restored = PersistentState(tmp_path)
    assert restored.restore()
    keys = {item["pk"]["S"] for item in dynamodb.scan(TableName="audit")["Items"]}
    assert keys == {"entry-1", "entry-3", "entry-4"}
    # The cut tail is gone: the next save's record follows the last one that counted.
    dynamodb.put_item(TableName="audit", Item={"pk": {"S": "entry-5"}})
    _changed(restored)
    moto_api_backend.reset()
    assert PersistentState(tmp_path).restore()
    assert {item["pk"]["S"] for item in dynamodb.scan(TableName="audit")["Items"]} == {"entry-1", "entry-3", "entry-4", "entry-5"}
    # A journal outgrowing its base is folded into a new base, the old files dropped.
    monkeypatch.setattr(items, "MIN_COMPACTION_BYTES", 0)
    state = PersistentState(tmp_path)
    assert state.restore()
    for n in range(6, 40):
        dynamodb.put_item(TableName="audit", Item={"pk": {"S": f"entry-{n}"}, "body": {"S": "x" * 2000}})
        _changed(state)
    assert len(list(tmp_path.glob("items-base-*.pickle"))) == 1 and len(list(tmp_path.glob("items-journal-*.log"))) <= 1
    moto_api_backend.reset()
    assert PersistentState(tmp_path).restore()
    assert len(dynamodb.scan(TableName="audit")["Items"]) == 3 + 1 + 34


def test_reads_are_not_saved_and_only_what_may_queue_rings_the_pump() -> None:
    import io

    from infra.local.persistence import _changes_state, _may_queue, _read_form

    def call(method: str = "POST", target: str = "", form: bytes = b"", **extra: str) -> dict[str, object]:
        environ: dict[str, object] = {"REQUEST_METHOD": method, "QUERY_STRING": "", **extra}
        if target:
            environ["HTTP_X_AMZ_TARGET"] = target
        if form:
            environ |= {"CONTENT_TYPE": "application/x-www-form-urlencoded", "CONTENT_LENGTH": str(len(form))}
            environ["wsgi.input"] = io.BytesIO(form)
            _read_form(environ)
        return environ

    poll = call(target="AmazonSQS.ReceiveMessage")
    assert not _changes_state(poll) and not _may_queue(poll)
    assert not _changes_state(call(target="DynamoDB_20120810.Query"))
    assume = call(form=b"Action=AssumeRole&Version=2011-06-15&RoleArn=x")
    assert not _changes_state(assume) and assume["wsgi.input"].read() == b"Action=AssumeRole&Version=2011-06-15&RoleArn=x"  # type: ignore[attr-defined]
    put = call(target="DynamoDB_20120810.PutItem")
    assert _changes_state(put) and not _may_queue(put)
    assert _may_queue(call(target="AWSEvents.PutEvents")) and _may_queue(call(form=b"Action=Publish&TopicArn=t"))
    upload = call("PUT", QUERY_STRING="X-Amz-Credential=local%2F20261201%2Feu-west-1%2Fs3%2Faws4_request&X-Amz-Signature=1")
    assert _changes_state(upload) and _may_queue(upload)


@mock_aws
def test_restored_objects_are_read_from_their_files_when_asked(tmp_path: Path) -> None:
    from infra.local.persistence import StoredContent

    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="kept", CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_object(Bucket="kept", Key="big", Body=b"0123456789" * 1000)
    _changed(PersistentState(tmp_path))
    moto_api_backend.reset()
    state = PersistentState(tmp_path)
    assert state.restore()
    from moto.s3.models import s3_backends

    key = s3_backends["123456789012"]["aws"].buckets["kept"].keys["big"]
    assert isinstance(key._value_buffer, StoredContent)  # nothing copied at start
    assert s3.get_object(Bucket="kept", Key="big", Range="bytes=10-19")["Body"].read() == b"0123456789"
    assert s3.get_object(Bucket="kept", Key="big")["Body"].read() == b"0123456789" * 1000
    s3.copy_object(Bucket="kept", Key="copy", CopySource={"Bucket": "kept", "Key": "big"})
    s3.put_object(Bucket="kept", Key="big", Body=b"new")
    state.changed()
    state.save()
    moto_api_backend.reset()
    assert PersistentState(tmp_path).restore()
    assert s3.get_object(Bucket="kept", Key="copy")["Body"].read() == b"0123456789" * 1000
    assert s3.get_object(Bucket="kept", Key="big")["Body"].read() == b"new"
