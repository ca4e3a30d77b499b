"""Blobs as files in the data directory: the default, for SQLite and a single host.

The layout is the one the store has always used (``evidence/<ab>/<sha256>.jpg``, ``snapshots/<code>.jpg``,
``references/<sha256>.jpg``), so existing data directories keep working. A write goes to a temp file in
the same folder, chunk by chunk, and is renamed into place: readers see the old file or the new one.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from api.storage.base import CHUNK_BYTES, KINDS, BlobInfo, BlobMissing, BlobRef, BlobStream


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
        fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{ref.kind}-", suffix=".tmp")
        temp = Path(temp_name)
        try:
            with os.fdopen(fd, "wb") as handle:
                for chunk in chunks:
                    handle.write(chunk)
                if KINDS[ref.kind].durable:
                    handle.flush()
                    os.fsync(handle.fileno())
            temp.replace(path)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return True

    def stat(self, ref: BlobRef) -> BlobInfo | None:
        try:
            stat = self.path(ref).stat()
        except FileNotFoundError:
            return None
        return BlobInfo(ref, stat.st_size, dt.datetime.fromtimestamp(stat.st_mtime, dt.UTC))

    def read(self, ref: BlobRef) -> BlobStream:
        try:
            handle = self.path(ref).open("rb")  # opened now: a missing file fails here, not mid-response
        except FileNotFoundError:
            raise BlobMissing(f"{ref.key} is not in the blob store") from None
        # the size of the file opened: a replacement renamed into place later does not change it
        return BlobStream(os.fstat(handle.fileno()).st_size, _chunks(handle))

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


def _chunks(handle: BinaryIO) -> Iterator[bytes]:
    with handle:
        while chunk := handle.read(CHUNK_BYTES):
            yield chunk
