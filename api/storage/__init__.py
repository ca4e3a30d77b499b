"""Where evidence, clips, camera snapshots, zone references, model files and shadow crops are kept: the
data directory (default) or PostgreSQL (``STREETWATCH_BLOB_STORE=database``), so that API hosts sharing
only the database serve each other's files. Everything that reads or writes them goes through
:class:`BlobStore`."""

from __future__ import annotations

from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from api.settings import Settings
from api.storage.base import (
    CHUNK_BYTES,
    KINDS,
    BlobError,
    BlobInfo,
    BlobMissing,
    BlobRef,
    BlobStore,
    BlobStream,
    ByteRange,
    Kind,
    RangeNotSatisfiable,
    StoredBlob,
    chunked,
    read_all,
)
from api.storage.database import DatabaseBlobStore
from api.storage.local import LocalBlobStore


def blobs_for(settings: Settings, bind: Session | sessionmaker[Session] | Engine | Connection) -> BlobStore:
    """The store ``settings.blob_store`` names, on the database ``bind`` is connected to (the store is a
    function of the settings and the database, so any code holding a session can reach it).

    Raises BlobError for ``database`` on anything but PostgreSQL (Settings refuses that combination too).
    """
    if settings.blob_store == "local":
        return LocalBlobStore(settings.data_dir)
    if isinstance(bind, sessionmaker):
        bind = bind.kw["bind"]  # the jobs hold the session factory only
    if isinstance(bind, Session):
        bind = bind.get_bind()
    if isinstance(bind, Connection):
        bind = bind.engine
    if not isinstance(bind, Engine):
        raise BlobError(f"the database blob store needs an engine, got {type(bind).__name__}")
    return DatabaseBlobStore(bind)


__all__ = [
    "CHUNK_BYTES",
    "KINDS",
    "BlobError",
    "BlobInfo",
    "BlobMissing",
    "BlobRef",
    "BlobStore",
    "BlobStream",
    "ByteRange",
    "DatabaseBlobStore",
    "Kind",
    "LocalBlobStore",
    "RangeNotSatisfiable",
    "StoredBlob",
    "blobs_for",
    "chunked",
    "read_all",
]
