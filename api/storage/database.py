"""Blobs in PostgreSQL: a ``blobs`` row per image or clip and its bytes in 256 KiB ``blob_chunks`` rows,
so API hosts that share only the database serve each other's evidence, snapshots and references.

Streamed both ways: a write inserts one chunk row at a time as its chunks arrive (one transaction: the
blob appears whole or not at all); a read fetches one chunk row per query, so neither holds more than a
chunk in memory and a slow client holds no database connection between chunks. Each chunk query also
names the blob's sha256 as read at the start: a snapshot replaced mid-read ends the stream with an error
instead of mixing two frames. Every chunk but the last holds exactly CHUNK_BYTES, so a byte range starts
at chunk ``first // CHUNK_BYTES`` and PostgreSQL cuts the bytes wanted out of the first and last chunks.

Writers of one name serialise on its ``blobs`` row (``INSERT ... ON CONFLICT``): without ``replace`` the
second writer of a content-addressed name finds it there and writes nothing.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Iterator

from sqlalchemy import Connection, Engine, LargeBinary, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert

from api.models import Blob, BlobChunk, utcnow
from api.storage.base import (
    CHUNK_BYTES,
    BlobError,
    BlobInfo,
    BlobMissing,
    BlobRef,
    BlobStream,
    ByteRange,
    StoredBlob,
)


class BlobChanged(BlobError):
    """The blob was replaced or deleted while it was being read."""


class DatabaseBlobStore:
    def __init__(self, engine: Engine) -> None:
        if engine.dialect.name != "postgresql":
            raise BlobError(
                f"the database blob store needs PostgreSQL, not {engine.dialect.name}: "
                "set STREETWATCH_BLOB_STORE=local or point STREETWATCH_DATABASE_URL at PostgreSQL"
            )
        self.engine = engine

    def put(self, ref: BlobRef, chunks: Iterable[bytes], *, content_type: str, replace: bool = False) -> bool:
        row = {"key": ref.key, "kind": ref.kind, "size": 0, "sha256": "", "content_type": content_type}
        with self.engine.begin() as conn:
            claim = insert(Blob).values(**row, created_at=utcnow())
            if replace:
                conn.execute(
                    claim.on_conflict_do_update(
                        index_elements=[Blob.key],
                        set_={"content_type": content_type, "created_at": claim.excluded.created_at},
                    )
                )
                conn.execute(delete(BlobChunk).where(BlobChunk.key == ref.key))
            elif conn.execute(claim.on_conflict_do_nothing().returning(Blob.key)).first() is None:
                return False  # stored already (or being stored by another writer, who holds the row)
            size, digest = _insert_chunks(conn, ref.key, chunks)
            conn.execute(update(Blob).where(Blob.key == ref.key).values(size=size, sha256=digest))
        return True

    def put_hashed(self, kind: str, chunks: Iterable[bytes], *, suffix: str, content_type: str) -> StoredBlob:
        """The chunks go in under a temporary key that no other transaction sees, then move to
        ``<sha256><suffix>`` in the same transaction (the bytes are not copied: only the key of each
        chunk row changes)."""
        temp = BlobRef(kind, f".upload-{uuid.uuid4().hex}")
        row = {"kind": kind, "content_type": content_type, "created_at": utcnow()}
        with self.engine.connect() as conn:  # closed without a commit on any exception: nothing stays
            conn.execute(insert(Blob).values(key=temp.key, size=0, sha256="", **row))
            size, digest = _insert_chunks(conn, temp.key, chunks)
            ref = BlobRef(kind, f"{digest}{suffix}")
            # another writer of the same bytes holds the row until it commits (then: kept) or rolls back
            claim = insert(Blob).values(key=ref.key, size=size, sha256=digest, **row)
            if conn.execute(claim.on_conflict_do_nothing().returning(Blob.key)).first() is None:
                conn.rollback()
                return StoredBlob(ref, size, digest, written=False)
            conn.execute(update(BlobChunk).where(BlobChunk.key == temp.key).values(key=ref.key))
            conn.execute(delete(Blob).where(Blob.key == temp.key))
            conn.commit()
        return StoredBlob(ref, size, digest, written=True)

    def stat(self, ref: BlobRef) -> BlobInfo | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(Blob.size, Blob.created_at).where(Blob.key == ref.key)).first()
        return None if row is None else BlobInfo(ref, row.size, row.created_at)

    def read(self, ref: BlobRef, byte_range: ByteRange | None = None) -> BlobStream:
        with self.engine.connect() as conn:
            row = conn.execute(select(Blob.sha256, Blob.size).where(Blob.key == ref.key)).first()
        if row is None:
            raise BlobMissing(f"{ref.key} is not in the blob store")
        start, stop = byte_range.resolve(row.size) if byte_range is not None else (0, row.size)
        chunks = self._chunks(ref, row.sha256, start, stop)
        return BlobStream(stop - start, chunks, start=start, total=row.size, etag=row.sha256)

    def _chunks(self, ref: BlobRef, sha256: str, start: int, stop: int) -> Iterator[bytes]:
        """Bytes ``start`` to ``stop`` (exclusive): from the chunk holding ``start``, skipping into it."""
        for seq in range(start // CHUNK_BYTES, (stop + CHUNK_BYTES - 1) // CHUNK_BYTES):
            offset = seq * CHUNK_BYTES
            skip = max(start - offset, 0)
            take = min(stop - offset, CHUNK_BYTES) - skip
            query = (
                select(func.substr(BlobChunk.data, skip + 1, take, type_=LargeBinary))
                .join(Blob, Blob.key == BlobChunk.key)
                .where(BlobChunk.key == ref.key, BlobChunk.seq == seq, Blob.sha256 == sha256)
            )
            with self.engine.connect() as conn:  # back to the pool between chunks
                data = conn.scalar(query)
            if data is None:
                raise BlobChanged(f"{ref.key} was replaced or deleted while it was read (chunk {seq})")
            if len(data) != take:
                raise BlobError(f"{ref.key}: chunk {seq} holds {len(data)} bytes from {skip}, not {take}")
            yield bytes(data)

    def delete(self, ref: BlobRef) -> bool:
        with self.engine.begin() as conn:
            gone = conn.execute(delete(Blob).where(Blob.key == ref.key).returning(Blob.key)).first()
        return gone is not None

    def list(self, kind: str) -> Iterator[BlobInfo]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(Blob.key, Blob.size, Blob.created_at).where(Blob.kind == kind).order_by(Blob.key)
            ).all()
        for row in rows:
            yield BlobInfo(BlobRef(kind, row.key.split("/", 1)[1]), row.size, row.created_at)


def _insert_chunks(conn: Connection, key: str, chunks: Iterable[bytes]) -> tuple[int, str]:
    """Insert ``chunks`` re-cut to CHUNK_BYTES rows; the total size and sha256."""
    digest, size, seq = hashlib.sha256(), 0, 0
    pending = bytearray()
    for chunk in chunks:
        pending += chunk
        digest.update(chunk)
        size += len(chunk)
        while len(pending) >= CHUNK_BYTES:
            conn.execute(insert(BlobChunk).values(key=key, seq=seq, data=bytes(pending[:CHUNK_BYTES])))
            del pending[:CHUNK_BYTES]
            seq += 1
    if pending:
        conn.execute(insert(BlobChunk).values(key=key, seq=seq, data=bytes(pending)))
    return size, digest.hexdigest()
