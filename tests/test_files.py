"""hub.files: one content-addressed store (sha256) for attachments and later documents."""

from __future__ import annotations

import hashlib

import pytest

from hub.files import FileCorrupt, FileMissing, LocalFileStore


def test_same_bytes_are_stored_once_under_their_sha256(tmp_path):
    store = LocalFileStore(tmp_path)
    first = store.put(b"dekont")
    second = store.put_chunks([b"dek", b"ont"])
    assert first == second and first.sha256 == hashlib.sha256(b"dekont").hexdigest()
    assert store.read(first.ref()) == b"dekont" and store.exists(first.sha256)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert files == [store.path(first.sha256)]  # no temporary file left behind


def test_a_file_that_no_longer_matches_its_checksum_is_refused(tmp_path):
    store = LocalFileStore(tmp_path)
    stored = store.put(b"1.250,00 TL")
    store.path(stored.sha256).write_bytes(b"9.250,00 TL")
    with pytest.raises(FileCorrupt):
        store.read(stored.sha256)
    with pytest.raises(FileMissing):
        store.read("0" * 64)
    with pytest.raises(ValueError):
        store.read("../../etc/passwd")
