"""One storage interface for files, keyed by their content hash (sha256).

Attachments of inbound e-mail (and later tickets, certificates, invoices, covers) go
through :class:`FileStore`; no code writes files to paths of its own. A file's key is the
lowercase hex sha256 of its bytes, so storing the same bytes twice stores them once, and
a reader can always check what it got against the key (``read`` does).

:class:`LocalFileStore` (the default) keeps files under ``<data dir>/files/ab/cd/<sha256>``.
Writes stream to a temporary file in the same folder while hashing, then are renamed into
place atomically, so a reader never sees half a file and N processes may write at once.
An S3-compatible store implements the same four methods later.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from hub.settings import Settings, get_settings

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 256 * 1024


class FileStoreError(RuntimeError):
    pass


class FileMissing(FileStoreError, LookupError):
    pass


class FileCorrupt(FileStoreError):
    """The stored bytes no longer hash to their key."""


@dataclass(frozen=True)
class StoredFile:
    sha256: str
    size: int

    def ref(self) -> str:
        return f"sha256:{self.sha256}"


def check_key(sha256: str) -> str:
    key = sha256.removeprefix("sha256:").lower()
    if not _SHA256.match(key):
        raise ValueError("a file key is 64 lowercase hex digits (sha256)")
    return key


class FileStore(Protocol):
    def put(self, data: bytes) -> StoredFile: ...

    def put_chunks(self, chunks: Iterable[bytes]) -> StoredFile: ...

    def read(self, sha256: str) -> bytes: ...

    def exists(self, sha256: str) -> bool: ...


class FileWriter:
    """An open upload: ``write`` chunks, then ``commit`` (or ``abort``)."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self._folder = folder
        fd, name = tempfile.mkstemp(prefix=".upload-", dir=folder)
        self._file: BinaryIO = os.fdopen(fd, "wb")
        self._tmp = Path(name)
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self._file.write(chunk)
        self._hash.update(chunk)
        self.size += len(chunk)

    def commit(self, place: LocalFileStore) -> StoredFile:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        stored = StoredFile(self._hash.hexdigest(), self.size)
        target = place.path(stored.sha256)
        if target.exists():
            self._tmp.unlink(missing_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self._tmp, target)
        return stored

    def abort(self) -> None:
        self._file.close()
        self._tmp.unlink(missing_ok=True)


class LocalFileStore:
    """Files in a local folder, content-addressed."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, sha256: str) -> Path:
        key = check_key(sha256)
        return self.root / key[:2] / key[2:4] / key

    def open_writer(self) -> FileWriter:
        return FileWriter(self.root / "tmp")

    def put(self, data: bytes) -> StoredFile:
        return self.put_chunks([data])

    def put_chunks(self, chunks: Iterable[bytes]) -> StoredFile:
        writer = self.open_writer()
        try:
            for chunk in chunks:
                writer.write(chunk)
        except BaseException:
            writer.abort()
            raise
        return writer.commit(self)

    def read(self, sha256: str) -> bytes:
        key = check_key(sha256)
        try:
            data = self.path(key).read_bytes()
        except FileNotFoundError:
            raise FileMissing(f"no stored file sha256:{key}") from None
        if hashlib.sha256(data).hexdigest() != key:
            raise FileCorrupt(f"stored file sha256:{key} does not match its checksum")
        return data

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()


def file_store(settings: Settings | None = None) -> LocalFileStore:
    """The configured store: the local folder ``<data dir>/files``."""
    settings = settings or get_settings()
    return LocalFileStore(settings.data_dir / "files")
