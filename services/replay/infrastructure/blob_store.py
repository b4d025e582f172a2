"""Where recordings live: a small interface an object store can implement, and a local directory.

Keys are plain names (`<space_id>.ogg`). `put` is atomic: the object appears
whole or not at all (the local store writes a temporary file and renames it),
so a finalizer killed midway never leaves a truncated recording behind.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO, Protocol

_KEY = re.compile(r"^[A-Za-z0-9._-]{1,200}$")


class BlobStore(Protocol):
    def put_file(self, key: str, source: Path) -> int:
        """Moves or copies the file at `source` in as `key`; returns its size."""

    def open(self, key: str) -> BinaryIO:
        """Reads `key`; FileNotFoundError when it is missing."""

    def delete(self, key: str) -> None:
        """Removes `key`; a missing key is not an error."""

    def size(self, key: str) -> int | None:
        """Size of `key` in bytes, or None when it is missing."""

    def scratch(self, key: str) -> Path:
        """A local path to build an object in before `put_file`."""

    def sweep_scratch(self, older_than: timedelta) -> int:
        """Removes scratch files older than `older_than` (left by a worker that died); returns how many."""


class LocalDirectoryBlobStore:
    """Objects as files in one directory (a PersistentVolume in Kubernetes)."""

    def __init__(self, root: Path | str):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / ".scratch").mkdir(exist_ok=True)

    def _path(self, key: str) -> Path:
        if not _KEY.match(key) or key.startswith("."):
            raise ValueError(f"blob key {key!r} must be 1-200 characters of [A-Za-z0-9._-]")
        return self.root / key

    def put_file(self, key: str, source: Path) -> int:
        target = self._path(key)
        temporary = self.root / f".{key}.{uuid.uuid4().hex}.part"
        if source.parent == self.root / ".scratch":
            os.replace(source, temporary)  # same file system: a rename, no copy
        else:
            shutil.copyfile(source, temporary)
        with open(temporary, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(temporary, target)
        return target.stat().st_size

    def put_bytes(self, key: str, data: bytes) -> int:
        path = self.scratch(key)
        path.write_bytes(data)
        return self.put_file(key, path)

    def open(self, key: str) -> BinaryIO:
        return open(self._path(key), "rb")

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def size(self, key: str) -> int | None:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            return None

    def scratch(self, key: str) -> Path:
        return self.root / ".scratch" / f"{key}.{uuid.uuid4().hex}"

    def sweep_scratch(self, older_than: timedelta) -> int:
        cutoff = time.time() - older_than.total_seconds()
        removed = 0
        for path in [*(self.root / ".scratch").iterdir(), *self.root.glob(".*.part")]:
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
        return removed
