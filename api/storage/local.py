"""Blobs as files in the data directory: the default, for SQLite and a single host.

The layout is the one the store has always used (``evidence/<ab>/<sha256>.jpg``, ``snapshots/<code>.jpg``,
``references/<sha256>.jpg``), so existing data directories keep working. A write goes to a temp file in
the same folder, chunk by chunk, and is renamed into place: readers see the old file or the new one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from api.storage.base import (
    CHUNK_BYTES,
    KINDS,
    BlobInfo,
    BlobMissing,
    BlobRef,
    BlobStream,
    ByteRange,
    StoredBlob,
)


class LocalBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, ref: BlobRef) -> Path:
        kind = KINDS[ref.kind]
        folder = self.root / kind.folder
        return (folder / ref.name[:2] if kind.fan_out else folder) / ref.name

    def put(self, ref: BlobRef, chunks: Iterable[bytes], *, content_type: str, replace: bool = False) -> bool:
        path = self.path(ref)
        if not replace and path.is_file():
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
        temp, _, _ = self._write_temp(ref.kind, path.parent, chunks)
        try:
            temp.replace(path)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return True

    def put_hashed(self, kind: str, chunks: Iterable[bytes], *, suffix: str, content_type: str) -> StoredBlob:
        folder = self.root / KINDS[kind].folder  # the temp file waits here: same file system as its place
        folder.mkdir(parents=True, exist_ok=True)
        temp, size, sha256 = self._write_temp(kind, folder, chunks)
        try:
            ref = BlobRef(kind, f"{sha256}{suffix}")
            path = self.path(ref)
            if path.is_file():
                temp.unlink()
                return StoredBlob(ref, size, sha256, written=False)
            path.parent.mkdir(parents=True, exist_ok=True)
            temp.replace(path)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return StoredBlob(ref, size, sha256, written=True)

    def _write_temp(self, kind: str, folder: Path, chunks: Iterable[bytes]) -> tuple[Path, int, str]:
        """``chunks`` in a new dot-file of ``folder`` (which ``list`` skips); its path, size and sha256.
        Removed again when anything fails, ``chunks`` included."""
        fd, temp_name = tempfile.mkstemp(dir=folder, prefix=f".{kind}-", suffix=".tmp")
        temp = Path(temp_name)
        digest, size = hashlib.sha256(), 0
        try:
            with os.fdopen(fd, "wb") as handle:
                for chunk in chunks:
                    handle.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                if KINDS[kind].durable:
                    handle.flush()
                    os.fsync(handle.fileno())
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return temp, size, digest.hexdigest()

    def stat(self, ref: BlobRef) -> BlobInfo | None:
        try:
            stat = self.path(ref).stat()
        except FileNotFoundError:
            return None
        return BlobInfo(ref, stat.st_size, dt.datetime.fromtimestamp(stat.st_mtime, dt.UTC))

    def read(self, ref: BlobRef, byte_range: ByteRange | None = None) -> BlobStream:
        try:
            handle = self.path(ref).open("rb")  # opened now: a missing file fails here, not mid-response
        except FileNotFoundError:
            raise BlobMissing(f"{ref.key} is not in the blob store") from None
        # the size of the file opened: a replacement renamed into place later does not change it
        total = os.fstat(handle.fileno()).st_size
        try:
            start, stop = byte_range.resolve(total) if byte_range is not None else (0, total)
            handle.seek(start)
        except BaseException:
            handle.close()
            raise
        return BlobStream(stop - start, _chunks(handle, stop - start), start=start, total=total)

    def delete(self, ref: BlobRef) -> bool:
        path = self.path(ref)
        existed = path.is_file()
        path.unlink(missing_ok=True)
        return existed

    def list(self, kind: str) -> Iterator[BlobInfo]:
        folder = self.root / KINDS[kind].folder
        pattern = "*/*" if KINDS[kind].fan_out else "*"
        for path in sorted(folder.glob(pattern)):
            if path.name.startswith(".") or not path.is_file():  # a write in progress, a folder
                continue
            info = self.stat(BlobRef(kind, path.name))
            if info is not None:  # removed meanwhile
                yield info


def _chunks(handle: BinaryIO, size: int) -> Iterator[bytes]:
    with handle:
        while size > 0 and (chunk := handle.read(min(CHUNK_BYTES, size))):
            size -= len(chunk)
            yield chunk
