"""Blobs in PostgreSQL: a ``blobs`` row per image or clip and its bytes in 256 KiB ``blob_chunks`` rows,
so API hosts that share only the database serve each other's evidence, snapshots and references.

Streamed both ways: a write inserts one chunk row at a time as its chunks arrive (one transaction: the
blob appears whole or not at all); a read fetches one chunk row per query, so neither holds more than a
chunk in memory and a slow client holds no database connection between chunks. Each chunk query also
names the blob's sha256 as read at the start: a snapshot replaced mid-read ends the stream with an error
instead of mixing two frames.

Writers of one name serialise on its ``blobs`` row (``INSERT ... ON CONFLICT``): without ``replace`` the
second writer of a content-addressed name finds it there and writes nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator

from sqlalchemy import Connection, Engine, delete, select, update
from sqlalchemy.dialects.postgresql import insert

from api.models import Blob, BlobChunk, utcnow
from api.storage.base import CHUNK_BYTES, BlobError, BlobInfo, BlobMissing, BlobRef, BlobStream


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

    def stat(self, ref: BlobRef) -> BlobInfo | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(Blob.size, Blob.created_at).where(Blob.key == ref.key)).first()
        return None if row is None else BlobInfo(ref, row.size, row.created_at)

    def read(self, ref: BlobRef) -> BlobStream:
        with self.engine.connect() as conn:
            row = conn.execute(select(Blob.sha256, Blob.size).where(Blob.key == ref.key)).first()
        if row is None:
            raise BlobMissing(f"{ref.key} is not in the blob store")
        return BlobStream(row.size, self._chunks(ref, row.sha256, row.size))

    def _chunks(self, ref: BlobRef, sha256: str, size: int) -> Iterator[bytes]:
        query = (
            select(BlobChunk.data)
            .join(Blob, Blob.key == BlobChunk.key)
            .where(BlobChunk.key == ref.key, Blob.sha256 == sha256)
        )
        for seq in range((size + CHUNK_BYTES - 1) // CHUNK_BYTES):
            with self.engine.connect() as conn:  # back to the pool between chunks
                data = conn.scalar(query.where(BlobChunk.seq == seq))
            if data is None:
                raise BlobChanged(f"{ref.key} was replaced or deleted while it was read (chunk {seq})")
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
