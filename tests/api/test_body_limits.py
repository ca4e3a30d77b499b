"""Bounded request bodies (api.body_limits): refused from Content-Length or while they stream, before the
framework spends disk or memory on them; slow bodies time out; uploads are bounded per credential.

The first tests drive the middleware in front of a small FastAPI app straight through ASGI, so that they
can count what the app pulled from the body. The last ones stream a 200 MB body to the real app under
uvicorn and measure the process: bytes written (temporary files included: Starlette's spooled upload file
is unlinked at once, so a directory listing would never see it) and peak memory.
"""

from __future__ import annotations

import json
import select
import shutil
import socket
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import anyio
import pytest
from fastapi import FastAPI, File, Request, UploadFile
from fastapi.testclient import TestClient

from api import body_limits, evidence
from api.db import make_engine, make_session_factory
from api.errors import PayloadTooLarge
from api.settings import Settings
from tests.api.builders import device_auth, image_bytes, make_device_key, make_world, post_report
from tests.api.conftest import Store
from tests.api.live_server import serve

pytestmark = pytest.mark.security

JSON_LIMIT = 1000
IMAGE_LIMIT = 4000
OVERHEAD = 500
UPLOAD_LIMIT = IMAGE_LIMIT + OVERHEAD
MiB = 1024 * 1024


def small_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path,
        "run_jobs": False,
        "body_max_bytes": JSON_LIMIT,
        "evidence_max_bytes": IMAGE_LIMIT,
        "clip_max_bytes": IMAGE_LIMIT,  # clips share the evidence route's limit (the larger of the two)
        "multipart_overhead_bytes": OVERHEAD,
        "body_idle_timeout_s": 0.3,
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@dataclass
class Probe:
    """What the app behind the middleware saw."""

    handled: list[str] = field(default_factory=list)
    release: anyio.Event | None = None  # uploads wait for this before answering, to stay in progress


def probe_app(settings: Settings, probe: Probe) -> FastAPI:
    app = FastAPI()

    @app.post("/json")
    async def json_route(request: Request) -> dict[str, int]:
        size = len(await request.body())
        probe.handled.append("json")
        return {"size": size}

    @app.post("/upload/{name}")
    async def upload_route(name: str, file: Annotated[UploadFile, File()]) -> dict[str, int]:
        probe.handled.append(name)
        if probe.release is not None:
            await probe.release.wait()
        return {"size": len(await file.read())}

    body_limits.install(app, settings)
    return app


@dataclass
class Exchange:
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    pulled: int = 0  # body messages the app took from the client

    def json(self) -> Any:
        return json.loads(self.body)


async def call(
    app: FastAPI,
    path: str,
    chunks: list[bytes],
    headers: dict[str, str] | None = None,
    stall_after: int | None = None,
    every_s: float = 0.0,
) -> Exchange:
    """One request through ASGI: the body arrives in ``chunks``, one each ``every_s``, or stops coming
    after ``stall_after`` of them."""
    exchange = Exchange()
    raw_headers = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    scope = {"type": "http", "method": "POST", "path": path, "raw_path": path.encode(), "query_string": b""}
    scope |= {"headers": raw_headers, "http_version": "1.1", "scheme": "http", "root_path": ""}
    scope |= {"server": ("test", 80), "client": ("test", 1), "asgi": {"version": "3.0"}}

    async def receive() -> dict[str, Any]:
        if exchange.pulled == stall_after or exchange.pulled >= len(chunks):
            await anyio.sleep(60)  # a client that stopped sending, or one that waits for the answer
        await anyio.sleep(every_s)
        exchange.pulled += 1
        more = exchange.pulled < len(chunks)
        return {"type": "http.request", "body": chunks[exchange.pulled - 1], "more_body": more}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            exchange.status = message["status"]
            exchange.headers = {k.decode(): v.decode() for k, v in message["headers"]}
        elif message["type"] == "http.response.body":
            exchange.body += message.get("body", b"")

    await app(scope, receive, send)
    return exchange


def multipart(data: bytes) -> tuple[dict[str, str], bytes]:
    boundary = "b0undary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return {"content-type": f"multipart/form-data; boundary={boundary}"}, body


def pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


# --- the middleware, straight through ASGI ---------------------------------------------------------------


def test_an_honest_length_over_the_limit_is_refused_before_a_byte_is_read(tmp_path: Path) -> None:
    probe = Probe()
    app = probe_app(small_settings(tmp_path), probe)
    for path, limit in [("/json", JSON_LIMIT), ("/upload/a", UPLOAD_LIMIT)]:
        body = b"x" * (limit + 1)
        exchange = anyio.run(call, app, path, [body], {"content-length": str(len(body))}, 0)

        assert exchange.status == 413 and exchange.pulled == 0, path
        assert exchange.json() == {
            "detail": f"request body is larger than the limit of {limit} bytes",
            "code": "payload_too_large",
            "max_bytes": limit,
        }
        assert exchange.headers["connection"] == "close"
    assert probe.handled == []


def test_bodies_within_the_limits_reach_the_routes(tmp_path: Path) -> None:
    probe = Probe()
    app = probe_app(small_settings(tmp_path), probe)
    json_body = b'"' + b"x" * (JSON_LIMIT - 2) + b'"'
    headers, upload = multipart(b"y" * IMAGE_LIMIT)  # the image's limit is the route's, beside the form

    to_json = anyio.run(call, app, "/json", pieces(json_body, 100), {"content-length": str(len(json_body))})
    to_upload = anyio.run(call, app, "/upload/a", pieces(upload, 1000), headers)

    assert (to_json.status, to_json.json()) == (200, {"size": JSON_LIMIT})
    assert (to_upload.status, to_upload.json()) == (200, {"size": IMAGE_LIMIT})
    assert probe.handled == ["json", "a"]


@pytest.mark.parametrize(
    ("path", "limit", "declared"),
    [
        ("/json", JSON_LIMIT, None),  # chunked: no length at all
        ("/json", JSON_LIMIT, "10"),  # says 10 bytes, sends more
        ("/upload/a", UPLOAD_LIMIT, None),
        ("/upload/a", UPLOAD_LIMIT, "10"),
    ],
)
def test_a_body_passing_the_limit_as_it_streams_is_cut_off_there(
    tmp_path: Path, path: str, limit: int, declared: str | None
) -> None:
    probe = Probe()
    app = probe_app(small_settings(tmp_path), probe)
    headers, body = multipart(b"z" * 100 * limit) if path.startswith("/upload") else ({}, b"1" * 100 * limit)
    if declared:
        headers["content-length"] = declared
    chunk = 100

    exchange = anyio.run(call, app, path, pieces(body, chunk), headers)

    assert exchange.status == 413, exchange.body
    assert exchange.json()["code"] == "payload_too_large" and exchange.json()["max_bytes"] == limit
    assert exchange.pulled == limit // chunk + 1  # the first chunk past the limit, not one more
    assert probe.handled == []


def test_a_body_that_stops_arriving_times_out_with_408(tmp_path: Path) -> None:
    probe = Probe()
    app = probe_app(small_settings(tmp_path, body_idle_timeout_s=0.2), probe)
    started = time.monotonic()

    exchange = anyio.run(call, app, "/json", [b"[1,", b"2]"], None, 1)

    assert time.monotonic() - started < 5  # the client would have stalled for 60 s
    assert exchange.status == 408 and exchange.json()["code"] == "request_timeout"
    assert "too slowly" in exchange.json()["detail"] and probe.handled == []


def test_a_slow_but_steady_body_times_out_at_the_total_limit(tmp_path: Path) -> None:
    probe = Probe()
    app = probe_app(small_settings(tmp_path, body_idle_timeout_s=5, body_total_timeout_s=0.3), probe)

    exchange = anyio.run(call, app, "/json", [b"1"] * 100, None, None, 0.02)  # 2 s in all

    assert exchange.status == 408 and exchange.json()["code"] == "request_timeout"
    assert exchange.pulled < 30 and probe.handled == []


def test_a_third_upload_with_one_credential_waits_its_turn(tmp_path: Path) -> None:
    probe = Probe()
    app = probe_app(small_settings(tmp_path, uploads_per_client=2, uploads_total=3), probe)
    headers, body = multipart(b"i" * 100)

    async def scenario() -> list[Exchange]:
        probe.release = anyio.Event()
        results: dict[str, Exchange] = {}

        async def upload(name: str, key: str) -> None:
            results[name] = await call(app, f"/upload/{name}", [body], {**headers, "x-device-key": key})

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(upload, "first", "swd_a")
            tasks.start_soon(upload, "second", "swd_a")
            await anyio.wait_all_tasks_blocked()
            await upload("third", "swd_a")  # same key: refused
            tasks.start_soon(upload, "other", "swd_b")  # another key: its own count
            await anyio.wait_all_tasks_blocked()
            await upload("fourth", "swd_c")  # three in progress: the process's limit
            probe.release.set()
        await upload("later", "swd_a")  # the first two are done: room again
        return [results[name] for name in ("first", "second", "third", "other", "fourth", "later")]

    first, second, third, other, fourth, later = anyio.run(scenario)

    assert [first.status, second.status, other.status, later.status] == [200, 200, 200, 200]
    for refused in (third, fourth):
        assert refused.status == 429 and refused.headers["retry-after"] == "2"
        assert refused.json()["code"] == "too_many_requests" and refused.pulled == 0
    assert "2 uploads with this credential" in third.json()["detail"]
    assert "3 uploads, its limit" in fourth.json()["detail"]
    assert probe.handled == ["first", "second", "other", "later"]


# --- the real app under uvicorn: disk and memory stay flat -------------------------------------------------


@pytest.fixture
def sqlite_store(sqlite_template: Path, tmp_path: Path) -> Iterator[Store]:
    """A store on SQLite only: these tests measure the server process, not the database."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    shutil.copy(sqlite_template, data_dir / "streetwatch.sqlite")
    settings = Settings(
        data_dir=data_dir, run_jobs=False, evidence_max_bytes=MiB, clip_max_bytes=MiB, _env_file=None
    )  # type: ignore[call-arg]
    engine = make_engine(settings)
    yield Store("sqlite", settings, engine, make_session_factory(engine))
    engine.dispose()


def test_the_real_app_bounds_every_route_that_takes_a_file(sqlite_store: Store) -> None:
    from api.app import create_app

    app = create_app(sqlite_store.settings, engine=sqlite_store.engine)
    routes = body_limits.upload_routes(app)
    found = {(method, route.path_regex.pattern) for route in routes for method in route.methods}

    assert found == {
        ("POST", "^/api/v1/cases/(?P<case_id>[^/]+)/evidence$"),
        ("PUT", "^/api/v1/devices/me/cameras/(?P<code>[^/]+)/snapshot$"),
        ("POST", "^/console/cases/(?P<case_id>[^/]+)/act$"),
        ("POST", "^/api/v1/models$"),
    }
    assert [route.model for route in routes if "models" in route.path_regex.pattern] == [True]


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    sent: int  # body bytes the client got to send before the answer came


def stream(port: int, head: str, body_size: int, *, chunked: bool, first: bytes = b"") -> Answer:
    """Send ``head`` and then up to ``body_size`` bytes (``first``, then zeros) the way a careful client
    does: stop sending as soon as an answer arrives, then read it."""
    zeros = bytes(64 * 1024)  # one buffer, sent again and again: the client itself stays small
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.encode())
        sock.setblocking(False)
        sent = 0
        pending = b""
        while sent < body_size or pending:
            readable, _, _ = select.select([sock], [sock], [], 10)
            if readable:
                break
            if not pending:
                chunk = first if sent == 0 and first else zeros[: body_size - sent]
                sent += len(chunk)
                pending = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" if chunked else chunk
            try:
                pending = pending[sock.send(pending) :]
            except BlockingIOError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
        if chunked and sent >= body_size and not pending:
            sock.sendall(b"0\r\n\r\n")
        return read_answer(sock, sent)


def read_answer(sock: socket.socket, sent: int) -> Answer:
    sock.setblocking(True)
    raw = b""
    while b"\r\n\r\n" not in raw or len(raw) < _answer_length(raw):
        data = sock.recv(65536)
        if not data:
            break
        raw += data
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return Answer(int(status_line.split()[1]), headers, body, sent)


def _answer_length(raw: bytes) -> int:
    head, _, _ = raw.partition(b"\r\n\r\n")
    for line in head.decode().split("\r\n"):
        if line.lower().startswith("content-length:"):
            return len(head) + 4 + int(line.split(":")[1])
    return len(raw) + 1  # no length yet: read on


def evidence_head(port: int, key: str, length: int | None) -> str:
    framing = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    return (
        f"POST /api/v1/cases/1/evidence HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Device-Key: {key}\r\n"
        f"Content-Type: multipart/form-data; boundary=b0undary\r\n{framing}\r\n\r\n"
    )


FILE_PART = b'--b0undary\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n\r\n'


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def written_bytes() -> int:
    """Bytes this process has written with write(2) so far: temporary files count, sockets do not."""
    io = dict(line.split(": ") for line in Path("/proc/self/io").read_text().splitlines())
    return int(io["wchar"])


def reset_peak_memory() -> int:
    """Restart the kernel's peak-RSS count for this process (Linux ≥ 4.0); returns the RSS now."""
    Path("/proc/self/clear_refs").write_text("5")
    return _status_kib("VmRSS") * 1024


def peak_memory() -> int:
    return _status_kib("VmHWM") * 1024


def _status_kib(name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {name}")


STREAMED = 200 * MiB


def test_a_200_mb_upload_is_refused_without_spooling_it_to_disk(sqlite_store: Store) -> None:
    key = make_device_key(sqlite_store.sessions, "box-1")
    with serve(sqlite_store) as url:
        port = port_of(url)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(evidence_head(port, key, STREAMED).encode())  # the header only, no body yet
            honest = read_answer(sock, 0)
        before = written_bytes()
        chunked = stream(port, evidence_head(port, key, None), STREAMED, chunked=True, first=FILE_PART)
        grown = written_bytes() - before

    limit = MiB + sqlite_store.settings.multipart_overhead_bytes
    assert honest.status == 413  # answered from the header: the server did not wait for the body
    assert json.loads(honest.body)["code"] == "payload_too_large"
    assert chunked.status == 413 and json.loads(chunked.body)["max_bytes"] == limit
    assert chunked.sent < 20 * MiB  # cut off near the limit, far from 200 MB
    assert grown < limit + 2 * MiB  # what the framework spooled before the cut, never the whole body


def test_a_200_mb_json_body_is_refused_without_holding_it_in_memory(sqlite_store: Store) -> None:
    key = make_device_key(sqlite_store.sessions, "box-1")
    head = (
        "POST /api/v1/cases HTTP/1.1\r\nHost: store\r\nContent-Type: application/json\r\n"
        f"X-Device-Key: {key}\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    with serve(sqlite_store) as url:
        resident = reset_peak_memory()
        answer = stream(port_of(url), head, STREAMED, chunked=True, first=b'{"a": "')
        peak = peak_memory()

    assert answer.status == 413 and json.loads(answer.body)["max_bytes"] == MiB
    assert peak - resident < 40 * MiB  # the body was never gathered (200 MB, twice over when joined)


def test_a_third_concurrent_upload_from_one_device_gets_429(sqlite_store: Store) -> None:
    key = make_device_key(sqlite_store.sessions, "box-1")
    with serve(sqlite_store) as url, ExitStack() as held:
        port = port_of(url)
        for _ in range(2):  # two uploads in progress: headers sent, the body still coming
            sock = held.enter_context(socket.create_connection(("127.0.0.1", port), timeout=10))
            sock.sendall(evidence_head(port, key, 500_000).encode() + FILE_PART)
        time.sleep(0.3)

        third = stream(port, evidence_head(port, key, 1000), 1000, chunked=False)
        other = stream(port, evidence_head(port, "swd_other_key", 1000), 1000, chunked=False)
        held.close()  # the two give up: their slots come back
        deadline = time.monotonic() + 5
        again = third
        while again.status == 429 and time.monotonic() < deadline:
            time.sleep(0.1)
            again = stream(port, evidence_head(port, key, 1000), 1000, chunked=False)

    assert third.status == 429 and third.headers["retry-after"] == "2"
    assert json.loads(third.body)["code"] == "too_many_requests"
    assert other.status != 429  # another credential has its own count (and fails its own checks)
    assert again.status != 429


# --- images: pixels checked from the header, decodes bounded -----------------------------------------------


def png_claiming(width: int, height: int) -> bytes:
    """A PNG header announcing an image of this size, with no pixel data behind it."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk + b"\x00\x00\x00\x00IEND\xaeB`\x82"


def test_an_image_over_the_pixel_limit_is_refused_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_decoding(*_: object) -> None:
        raise AssertionError("decoded an image over the pixel limit")

    monkeypatch.setattr(evidence.cv2, "imdecode", no_decoding)
    with pytest.raises(PayloadTooLarge, match="4000x3001 pixels, more than the limit of 12000000") as refused:
        evidence.check_image(png_claiming(4000, 3001), MiB)  # the default: 12 MP
    assert refused.value.details == {"field": "file", "max_pixels": 12_000_000}
    with pytest.raises(PayloadTooLarge, match="64x48 pixels, more than the limit of 3071"):
        evidence.check_image(image_bytes(".jpg", 64, 48), MiB, max_pixels=64 * 48 - 1)


def test_an_image_at_the_pixel_limit_is_accepted() -> None:
    checked = evidence.check_image(image_bytes(".png", 64, 48), MiB, max_pixels=64 * 48)

    assert (checked.content_type, checked.width, checked.height) == ("image/png", 64, 48)


@pytest.mark.parametrize("max_decodes", [1, 2])
def test_at_most_max_decodes_images_decode_at_once(monkeypatch: pytest.MonkeyPatch, max_decodes: int) -> None:
    decode = evidence.cv2.imdecode
    running, most = 0, 0
    lock = threading.Lock()

    def slow_decode(*args: Any) -> Any:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.05)
        with lock:
            running -= 1
        return decode(*args)

    monkeypatch.setattr(evidence.cv2, "imdecode", slow_decode)
    data = image_bytes()
    with ThreadPoolExecutor(6) as pool:
        checked = list(pool.map(lambda _: evidence.check_image(data, MiB, max_decodes=max_decodes), range(6)))

    assert most == max_decodes and all(c.width == 64 for c in checked)


def test_the_store_applies_its_pixel_limit_to_uploads(client: TestClient, store: Store) -> None:
    make_world(store.sessions)
    device_key = make_device_key(store.sessions, "box-1")
    case_id = post_report(client, device_key, "incident-0001")["case_id"]
    store.settings.image_max_pixels = 64 * 48 - 1  # the app reads its settings per request

    response = client.post(
        f"/api/v1/cases/{case_id}/evidence",
        files={"file": ("a.jpg", image_bytes(".jpg", 64, 48), "image/jpeg")},
        data={"kind": "confirmation"},
        headers=device_auth(device_key),
    )

    assert response.status_code == 413, response.text
    assert response.json() == {
        "detail": "JPEG is 64x48 pixels, more than the limit of 3071",
        "code": "payload_too_large",
        "field": "file",
        "max_pixels": 3071,
    }
