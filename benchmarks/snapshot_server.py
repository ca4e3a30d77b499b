"""A loopback HTTP snapshot server: many "cameras" answering ``GET /<camera>.jpg`` with a real JPEG, like the
snapshot URLs of IP cameras and video platforms (patrol mode's benchmark and tests).

* Pictures: a list of JPEGs; camera requests cycle through them (``pictures_for`` picks per camera and
  request number: a test serves composite frames, the benchmark one real frame).
* Unreachable cameras: a camera id in ``hang`` is answered after ``hang_s`` (or never, within a visit).
* Concurrency: the server counts requests in progress (until their answer is ready) per ``Host`` header
  (``peak_per_host``) and in all, so a test can check the patrol's per-host cap (``127.0.0.1`` and
  ``localhost`` are two hosts on one server).

Run as a script (the benchmark does, so that serving costs no memory in the measured process)::

    python -m benchmarks.snapshot_server --port 8555 --image frame.jpg
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType

PicturePicker = Callable[[str, int], bytes | None]  # (camera id, its request number) -> JPEG or None (404)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024


class SnapshotServer:
    """Serves ``http://127.0.0.1:PORT/<camera>.jpg`` from a background thread (a context manager)."""

    def __init__(
        self,
        pictures: Sequence[bytes] | PicturePicker,
        *,
        port: int = 0,
        hang: frozenset[str] = frozenset(),
        hang_s: float = 30.0,
        delay_s: float = 0.0,
    ) -> None:
        if callable(pictures):
            self.pick: PicturePicker = pictures
        else:
            frames = list(pictures)
            if not frames:
                raise ValueError("SnapshotServer needs at least one picture")
            self.pick = lambda _camera, n: frames[n % len(frames)]
        self.hang = set(hang)
        self.hang_s = hang_s
        self.delay_s = delay_s  # every answer waits this long (a slow platform)
        self._lock = threading.Lock()
        self.requests: dict[str, int] = defaultdict(int)  # camera -> requests answered or begun
        self.in_progress: dict[str, int] = defaultdict(int)  # Host header -> requests in progress
        self.peak_per_host: dict[str, int] = defaultdict(int)
        self.peak = 0
        self._running = 0
        self._server = _Server(("127.0.0.1", port), self._handler())
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="snapshot-server", daemon=True
        )

    def url(self, camera_id: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}/{camera_id}.jpg"

    def start(self) -> SnapshotServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> SnapshotServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, format: str, *args: object) -> None:
                return None

            def do_GET(self) -> None:
                camera = self.path.strip("/").removesuffix(".jpg")
                host = (self.headers.get("Host") or "").rsplit(":", 1)[0]
                with server._lock:
                    number = server.requests[camera]
                    server.requests[camera] += 1
                    server.in_progress[host] += 1
                    server._running += 1
                    server.peak_per_host[host] = max(server.peak_per_host[host], server.in_progress[host])
                    server.peak = max(server.peak, server._running)
                # the request stops counting before its answer goes out: a client that has read the
                # answer may send its next request before this thread runs again
                try:
                    if camera in server.hang:
                        time.sleep(server.hang_s)
                    elif server.delay_s:
                        time.sleep(server.delay_s)
                    body = server.pick(camera, number)
                finally:
                    with server._lock:
                        server.in_progress[host] -= 1
                        server._running -= 1
                try:
                    if body is None:
                        self.send_error(404, "no such camera")
                        return
                    self.send_response(200)
                    self.send_header("Content-Type", "image/jpeg")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--image", type=Path, action="append", required=True, help="a JPEG; repeatable")
    args = parser.parse_args(argv)
    for image in args.image:
        if not image.is_file():
            print(f"snapshot_server: --image {image}: no such file", file=sys.stderr)
            return 2
    with SnapshotServer([image.read_bytes() for image in args.image], port=args.port):
        print("READY", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            return 0


if __name__ == "__main__":
    sys.exit(main())
