"""The embedded stack's AWS state kept on disk, so that a stopped, killed or rebooted stack comes
back whole.

moto keeps every service's state in memory, in its backends. Before a write is acknowledged (an
API answer, an upload to a presigned URL, a batch of background work done) the stack saves them:
every AWS call waits while the state is taken, so it is consistent. DynamoDB items go to an item
store (infra/local/items.py: a base and a journal of what each save wrote), S3 objects' bytes to one
file per distinct content (named by its SHA-256, written once), and the rest — tables' structure,
buckets and object metadata, keys, queues, topics, rules — to a snapshot written to a new file,
flushed to the disk and renamed over the last one. That rename is the commit: a crash at any moment
leaves the previous save or the new one, never part of one. A save costs what changed, not the
size of what is kept.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import logging
import os
import pickle
import sys
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from infra.local.fidelity import written_items
from infra.local.items import ItemStore, base_payload, journal_payload

logger = logging.getLogger("cityshare.local")

SNAPSHOT = "aws-state.pickle"
BLOBS = "objects"
FORMAT = 2  # bumped when what a snapshot holds changes: an older one is refused, not misread


class SharedExclusiveLock:
    """Many AWS calls at once, or one snapshot alone."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._sharing = 0
        self._exclusive = False

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._condition:
            while self._exclusive:
                self._condition.wait()
            self._sharing += 1
        try:
            yield
        finally:
            with self._condition:
                self._sharing -= 1
                self._condition.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._condition:
            while self._exclusive:
                self._condition.wait()
            self._exclusive = True  # new calls wait from here on
            while self._sharing:
                self._condition.wait()
        try:
            yield
        finally:
            with self._condition:
                self._exclusive = False
                self._condition.notify_all()


# Calls that change nothing worth keeping: the pump's polling alone must not keep the disk busy.
_READS = {
    "ReceiveMessage",
    "GetQueueAttributes",
    "GetQueueUrl",
    "GetItem",
    "BatchGetItem",
    "Query",
    "Scan",
    "DescribeTable",
    "Decrypt",
    "DescribeKey",
    "GetCallerIdentity",
    "AssumeRole",
    "GetTable",
    "GetDatabase",
    "ListQueues",
}


def _changes_state(environ: dict[str, Any]) -> bool:
    if environ.get("REQUEST_METHOD") in ("GET", "HEAD", "OPTIONS"):
        return False
    return _action(environ) not in _READS


def _action(environ: dict[str, Any]) -> str:
    """The API action of a JSON (X-Amz-Target) or query (Action=) call; "" for a REST one (S3)."""
    target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
    if target:
        return target.rsplit(".", 1)[-1]
    for form in (str(environ.get("QUERY_STRING", "")), environ.get("cityshare.form", "")):
        if "Action=" in form:
            return str(form).split("Action=", 1)[1].split("&", 1)[0]
    return ""


def _read_form(environ: dict[str, Any]) -> None:
    """A query-protocol call (STS, SNS, IAM) names its action in its form body: read it, and hand
    moto the same bytes."""
    if not str(environ.get("CONTENT_TYPE", "")).startswith("application/x-www-form-urlencoded"):
        return
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    environ["cityshare.form"] = body[:4096].decode("latin-1")


# Calls that may put a message on a queue: sent to it, or through EventBridge, SNS or an S3 notification.
_QUEUEING = {"SendMessage", "SendMessageBatch", "PutEvents", "Publish", "PublishBatch"}


def _may_queue(environ: dict[str, Any]) -> bool:
    if _action(environ) in _QUEUEING:
        return True
    signed = str(environ.get("HTTP_AUTHORIZATION", "")) + str(environ.get("QUERY_STRING", ""))
    s3_write = environ.get("REQUEST_METHOD") in ("PUT", "POST") and ("/s3/aws4_request" in signed or "%2Fs3%2F" in signed)
    return s3_write


def _presigned(environ: dict[str, Any]) -> bool:
    return "X-Amz-Signature=" in str(environ.get("QUERY_STRING", ""))


class StateOfAnotherVersion(RuntimeError):
    """Kept state that this code cannot read faithfully (its objects are moto's own, pickled)."""


def _moto_version() -> str:
    from importlib.metadata import version

    return version("moto")


class PersistentState:
    """moto's backends saved to and restored from `folder` (kept in memory only when None)."""

    def __init__(self, folder: Path | None, on_change: Callable[[], None] | None = None) -> None:
        """`on_change`: told of every call that may have queued a message (the pump's doorbell)."""
        from infra.local.fidelity import make_conditional_writes_atomic

        make_conditional_writes_atomic()  # also notes the items each write wrote, which the item store keeps
        self.folder = folder
        self._on_change = on_change or (lambda: None)
        self.lock = SharedExclusiveLock()
        self._dirty = threading.Event()
        self._saving = threading.Lock()
        self._items = ItemStore(folder) if folder else None
        written_items.kept = written_items.kept or folder is not None

    # -- the WSGI side: every AWS call passes here
    def wrap(self, app: Callable[..., Any]) -> Callable[..., Any]:
        """moto's WSGI app, each call under the shared lock; a presigned write (a browser's or a
        client's upload, acknowledged by S3 itself) is saved before it is answered."""

        def middleware(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
            _read_form(environ)
            with self.lock.shared():
                body = b"".join(app(environ, start_response))
                changed = _changes_state(environ)
                if changed:
                    self._dirty.set()
            if changed and _may_queue(environ):
                self._on_change()
            if changed and _presigned(environ):
                self.save_if_changed()
            return [body]

        return middleware

    def changed(self) -> None:
        """Something changed outside the WSGI app (moto called in-process)."""
        self._dirty.set()
        self._on_change()

    # -- snapshots
    def save_if_changed(self) -> None:
        if self._dirty.is_set():
            self.save()

    def save(self) -> None:
        if self.folder is None or self._items is None:
            return
        with self._saving:  # one snapshot at a time; a second caller finds the first's work done
            if not self._dirty.is_set():
                return
            folder, items = self.folder, self._items
            blobs = folder / BLOBS
            blobs.mkdir(parents=True, exist_ok=True)
            number = items.upto + 1
            new_base = items.needs_base()
            base = number if new_base else items.base
            buffer = io.BytesIO()
            with self.lock.exclusive():  # what follows sees no AWS call half done
                self._dirty.clear()
                written = written_items.take()
                pickler = _Pickler(buffer, blobs)
                kept = {
                    "format": FORMAT,
                    "moto": _moto_version(),
                    "backends": _backends(),
                    "items": {"base": base, "upto": number},
                }
                pickler.dump(kept)
                payload = base_payload() if new_base else journal_payload(number, written)
            # The items first, then the snapshot naming them: the rename below is the commit.
            if new_base:
                items.write_base(number, payload)
            else:
                items.append(payload)
            target = folder / SNAPSHOT
            partial = target.with_suffix(".partial")
            with partial.open("wb") as file:
                file.write(buffer.getbuffer())
                file.flush()
                os.fsync(file.fileno())
            os.replace(partial, target)
            _sync_directory(folder)
            items.committed(base, number)
            for blob in blobs.iterdir():  # contents no longer referenced: deleted objects, old versions gone
                if blob.name not in pickler.referenced and not blob.name.endswith(".partial"):
                    blob.unlink(missing_ok=True)

    def restore(self) -> bool:
        """Load the last snapshot into moto's backends; False when there is none."""
        if self.folder is None or self._items is None:
            return False
        target = self.folder / SNAPSHOT
        if not target.exists():
            return False
        with target.open("rb") as file:
            saved = _Unpickler(file, self.folder / BLOBS).load()
        if saved.get("format") != FORMAT or saved.get("moto") != _moto_version():
            raise StateOfAnotherVersion(
                f"{target} was written by another version of CityShare or moto: `cityshare local reset` starts afresh"
            )
        for (module_name, attribute), accounts in saved["backends"].items():
            backend_dict = getattr(importlib.import_module(module_name), attribute)
            for account_id, regions in accounts.items():
                for region, backend in regions.items():
                    dict.__setitem__(backend_dict[account_id], region, backend)
        self._items.restore(saved["items"]["base"], saved["items"]["upto"])
        return True

    def run_saver(self, stopped: threading.Event, every_seconds: float = 1.0) -> threading.Thread:
        """Background saves for what no request acknowledges (scheduled work)."""

        def loop() -> None:
            while not stopped.wait(every_seconds):
                try:
                    self.save_if_changed()
                except Exception:
                    logger.exception("saving the embedded stack's state failed")

        thread = threading.Thread(target=loop, name="cityshare-state-saver", daemon=True)
        thread.start()
        return thread


_found: dict[int, list[tuple[tuple[str, str], Any]]] = {}  # by how many modules were loaded when looked for


def _backend_dicts() -> list[tuple[tuple[str, str], Any]]:
    """moto's backend registries and where they live (looked for again when a module was loaded:
    moto imports a service's models when it is first called)."""
    from moto.core.base_backend import BackendDict

    loaded = len(sys.modules)
    if loaded not in _found:
        seen: dict[int, tuple[tuple[str, str], Any]] = {}
        for module_name, module in list(sys.modules.items()):
            if module_name.startswith("moto.") and module is not None:
                for attribute, value in list(vars(module).items()):
                    if isinstance(value, BackendDict) and id(value) not in seen:
                        seen[id(value)] = ((module_name, attribute), value)
        _found.clear()
        _found[loaded] = list(seen.values())
    return _found[loaded]


def _backends() -> dict[tuple[str, str], dict[str, dict[str, Any]]]:
    """Every moto service's state that holds anything, by where its backends live."""
    saved = {}
    for where, backend_dict in _backend_dicts():
        accounts = {account: dict(regions) for account, regions in backend_dict.items() if len(regions)}
        if accounts:
            saved[where] = accounts
    return saved


def _sync_directory(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _restore_lock(kind: str) -> Any:
    return threading.RLock() if kind == "rlock" else threading.Lock()


def _restore_private_key(der: bytes) -> Any:
    from cryptography.hazmat.primitives import serialization

    return serialization.load_der_private_key(der, password=None)


def _restore_object(content: Path, state: dict[str, Any]) -> Any:
    from moto.s3.models import FakeKey

    key: Any = FakeKey.__new__(FakeKey)
    key.__dict__.update(state)
    key.lock = threading.Lock()
    key._value_buffer = StoredContent(content)
    return key


class StoredContent:
    """A restored S3 object's bytes, read from their file when asked rather than copied at start
    (a stack keeping a gigabyte starts in seconds). moto writes a key's bytes once, when it makes
    the key; should it write again, the bytes move to a buffer of their own first."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._position = 0
        self._buffer: Any = None
        self._closed = False

    def _writable(self) -> Any:
        if self._buffer is None:
            import tempfile

            self._buffer = tempfile.SpooledTemporaryFile(16 * 1024**2)  # noqa: SIM115 - lives as long as the key
            self._buffer.write(self._path.read_bytes())
            self._buffer.seek(self._position)
        return self._buffer

    def seek(self, offset: int, whence: int = 0) -> int:
        if self._buffer is not None:
            return int(self._buffer.seek(offset, whence))
        size = self._path.stat().st_size
        self._position = {0: offset, 1: self._position + offset, 2: size + offset}[whence]
        return self._position

    def tell(self) -> int:
        return int(self._buffer.tell()) if self._buffer is not None else self._position

    def read(self, size: int = -1) -> bytes:
        if self._closed:
            raise ValueError("read of a closed file")
        if self._buffer is not None:
            return bytes(self._buffer.read(size))
        with self._path.open("rb") as file:
            file.seek(self._position)
            data = file.read() if size is None or size < 0 else file.read(size)
        self._position += len(data)
        return data

    def write(self, data: bytes) -> int:
        return int(self._writable().write(data))

    def truncate(self, size: int | None = None) -> int:
        return int(self._writable().truncate(size))

    def close(self) -> None:
        self._closed = True
        if self._buffer is not None:
            self._buffer.close()


class _Content:
    """An S3 object's bytes, pickled as a reference to their file."""

    def __init__(self, digest: str) -> None:
        self.digest = digest


_LOCK_TYPES = {type(threading.Lock()): "lock", type(threading.RLock()): "rlock"}


def _restore_table(state: dict[str, Any]) -> Any:
    from moto.dynamodb.models.table import Table

    table: Any = Table.__new__(Table)
    table.__dict__.update(state, items=defaultdict(dict))
    return table


class _Pickler(pickle.Pickler):
    """Locks become new locks, private keys their DER, S3 objects' bytes files of their own, and
    DynamoDB tables their structure without items (kept by the item store)."""

    def __init__(self, file: io.BytesIO, blobs: Path) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.blobs = blobs
        self.referenced: set[str] = set()

    def reducer_override(self, obj: Any) -> Any:
        from moto.dynamodb.models.table import Table
        from moto.s3.models import FakeKey

        kind = _LOCK_TYPES.get(type(obj))
        if kind:
            return _restore_lock, (kind,)
        if type(obj) is Table:
            return _restore_table, ({k: v for k, v in obj.__dict__.items() if k != "items"},)
        if isinstance(obj, FakeKey):
            state = {k: v for k, v in obj.__dict__.items() if k not in ("_value_buffer", "lock", "value")}
            return _restore_object, (_Content(self._stored(obj)), state)
        if type(obj).__module__.startswith("cryptography") and hasattr(obj, "private_bytes"):
            from cryptography.hazmat.primitives import serialization

            der = obj.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
            return _restore_private_key, (der,)
        return NotImplemented

    def persistent_id(self, obj: Any) -> str | None:
        if isinstance(obj, _Content):
            self.referenced.add(obj.digest)
            return obj.digest
        return None

    def _stored(self, key: Any) -> str:
        """The key's content written once under its digest; the digest is remembered on the key
        (with the ETag it was computed for), so the next snapshot does not read the bytes again."""
        remembered = key.__dict__.get("_cityshare_content")
        if remembered and remembered[0] == key.etag:
            return str(remembered[1])
        try:
            content = key.value
        except ValueError:  # a deleted key's closed buffer, still referenced by a listing
            content = b""
        digest = hashlib.sha256(content).hexdigest()
        path = self.blobs / digest
        if not path.exists():
            partial = path.with_name(digest + ".partial")
            with partial.open("wb") as file:
                file.write(content)
                file.flush()
                os.fsync(file.fileno())
            os.replace(partial, path)
        key.__dict__["_cityshare_content"] = (key.etag, digest)
        return digest


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: Any, blobs: Path) -> None:
        super().__init__(file)
        self.blobs = blobs

    def persistent_load(self, pid: Any) -> Path:
        return self.blobs / str(pid)
