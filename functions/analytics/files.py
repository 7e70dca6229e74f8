"""Curated objects copied to local files for DuckDB, which reads them there (not from S3), each
through a session acting for the department the object belongs to."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from functions.core.layout import dataset_of, owner_of
from functions.core.scoped import DepartmentScopes


@contextmanager
def local_copies(
    scopes: DepartmentScopes, bucket: str, keys: list[str], folder: Path | None = None, cache: dict[str, Path] | None = None
) -> Iterator[list[Path]]:
    """The objects as local files: in `folder` (kept, and each object fetched once while `cache`
    remembers it) or in a temporary folder removed on leaving."""
    with ExitStack() as stack:
        where = folder or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cityshare-copies-")))
        copies = cache if cache is not None else {}
        for key in keys:
            if key not in copies or not copies[key].exists():
                path = where / f"{len(copies):05d}-{Path(key).name}"
                scopes.s3(owner_of(key) or "", dataset_of(key)).download_file(bucket, key, str(path))
                copies[key] = path
        yield [copies[key] for key in keys]
