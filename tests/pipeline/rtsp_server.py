"""A REAL RTSP server for tests: GStreamer's RTSP server (Debian packages) looping H.264 clips like cameras.

Two halves in one file:

* Imported from the tests (the project's venv, with PyAV): :func:`encode_clip` encodes a real video once
  into a raw H.264 Annex-B file plus an index of its access units, and :class:`RtspServer` starts the server
  as a subprocess under the SYSTEM ``/usr/bin/python3`` (which has PyGObject and the GStreamer typelibs),
  waits for it to listen, and can kill and restart it on the same port.
* Run as a script under ``/usr/bin/python3``: the server itself. Each ``--stream NAME=FILE`` is served at
  ``rtsp://127.0.0.1:PORT/NAME`` over TCP and UDP. An ``appsrc`` is fed the clip's access units at the clip's
  frame rate, looping forever; the position in the clip follows the wall clock from ``--epoch`` (like a camera
  that keeps filming while nobody watches), and every client joins at the latest keyframe.

Why appsrc and not ``multifilesrc loop=true``: a raw H.264 file carries no timestamps, so that pipeline sends
every frame with the same RTP timestamp; and ``filesrc ! qtdemux`` stops at the end of the file.

Debian packages: gstreamer1.0-rtsp gir1.2-gst-rtsp-server-1.0 python3-gi gstreamer1.0-plugins-good
gstreamer1.0-plugins-bad (scripts/common.sh installs them).
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any

SYSTEM_PYTHON = "/usr/bin/python3"
READY = "READY"
_PROBE = (
    "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0'); "
    "from gi.repository import Gst, GstRtspServer"
)


# --------------------------------------------------------------------------------------------------
# Test side (venv, PyAV)
# --------------------------------------------------------------------------------------------------


def server_available() -> str | None:
    """None when the system Python can load GStreamer's RTSP server; otherwise why not."""
    if not Path(SYSTEM_PYTHON).exists():
        return f"{SYSTEM_PYTHON} is missing"
    probe = subprocess.run([SYSTEM_PYTHON, "-c", _PROBE], capture_output=True, text=True, timeout=60)
    if probe.returncode:
        return (
            "GStreamer RTSP server not loadable by the system Python (apt-get install gstreamer1.0-rtsp "
            f"gir1.2-gst-rtsp-server-1.0 python3-gi gstreamer1.0-plugins-bad): {probe.stderr.strip()[-300:]}"
        )
    return None


def encode_clip(
    source: Path,
    target: Path,
    *,
    gop: int = 25,
    max_seconds: float | None = None,
    width: int | None = None,
) -> Path:
    """Encode ``source`` once to H.264 at ``target`` (Annex B): no B-frames, one slice per frame, SPS/PPS
    before every keyframe, a keyframe every ``gop`` frames; ``target``.json lists each access unit's offset,
    size and keyframe flag. Returns ``target``; an existing, complete clip is reused."""
    import av  # the venv's PyAV; the server half never imports it

    index_path = target.with_name(target.name + ".json")
    if target.exists() and index_path.exists():
        return target
    units: list[tuple[int, int, bool]] = []
    with av.open(str(source)) as container, target.open("wb") as out:
        stream = container.streams.video[0]
        rate = stream.average_rate or Fraction(25)
        encoder = av.CodecContext.create("libx264", "w")
        scale = (width / stream.codec_context.width) if width else 1.0
        encoder.width = int(stream.codec_context.width * scale) // 2 * 2
        encoder.height = int(stream.codec_context.height * scale) // 2 * 2
        encoder.pix_fmt = "yuv420p"
        encoder.time_base = 1 / Fraction(rate)
        encoder.framerate = Fraction(rate)
        encoder.options = {
            "preset": "veryfast",
            "g": str(gop),
            "keyint_min": str(gop),
            "bf": "0",
            "sc_threshold": "0",
            "x264-params": "repeat-headers=1:sliced-threads=0",  # one slice per frame, like most cameras
        }
        offset = 0

        def write(packets: list[Any]) -> None:
            nonlocal offset
            for packet in packets:
                data = bytes(packet)
                out.write(data)
                units.append((offset, len(data), bool(packet.is_keyframe)))
                offset += len(data)

        for index, frame in enumerate(container.decode(stream)):
            if max_seconds is not None and index / float(rate) >= max_seconds:
                break
            frame = frame.reformat(width=encoder.width, height=encoder.height, format="yuv420p")
            frame.pts = index
            frame.time_base = encoder.time_base
            frame.pict_type = av.video.frame.PictureType.NONE  # let x264 place keyframes, not the source
            write(encoder.encode(frame))
        write(encoder.encode(None))
    index_path.write_text(
        json.dumps(
            {
                "fps": [rate.numerator, rate.denominator],
                "width": encoder.width,
                "height": encoder.height,
                "units": units,
            }
        )
    )
    return target


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RtspServer:
    """The GStreamer RTSP server as a subprocess of the system Python; ``kill()`` / ``start()`` keep the port.

    >>> with RtspServer({"cam": clip}) as server:
    ...     url = server.url("cam")
    """

    def __init__(
        self, streams: dict[str, Path], *, port: int | None = None, epoch: float | None = None
    ) -> None:
        self.streams = streams
        self.port = port or free_port()
        self.epoch = time.time() if epoch is None else epoch
        self.process: subprocess.Popen[str] | None = None
        self.log: list[str] = []

    def url(self, name: str) -> str:
        return f"rtsp://127.0.0.1:{self.port}/{name}"

    def start(self, timeout_s: float = 20.0) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        args = [
            SYSTEM_PYTHON,
            str(Path(__file__).resolve()),
            "--port",
            str(self.port),
            "--epoch",
            str(self.epoch),
        ]
        for name, clip in self.streams.items():
            args += ["--stream", f"{name}={clip}"]
        # The system Python must not see the venv's packages (PYTHONPATH / PYTHONHOME from the test run).
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        self.process = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, bufsize=1
        )
        self._wait_ready(timeout_s)

    def _wait_ready(self, timeout_s: float) -> None:
        assert self.process is not None and self.process.stdout is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.process.stdout], [], [], 0.1)
            if ready:
                line = self.process.stdout.readline()
                if not line and self.process.poll() is not None:
                    break
                self.log.append(line.rstrip())
                if line.startswith(READY):
                    threading.Thread(target=self._drain_output, daemon=True).start()
                    return
            elif self.process.poll() is not None:
                break
        self.kill()
        raise RuntimeError(f"RTSP server did not start on port {self.port}: {' | '.join(self.log[-10:])}")

    def _drain_output(self) -> None:
        process = self.process
        if process is None or process.stdout is None:
            return
        for line in process.stdout:  # keep the pipe from filling; the last lines help when a test fails
            self.log.append(line.rstrip())
            del self.log[:-200]

    def kill(self) -> None:
        """SIGKILL, like a camera losing power: clients see the connection drop with no RTSP TEARDOWN."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None

    def __enter__(self) -> RtspServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.kill()


# --------------------------------------------------------------------------------------------------
# Server side (system Python, PyGObject + GStreamer)
# --------------------------------------------------------------------------------------------------


class _Clip:
    def __init__(self, path: Path) -> None:
        meta = json.loads(path.with_name(path.name + ".json").read_text())
        self.data = path.read_bytes()
        self.units: list[tuple[int, int, bool]] = [tuple(u) for u in meta["units"]]  # type: ignore[misc]
        self.fps = Fraction(*meta["fps"])
        self.frame_s = float(1 / self.fps)
        if not self.units or not self.units[0][2]:
            raise SystemExit(f"{path}: the clip must start with a keyframe")

    def unit(self, index: int) -> bytes:
        offset, size, _ = self.units[index % len(self.units)]
        return self.data[offset : offset + size]

    def keyframe_at_or_before(self, index: int) -> int:
        """The absolute index of the latest keyframe at or before absolute frame ``index``."""
        position = index % len(self.units)
        while not self.units[position][2]:
            position -= 1
        return index - (index % len(self.units)) + position


def _pusher(gst: Any, appsrc: Any, clip: _Clip, epoch: float, stop: threading.Event) -> None:
    """Feed access units at the clip's frame rate; the clip position follows the wall clock from ``epoch``."""
    now_index = int((time.time() - epoch) / clip.frame_s)
    index = clip.keyframe_at_or_before(now_index)
    next_due = time.monotonic()
    duration = int(clip.frame_s * gst.SECOND)
    while not stop.is_set():
        data = clip.unit(index)
        buffer = gst.Buffer.new_wrapped(data)
        buffer.duration = duration
        if appsrc.emit("push-buffer", buffer) != gst.FlowReturn.OK:
            return  # the media was shut down (flushing) or failed
        index += 1
        next_due += clip.frame_s
        delay = next_due - time.monotonic()
        if delay > 0:
            stop.wait(delay)
        elif delay < -1.0:  # we fell far behind (suspended?): jump to now instead of bursting
            next_due = time.monotonic()


def serve(port: int, streams: dict[str, Path], epoch: float) -> None:
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtspServer

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(port))
    mounts = server.get_mount_points()
    for name, path in streams.items():
        clip = _Clip(path)
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(
            "( appsrc name=src is-live=true do-timestamp=true format=time "
            "caps=video/x-h264,stream-format=byte-stream,alignment=au "
            "! h264parse ! rtph264pay name=pay0 pt=96 config-interval=-1 )"
        )
        factory.set_shared(True)

        def configure(_factory: Any, media: Any, clip: _Clip = clip) -> None:
            appsrc = media.get_element().get_by_name_recurse_up("src")
            stop = threading.Event()
            media.connect("unprepared", lambda _m: stop.set())
            threading.Thread(target=_pusher, args=(Gst, appsrc, clip, epoch, stop), daemon=True).start()

        factory.connect("media-configure", configure)
        mounts.add_factory(f"/{name}", factory)
    if server.attach(None) == 0:
        raise SystemExit(f"cannot listen on 127.0.0.1:{port}")
    print(f"{READY} {port}", flush=True)
    loop = GLib.MainLoop()
    signal.signal(signal.SIGTERM, lambda *_: loop.quit())
    loop.run()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--epoch", type=float, default=time.time(), help="Wall-clock time of clip frame 0.")
    parser.add_argument("--stream", action="append", required=True, help="NAME=CLIP (from encode_clip)")
    args = parser.parse_args(argv)
    streams = {}
    for item in args.stream:
        name, _, clip = item.partition("=")
        streams[name] = Path(clip)
    serve(args.port, streams, args.epoch)


if __name__ == "__main__":
    main(sys.argv[1:])
