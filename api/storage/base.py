"""What every blob store offers: images and clips kept by kind and name, written and read in chunks.

A blob is named by its kind (``evidence``, ``snapshot``, ``reference``, ``model``, ``model_crop``; another
kind is one line in :data:`KINDS`) and a name chosen by the store's own code (a sha256 with its extension,
a camera code), never by a client. Reads are iterators of chunks of at most :data:`CHUNK_BYTES`, so serving
a blob never holds the whole of it in memory; writes take an iterable of chunks for the same reason. A read
may ask for one byte range (:class:`ByteRange`: HTTP Range, a device resuming a model download, a video
seeking in a clip); the store starts at the chunk holding its first byte.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

CHUNK_BYTES = 256 * 1024  # one PostgreSQL row per chunk; one read() per chunk from a file


@dataclass(frozen=True)
class Kind:
    """How a kind of blob is laid out in the local data directory (today's layout, kept)."""

    folder: str  # under the data directory
    fan_out: bool = False  # a sub-folder per first two characters of the name (content-addressed kinds)
    durable: bool = True  # fsync before it counts as stored; a snapshot lost in a crash comes again


KINDS: dict[str, Kind] = {
    "evidence": Kind("evidence", fan_out=True),  # evidence/<ab>/<sha256>.<jpg|png|mp4> (images, clips)
    "snapshot": Kind("snapshots", durable=False),  # snapshots/<camera code>.jpg, replaced at every upload
    "reference": Kind("references"),  # references/<sha256>.jpg
    "model": Kind("models"),  # models/<sha256>.onnx (the model registry's versions)
    "model_crop": Kind("model-crops"),  # model-crops/<sha256>.jpg (shadow comparisons' disagreements)
}

_UNSAFE_NAME = re.compile(r"[/\\\x00]")


class BlobError(Exception):
    """A blob request the store cannot serve: an unknown kind, an unsafe name, a missing blob."""


class BlobMissing(BlobError):
    """The blob is not in the store."""


class RangeNotSatisfiable(BlobError):
    """The byte range asked for starts at or after the blob's end (HTTP 416)."""

    def __init__(self, size: int) -> None:
        super().__init__(f"the range asked for is outside the blob's {size} bytes")
        self.size = size


@dataclass(frozen=True)
class ByteRange:
    """One range of bytes as HTTP Range names it: ``first``..``last`` inclusive (``bytes=first-last``);
    ``last`` None: to the end (``bytes=first-``); ``first`` None: the final ``last`` bytes
    (``bytes=-last``)."""

    first: int | None
    last: int | None

    def __post_init__(self) -> None:
        if self.first is None and self.last is None:
            raise ValueError("a byte range needs a first byte, a last byte or both")
        if (self.first is not None and self.first < 0) or (self.last is not None and self.last < 0):
            raise ValueError("byte positions are not negative")
        if self.first is not None and self.last is not None and self.last < self.first:
            raise ValueError(f"the range's last byte {self.last} is before its first {self.first}")

    def resolve(self, size: int) -> tuple[int, int]:
        """``(start, stop)`` within a blob of ``size`` bytes, stop exclusive and clamped to the end (as
        RFC 9110 says); RangeNotSatisfiable when no byte of the blob is in the range."""
        if self.first is None:
            assert self.last is not None
            start, stop = max(size - self.last, 0), size
            if self.last == 0 or size == 0:
                raise RangeNotSatisfiable(size)
            return start, stop
        if self.first >= size:
            raise RangeNotSatisfiable(size)
        return self.first, size if self.last is None else min(self.last + 1, size)


@dataclass(frozen=True)
class BlobRef:
    kind: str
    name: str

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise BlobError(f"unknown blob kind {self.kind!r}; known: {', '.join(sorted(KINDS))}")
        if not self.name or self.name in (".", "..") or _UNSAFE_NAME.search(self.name):
            raise BlobError(f"unsafe blob name {self.name[:80]!r}: no path separators, not empty")

    @property
    def key(self) -> str:
        """The name in a database: ``<kind>/<name>``."""
        return f"{self.kind}/{self.name}"


@dataclass(frozen=True)
class BlobStream:
    """An open blob, or the range of it that was asked for: its bytes one chunk at a time, ``size`` of them
    (a response's Content-Length) from byte ``start`` of a blob of ``total`` bytes."""

    size: int
    chunks: Iterator[bytes]
    start: int = 0
    total: int = -1  # -1: size (the whole blob)
    etag: str | None = None  # names these exact bytes where the store knows it (the database: their sha256)

    def __post_init__(self) -> None:
        if self.total == -1:
            object.__setattr__(self, "total", self.size)

    @property
    def partial(self) -> bool:
        return self.size != self.total


@dataclass(frozen=True)
class StoredBlob:
    """What :meth:`BlobStore.put_hashed` stored: the blob's name (its sha256), size and digest."""

    ref: BlobRef
    size: int
    sha256: str
    written: bool  # False: a blob of the same bytes was stored already and kept


@dataclass(frozen=True)
class BlobInfo:
    ref: BlobRef
    size: int
    modified_at: dt.datetime


class BlobStore(Protocol):
    """Where the case store keeps its images and clips (:mod:`api.storage.local`, :mod:`.database`)."""

    def put(self, ref: BlobRef, chunks: Iterable[bytes], *, content_type: str, replace: bool = False) -> bool:
        """Store the blob from ``chunks``, all or nothing: readers see the old blob or the new one.

        Without ``replace`` an existing blob is kept (content-addressed kinds: same name, same bytes);
        returns whether this call wrote it."""
        ...

    def put_hashed(self, kind: str, chunks: Iterable[bytes], *, suffix: str, content_type: str) -> StoredBlob:
        """Store ``chunks`` (of any size) as ``<sha256><suffix>``, hashing them as they stream in: for
        uploads too large to hold, whose name is known only at their end. All or nothing: an exception
        from ``chunks`` (a size limit) leaves nothing stored; a blob of the same bytes is kept as it is."""
        ...

    def stat(self, ref: BlobRef) -> BlobInfo | None:
        """Size and time of the blob, None when it is not stored."""
        ...

    def read(self, ref: BlobRef, byte_range: ByteRange | None = None) -> BlobStream:
        """The blob's (or ``byte_range``'s) size and bytes in chunks of at most CHUNK_BYTES; raises
        BlobMissing when it is not stored and RangeNotSatisfiable when the range is outside it (now, not
        when the chunks are read)."""
        ...

    def delete(self, ref: BlobRef) -> bool:
        """Remove the blob; whether it was there."""
        ...

    def list(self, kind: str) -> Iterator[BlobInfo]:
        """Every stored blob of ``kind`` (retention's sweep of orphaned snapshots)."""
        ...


def chunked(data: bytes, size: int = CHUNK_BYTES) -> Iterator[bytes]:
    """``data`` as chunks of ``size`` bytes, without copying it (memoryview slices made into bytes one at
    a time)."""
    view = memoryview(data)
    for start in range(0, len(view), size):
        yield bytes(view[start : start + size])


def read_all(store: BlobStore, ref: BlobRef) -> bytes:
    """The whole blob, for the small ones that are processed whole (a snapshot becoming a reference)."""
    return b"".join(store.read(ref).chunks)
