"""What every blob store offers: images and clips kept by kind and name, written and read in chunks.

A blob is named by its kind (``evidence``, ``snapshot``, ``reference``; another kind is one line in
:data:`KINDS`) and a name chosen by the store's own code (a sha256 with its extension, a camera code),
never by a client. Reads are iterators of chunks of at most :data:`CHUNK_BYTES`, so serving a blob never
holds the whole of it in memory; writes take an iterable of chunks for the same reason.
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
}

_UNSAFE_NAME = re.compile(r"[/\\\x00]")


class BlobError(Exception):
    """A blob request the store cannot serve: an unknown kind, an unsafe name, a missing blob."""


class BlobMissing(BlobError):
    """The blob is not in the store."""


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
    """An open blob: its size (a response's Content-Length) and its bytes, one chunk at a time."""

    size: int
    chunks: Iterator[bytes]


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

    def stat(self, ref: BlobRef) -> BlobInfo | None:
        """Size and time of the blob, None when it is not stored."""
        ...

    def read(self, ref: BlobRef) -> BlobStream:
        """The blob's size and bytes in chunks of at most CHUNK_BYTES; raises BlobMissing when it is not
        stored (now, not when the chunks are read)."""
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
