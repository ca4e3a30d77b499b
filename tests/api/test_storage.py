"""The blob stores (api.storage): the local directory and PostgreSQL keep, stream, replace and delete
blobs the same way, read the same byte ranges (across chunk boundaries) and store uploads named by their
sha256 all or nothing; the database store never holds a whole blob in memory; retention deletes through
the store that is configured."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import tracemalloc
from collections.abc import Iterator

import pydantic
import pytest
from sqlalchemy import event, func, select, update

from api.models import Blob, BlobChunk
from api.retention import purge_expired
from api.settings import Settings
from api.storage import (
    CHUNK_BYTES,
    BlobError,
    BlobMissing,
    BlobRef,
    BlobStore,
    ByteRange,
    DatabaseBlobStore,
    LocalBlobStore,
    RangeNotSatisfiable,
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


C = CHUNK_BYTES
RANGES = [
    ByteRange(0, 0),  # the first byte
    ByteRange(0, C - 1),  # exactly the first chunk
    ByteRange(C - 1, C),  # the last byte of one chunk and the first of the next
    ByteRange(C, 2 * C - 1),  # exactly the second chunk
    ByteRange(C + 5, 3 * C + 7),  # into one chunk, over a whole one, into a third
    ByteRange(3 * C + 100, 3 * C + 109),  # ten bytes inside one chunk
    ByteRange(5 * C, None),  # the partial last chunk
    ByteRange(BIG - 1, None),  # the last byte
    ByteRange(BIG - 10, BIG + 1000),  # past the end: clamped to it
    ByteRange(None, 100),  # the last hundred bytes
    ByteRange(None, BIG + 5),  # more than there is: all of it
    ByteRange(0, None),
]


@PG
@pytest.mark.parametrize("byte_range", RANGES, ids=str)
def test_byte_ranges_read_the_same_from_both_stores(blobs: BlobStore, byte_range: ByteRange) -> None:
    data = _random(BIG, seed=7)
    ref = BlobRef("evidence", f"{hashlib.sha256(data).hexdigest()}.mp4")
    blobs.put(ref, _pieces(data, 100_000), content_type="video/mp4")
    start, stop = byte_range.resolve(BIG)

    stream = blobs.read(ref, byte_range)
    chunks = list(stream.chunks)

    assert b"".join(chunks) == data[start:stop]
    assert (stream.start, stream.size, stream.total) == (start, stop - start, BIG)
    assert stream.partial == (stop - start != BIG)
    assert all(0 < len(c) <= CHUNK_BYTES for c in chunks)


@PG
@pytest.mark.parametrize(
    "byte_range", [ByteRange(BIG, None), ByteRange(BIG + 10, BIG + 20), ByteRange(None, 0)], ids=str
)
def test_a_range_outside_the_blob_is_refused_before_any_byte(blobs: BlobStore, byte_range: ByteRange) -> None:
    ref = BlobRef("evidence", "c" * 64 + ".mp4")
    blobs.put(ref, [_random(BIG)], content_type="video/mp4")
    with pytest.raises(RangeNotSatisfiable) as refused:
        blobs.read(ref, byte_range)
    assert refused.value.size == BIG


def test_a_byte_range_is_checked_when_it_is_made() -> None:
    with pytest.raises(ValueError, match="last byte 2 is before its first 5"):
        ByteRange(5, 2)
    with pytest.raises(ValueError, match="needs a first byte, a last byte or both"):
        ByteRange(None, None)
    with pytest.raises(ValueError, match="not negative"):
        ByteRange(-1, None)


@PG
def test_the_database_store_reads_a_range_from_the_chunk_holding_its_first_byte(store: Store) -> None:
    blobs = DatabaseBlobStore(store.engine)
    data = _random(BIG, seed=8)
    ref = BlobRef("model", f"{hashlib.sha256(data).hexdigest()}.onnx")
    blobs.put(ref, [data], content_type="application/octet-stream")
    chunk_queries: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if "blob_chunks" in statement:
            chunk_queries.append(statement)

    event.listen(store.engine, "before_cursor_execute", count)
    try:
        ten = list(blobs.read(ref, ByteRange(3 * C + 100, 3 * C + 109)).chunks)
        assert len(chunk_queries) == 1 and ten == [data[3 * C + 100 : 3 * C + 110]]  # ten bytes came
        chunk_queries.clear()
        tail = list(blobs.read(ref, ByteRange(4 * C - 1, None)).chunks)
    finally:
        event.remove(store.engine, "before_cursor_execute", count)
    # chunks 3 (its last byte), 4 and 5: none of the three before
    assert len(chunk_queries) == 3 and [len(c) for c in tail] == [1, C, BIG - 5 * C]


@PG
def test_put_hashed_names_a_streamed_upload_by_its_sha256(blobs: BlobStore) -> None:
    data = _random(3 * C + 17, seed=9)
    sha256 = hashlib.sha256(data).hexdigest()

    stored = blobs.put_hashed("model", _pieces(data, 1 << 20), suffix=".onnx", content_type="x/y")

    assert (stored.ref, stored.size, stored.sha256, stored.written) == (
        BlobRef("model", f"{sha256}.onnx"), len(data), sha256, True,
    )  # fmt: skip
    assert read_all(blobs, stored.ref) == data
    again = blobs.put_hashed("model", [data], suffix=".onnx", content_type="x/y")
    assert again.ref == stored.ref and not again.written
    assert [b.ref for b in blobs.list("model")] == [stored.ref]  # no temporary blob left behind


class Refused(Exception):
    pass


@PG
def test_an_upload_refused_mid_stream_leaves_nothing(store: Store, blobs: BlobStore) -> None:
    def cut() -> Iterator[bytes]:
        yield _random(2 * C, seed=10)
        raise Refused("over the limit")

    with pytest.raises(Refused):
        blobs.put_hashed("model", cut(), suffix=".onnx", content_type="x/y")

    assert list(blobs.list("model")) == []
    if isinstance(blobs, LocalBlobStore):
        assert list((store.settings.data_dir / "models").iterdir()) == []  # nor its temp file
    else:
        with store.sessions() as session:
            assert session.scalar(select(func.count()).select_from(BlobChunk)) == 0
            assert session.scalar(select(func.count()).select_from(Blob)) == 0


@PG
def test_put_hashed_into_the_database_holds_a_few_chunks_at_a_time(store: Store) -> None:
    blobs = DatabaseBlobStore(store.engine)
    size = 64 * CHUNK_BYTES  # 16 MiB arriving in 1 MiB pieces, as a model upload is read
    digest = hashlib.sha256()

    def produced() -> Iterator[bytes]:
        for i in range(size // (1 << 20)):
            piece = _random(1 << 20, seed=i)
            digest.update(piece)
            yield piece

    tracemalloc.start()
    try:
        stored = blobs.put_hashed("model", produced(), suffix=".onnx", content_type="x/y")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert stored.sha256 == digest.hexdigest() and stored.size == size
    # a piece, the chunks being cut from it and their copies for the driver (3 MiB measured): not 16 MiB
    assert peak < 16 * CHUNK_BYTES, peak
    with store.sessions() as session:
        keys = session.scalars(select(BlobChunk.key).distinct()).all()
    assert keys == [stored.ref.key]  # every chunk moved from the temporary key to the sha256


def test_the_local_store_keeps_models_and_crops_where_they_were(tmp_path: os.PathLike[str]) -> None:
    blobs = LocalBlobStore(tmp_path)  # type: ignore[arg-type]
    stored = blobs.put_hashed("model", [b"onnx"], suffix=".onnx", content_type="x/y")
    blobs.put(BlobRef("model_crop", "d" * 64 + ".jpg"), [b"jpeg"], content_type="image/jpeg")
    assert (blobs.root / "models" / f"{hashlib.sha256(b'onnx').hexdigest()}.onnx").read_bytes() == b"onnx"
    assert (blobs.root / "model-crops" / ("d" * 64 + ".jpg")).read_bytes() == b"jpeg"
    assert stored.written
