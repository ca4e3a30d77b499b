"""The blob stores (api.storage): the local directory and PostgreSQL keep, stream, replace and delete
blobs the same way; the database store never holds a whole blob in memory; retention deletes through
the store that is configured."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import tracemalloc
from collections.abc import Iterator

import pydantic
import pytest
from sqlalchemy import func, select, update

from api.models import Blob, BlobChunk
from api.retention import purge_expired
from api.settings import Settings
from api.storage import (
    CHUNK_BYTES,
    BlobError,
    BlobMissing,
    BlobRef,
    BlobStore,
    DatabaseBlobStore,
    LocalBlobStore,
    blobs_for,
    read_all,
)
from api.storage.database import BlobChanged
from tests.api.builders import image_bytes, make_world
from tests.api.conftest import Store
from tests.api.test_retention import NOW, OLD, _case

BIG = 5 * CHUNK_BYTES + 12_345  # six chunks, the last one partial
PG = pytest.mark.parametrize("store", ["postgresql"], indirect=True)


def _random(size: int, seed: int = 0) -> bytes:
    return hashlib.shake_256(seed.to_bytes(4, "big")).digest(size)


@pytest.fixture(params=["local", "database"])
def blobs(request: pytest.FixtureRequest, store: Store) -> BlobStore:
    """Each backend; the tests using it run on the PostgreSQL case store (@PG) that the database one needs."""
    if request.param == "local":
        return LocalBlobStore(store.settings.data_dir)
    return DatabaseBlobStore(store.engine)


def _pieces(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@PG
def test_a_blob_of_several_chunks_round_trips_in_chunks(blobs: BlobStore) -> None:
    data = _random(BIG)
    ref = BlobRef("evidence", f"{hashlib.sha256(data).hexdigest()}.jpg")

    assert blobs.put(ref, _pieces(data, 100_000), content_type="image/jpeg")  # pieces of any size

    stream = blobs.read(ref)
    chunks = list(stream.chunks)
    assert stream.size == BIG and b"".join(chunks) == data
    assert len(chunks) == 6 and all(len(c) <= CHUNK_BYTES for c in chunks)
    info = blobs.stat(ref)
    assert info is not None and info.size == BIG
    assert [b.ref for b in blobs.list("evidence")] == [ref]


@PG
def test_content_addressed_blobs_are_written_once_and_replace_overwrites(blobs: BlobStore) -> None:
    first, second = image_bytes(seed=1), image_bytes(seed=2)
    evidence = BlobRef("evidence", "a" * 64 + ".jpg")
    snapshot = BlobRef("snapshot", "cam-1.jpg")

    assert blobs.put(evidence, [first], content_type="image/jpeg")
    assert not blobs.put(evidence, [second], content_type="image/jpeg")  # same name: kept
    blobs.put(snapshot, [first], content_type="image/jpeg", replace=True)
    blobs.put(snapshot, [second], content_type="image/jpeg", replace=True)

    assert read_all(blobs, evidence) == first
    assert read_all(blobs, snapshot) == second
    assert blobs.delete(snapshot) and not blobs.delete(snapshot)
    assert blobs.stat(snapshot) is None
    with pytest.raises(BlobMissing, match=r"snapshot/cam-1\.jpg is not in the blob store"):
        blobs.read(snapshot)


@pytest.mark.parametrize(
    ("kind", "name", "message"),
    [
        ("secrets", "x.jpg", "unknown blob kind 'secrets'"),
        ("evidence", "../secret.key", "unsafe blob name"),
        ("snapshot", "a\\b.jpg", "unsafe blob name"),
        ("reference", "..", "unsafe blob name"),
        ("reference", "", "unsafe blob name"),
    ],
)
def test_names_cannot_leave_their_kind(kind: str, name: str, message: str) -> None:
    with pytest.raises(BlobError, match=message):
        BlobRef(kind, name)


def test_the_local_store_keeps_the_data_directory_layout(tmp_path: os.PathLike[str]) -> None:
    blobs = LocalBlobStore(tmp_path)  # type: ignore[arg-type]
    sha = "ab" + "c" * 62
    paths = {
        BlobRef("evidence", f"{sha}.png"): f"evidence/ab/{sha}.png",
        BlobRef("snapshot", "cam-1.jpg"): "snapshots/cam-1.jpg",
        BlobRef("reference", f"{sha}.jpg"): f"references/{sha}.jpg",
    }
    for ref, relative in paths.items():
        blobs.put(ref, [b"x"], content_type="image/jpeg")
        assert (blobs.root / relative).read_bytes() == b"x"


@PG
def test_the_database_store_holds_one_chunk_at_a_time(store: Store) -> None:
    blobs = DatabaseBlobStore(store.engine)
    size = 32 * CHUNK_BYTES  # 8 MiB
    ref = BlobRef("evidence", "b" * 64 + ".jpg")
    digest = hashlib.sha256()

    def produced() -> Iterator[bytes]:  # an upload arriving in 64 KiB pieces, never whole
        for i in range(size // 65_536):
            piece = _random(65_536, seed=i)
            digest.update(piece)
            yield piece

    tracemalloc.start()
    try:
        blobs.put(ref, produced(), content_type="image/jpeg")
        _, write_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        read = hashlib.sha256()
        for chunk in blobs.read(ref).chunks:
            read.update(chunk)
        _, read_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert read.hexdigest() == digest.hexdigest()
    # a few chunks in flight (the chunk being cut, its copy for the driver), never the blob's 32
    assert write_peak < 8 * CHUNK_BYTES, write_peak
    assert read_peak < 8 * CHUNK_BYTES, read_peak
    with store.sessions() as session:
        rows = session.scalar(select(func.count()).where(BlobChunk.key == ref.key))
        longest = session.scalar(
            select(func.max(func.length(BlobChunk.data))).where(BlobChunk.key == ref.key)
        )
        stored = session.get_one(Blob, ref.key)
    assert rows == 32 and longest == CHUNK_BYTES
    assert stored.size == size and stored.sha256 == digest.hexdigest()


@PG
def test_a_snapshot_replaced_while_it_is_read_ends_the_stream(store: Store) -> None:
    blobs = DatabaseBlobStore(store.engine)
    ref = BlobRef("snapshot", "cam-1.jpg")
    blobs.put(ref, [_random(BIG, seed=1)], content_type="image/jpeg", replace=True)
    chunks = blobs.read(ref).chunks
    next(chunks)

    blobs.put(ref, [_random(BIG, seed=2)], content_type="image/jpeg", replace=True)

    with pytest.raises(BlobChanged, match="replaced or deleted while it was read"):
        list(chunks)  # never half of one frame and half of the next


def test_the_database_store_needs_postgresql(tmp_path: os.PathLike[str]) -> None:
    with pytest.raises(pydantic.ValidationError, match="STREETWATCH_BLOB_STORE=database keeps the images"):
        Settings(data_dir=tmp_path, blob_store="database", _env_file=None)  # type: ignore[call-arg]


@PG
def test_retention_deletes_through_the_database_store(store: Store) -> None:
    settings = store.settings.model_copy(update={"blob_store": "database"})
    database = Store(store.backend, settings, store.engine, store.sessions)
    blobs = blobs_for(settings, store.engine)
    world = make_world(store.sessions)
    shared, own = image_bytes(seed=1), image_bytes(seed=2)
    old = _case(database, world, status="closed", ended_at=OLD, images=[shared, own])
    live = _case(database, world, status="in_progress", ended_at=OLD, images=[shared])
    gone = BlobRef("snapshot", "cam-gone.jpg")  # a snapshot of a camera that was deleted long ago
    blobs.put(gone, [own], content_type="image/jpeg", replace=True)
    with store.sessions.begin() as session:
        session.execute(update(Blob).where(Blob.key == gone.key).values(created_at=OLD))

    purged = purge_expired(store.sessions, settings, now=NOW)

    def stored(data: bytes) -> bool:
        return blobs.stat(BlobRef("evidence", f"{hashlib.sha256(data).hexdigest()}.jpg")) is not None

    assert purged.cases == [old] and purged.files == [hashlib.sha256(own).hexdigest()]
    assert purged.snapshots == ["cam-gone.jpg"] and blobs.stat(gone) is None
    assert not stored(own) and stored(shared)  # the live case still shows the shared image
    assert not any((store.settings.data_dir / "evidence").rglob("*.jpg"))  # nothing went to files
    assert live != old


@PG
def test_stat_times_are_aware(blobs: BlobStore) -> None:
    ref = BlobRef("snapshot", "cam-2.jpg")
    blobs.put(ref, [b"x"], content_type="image/jpeg", replace=True)
    info = blobs.stat(ref)
    assert info is not None and info.modified_at.tzinfo is not None
    assert abs(info.modified_at - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=5)
