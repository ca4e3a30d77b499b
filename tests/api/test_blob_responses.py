"""Byte ranges over HTTP from both blob stores (api.storage.responses): a device resuming a model download
or a video element seeking in a clip gets the same answers whether the store keeps files in its data
directory (Starlette's FileResponse) or chunks in PostgreSQL (a stream from the chunk holding the first byte).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.models import Role
from api.storage import CHUNK_BYTES, ByteRange
from api.storage.responses import MalformedRange, parse_range
from tests.api.builders import auth, device_auth, make_device, make_operators
from tests.api.conftest import Store
from tests.api.test_model_registry import demo_card, publish

PG = pytest.mark.parametrize("store", ["postgresql"], indirect=True)  # the database store needs it

C = CHUNK_BYTES
SIZE = 3 * C + 1234
DATA = hashlib.shake_256(b"a model").digest(SIZE)


@dataclass
class Served:
    client: TestClient
    device: dict[str, str]
    url: str  # of a model assigned to the device
    blob_store: str
    data_dir: Path

    def get(self, **headers: str) -> Any:
        return self.client.get(self.url, headers={**self.device, **headers})


@pytest.fixture(params=["local", "database"])
def served(request: pytest.FixtureRequest, store: Store) -> Iterator[Served]:
    """An app on each blob store, with a model of several chunks assigned to a device."""
    settings = store.settings.model_copy(update={"blob_store": request.param})
    admin = auth(make_operators(store.sessions, [("admin", Role.ADMIN, None)])["admin"])
    _, key = make_device(store.sessions, "box-1")
    with TestClient(create_app(settings, engine=store.engine)) as client:
        version = publish(client, admin, DATA, demo_card(sha256=None))
        assert version.status_code == 201, version.text
        version_id = version.json()["id"]
        body = {"role": "live", "devices": ["box-1"]}
        assert client.post(f"/api/v1/models/{version_id}/assignments", json=body, headers=admin).is_success
        url = f"/api/v1/devices/me/models/{version_id}"
        yield Served(client, device_auth(key), url, request.param, settings.data_dir)


@PG
def test_without_a_range_the_whole_file_comes(served: Served) -> None:
    whole = served.get()
    assert whole.status_code == 200 and whole.content == DATA
    assert whole.headers["content-length"] == str(SIZE) and whole.headers["accept-ranges"] == "bytes"
    kept_as_file = (served.data_dir / "models").is_dir()
    assert kept_as_file == (served.blob_store == "local")


@PG
@pytest.mark.parametrize(
    ("header", "start", "stop"),
    [
        ("bytes=0-0", 0, 1),
        (f"bytes={C - 1}-{C}", C - 1, C + 1),  # across a chunk boundary
        (f"bytes={C}-{2 * C - 1}", C, 2 * C),  # exactly one stored chunk
        (f"bytes={C + 7}-", C + 7, SIZE),  # a resumed download
        (f"bytes={SIZE - 10}-{SIZE + 1000}", SIZE - 10, SIZE),  # past the end: clamped
        ("bytes=-100", SIZE - 100, SIZE),
        ("bytes=0-", 0, SIZE),  # a video element's first request
    ],
)
def test_a_range_comes_as_206_with_its_content_range(
    served: Served, header: str, start: int, stop: int
) -> None:
    part = served.get(Range=header)
    assert part.status_code == 206, part.text
    assert part.content == DATA[start:stop]
    assert part.headers["content-range"] == f"bytes {start}-{stop - 1}/{SIZE}"
    assert part.headers["content-length"] == str(stop - start)


@PG
@pytest.mark.parametrize("header", [f"bytes={SIZE}-", f"bytes={SIZE + 5}-{SIZE + 9}", "bytes=-0"])
def test_a_range_after_the_end_is_416_with_the_size(served: Served, header: str) -> None:
    refused = served.get(Range=header)
    assert refused.status_code == 416 and refused.headers["content-range"] == f"bytes */{SIZE}"


@PG
@pytest.mark.parametrize("header", ["bytes=abc", "items=0-10", "bytes=-"])
def test_a_range_header_naming_no_byte_range_is_400(served: Served, header: str) -> None:
    assert served.get(Range=header).status_code == 400


@PG
@pytest.mark.parametrize("served", ["database"], indirect=True)
def test_the_database_store_resumes_only_the_same_bytes(served: Served) -> None:
    """If-Range: the ETag is the bytes' sha256; another ETag (a replaced file) gets the whole file."""
    etag = served.get().headers["etag"]
    assert etag == f'"{hashlib.sha256(DATA).hexdigest()}"'
    same = served.get(Range=f"bytes={C}-", **{"If-Range": etag})
    assert same.status_code == 206 and same.content == DATA[C:]
    other = served.get(Range=f"bytes={C}-", **{"If-Range": '"another"'})
    assert other.status_code == 200 and other.content == DATA
    several = served.get(Range="bytes=0-9,20-29")  # several ranges: the whole file (RFC 9110 allows)
    assert several.status_code == 200 and several.content == DATA


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=5-9", ByteRange(5, 9)),
        ("bytes = 5 - ", ByteRange(5, None)),
        ("BYTES=-7", ByteRange(None, 7)),
        ("bytes=x-y, 3-4", ByteRange(3, 4)),  # a part that is not a range is skipped, as Starlette does
        ("bytes=0-1,5-6", None),  # several: the caller serves the whole blob
    ],
)
def test_parse_range(header: str, expected: ByteRange | None) -> None:
    assert parse_range(header) == expected


def test_parse_range_names_what_is_wrong() -> None:
    with pytest.raises(MalformedRange, match="only byte ranges"):
        parse_range("lines=1-2")
    with pytest.raises(MalformedRange, match="last byte 2 is before its first 9"):
        parse_range("bytes=9-2")
