"""Evidence clips end to end on real footage: the daemon (real sources, detector, rules, outbox, pusher)
with ``cameras[].clips`` on uploads, with the case, an MP4 of the camera's own video around first sight
and confirmation to a REAL case store; a camera with clips off (the default) uploads none.

The MP4 is checked the way a reviewer would: it decodes; it covers [first seen - pre_s, confirmed +
post_s] (from the keyframe before); and it was not re-encoded: its packets are byte for byte the source
file's (files mode), its decoded frames pixel for pixel the camera's (RTSP, where the transport repackages
the NAL units).

vtest.avi is MS-MPEG4, which MP4 cannot hold: the tests encode it once to H.264 (as a camera would send
it) and the daemon then remuxes that. Slow (real decoding and inference): marked ``e2e``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import threading
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import pytest

from pipeline.cli import check_config
from pipeline.daemon import Daemon
from tests.pipeline.live_store import LiveStore
from tests.pipeline.rtsp_server import RtspServer, encode_clip, server_available
from tests.pipeline.test_daemon_e2e import (
    CAR_ONLY_ZONE,
    CAR_PLACE,
    VAN_ONLY_ZONE,
    VAN_PLACE,
    aware,
    wait_for,
    write_config,
    zone,
)

pytestmark = pytest.mark.e2e

START = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)
PRE_S, POST_S = 3.0, 4.0
GOP_S = 1.0  # the encodings below put a keyframe every second


@pytest.fixture(scope="module")
def vtest_mp4(tmp_path_factory: pytest.TempPathFactory, vtest_path: Path) -> Path:
    """The first 30 s of vtest as H.264 in MP4 (10 fps, a keyframe a second, no B-frames)."""
    target = tmp_path_factory.mktemp("clips") / "vtest.mp4"
    with av.open(str(vtest_path)) as source, av.open(str(target), "w") as output:
        stream = source.streams.video[0]
        rate = Fraction(10)
        out = output.add_stream("libx264", rate=rate)
        out.width, out.height, out.pix_fmt = (
            stream.codec_context.width,
            stream.codec_context.height,
            "yuv420p",
        )
        out.options = {"preset": "veryfast", "g": "10", "keyint_min": "10", "bf": "0", "sc_threshold": "0"}
        for index, frame in enumerate(source.decode(stream)):
            if index >= 300:
                break
            frame = frame.reformat(format="yuv420p")
            frame.pts, frame.time_base = index, 1 / rate
            frame.pict_type = av.video.frame.PictureType.NONE
            output.mux(out.encode(frame))
        output.mux(out.encode(None))
    return target


def packets(path: Path) -> list[tuple[bytes, float, bool]]:
    """(bytes, seconds, keyframe) of every video packet, in file order."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.time_base is not None
        return [
            (bytes(p), float((p.pts or 0) * stream.time_base), bool(p.is_keyframe))
            for p in container.demux(stream)
            if p.size
        ]


def frame_hashes(path: Path) -> tuple[str, list[str]]:
    """The codec and the sha256 of every decoded frame's pixels."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        hashes = [
            hashlib.sha256(f.to_ndarray(format="yuv420p").tobytes()).hexdigest()
            for f in container.decode(stream)
        ]
        return stream.codec_context.name, hashes


def clip_path(store: LiveStore, case_id: int) -> Path | None:
    shas = [sha for kind, sha in store.evidence(case_id) if kind == "clip"]
    assert len(shas) <= 1, "one clip per case, exactly once"
    return store.settings.evidence_dir / shas[0][:2] / f"{shas[0]}.mp4" if shas else None


def camera(camera_id: str, url: str, zone_: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"id": camera_id, "url": url, "sample": {"mode": "fps", "fps": 2}, "zones": [zone_], **extra}


def test_files_mode_clip_is_the_cameras_own_video_around_first_sight_and_confirmation(
    tmp_path: Path, store: LiveStore, yolox_card: Path, vtest_mp4: Path
) -> None:
    clips = {"enabled": True, "pre_s": PRE_S, "post_s": POST_S}
    cameras = [
        camera(
            "van-cam",
            str(vtest_mp4),
            zone("van", VAN_PLACE, VAN_ONLY_ZONE, 8),
            start_time=START.isoformat(),
            clips=clips,
        ),
        camera(
            "car-cam", str(vtest_mp4), zone("car", CAR_PLACE, CAR_ONLY_ZONE, 8), start_time=START.isoformat()
        ),
    ]
    config = check_config(write_config(tmp_path, store, yolox_card, cameras))
    assert config.cameras[1].clips.enabled is False  # the default
    daemon = Daemon(config)
    assert daemon.run() == 0  # the files end, the outbox is drained

    cases = {store.case(i).camera_code: store.case(i) for i in range(1, store.case_count() + 1)}
    assert set(cases) == {"van-cam", "car-cam"}
    assert clip_path(store, cases["car-cam"].id) is None, "clips are off by default: no clip"
    van = cases["van-cam"]
    path = clip_path(store, van.id)
    assert path is not None and path.is_file()

    # Not re-encoded: the clip's packets are a run of the source's, byte for byte, from a keyframe.
    source, clip = packets(vtest_mp4), packets(path)
    first = [data for data, _, _ in source].index(clip[0][0])
    assert [data for data, _, _ in clip] == [data for data, _, _ in source[first : first + len(clip)]]
    assert clip[0][2], "the clip starts at a keyframe"
    codec, decoded = frame_hashes(path)
    assert codec == "h264" and len(decoded) == len(clip)  # every packet decodes to a frame
    # The window: from the keyframe at or before first seen - pre_s to confirmed + post_s.
    seen_s = (aware(van.first_seen_at) - START).total_seconds()
    confirmed_s = (aware(van.confirmed_at) - START).total_seconds()
    start_s, end_s = source[first][1], source[first + len(clip) - 1][1]
    wanted_start = max(seen_s - PRE_S, 0.0)
    assert wanted_start - GOP_S < start_s <= wanted_start + 1e-6, (start_s, seen_s)
    assert confirmed_s + POST_S - 0.2 <= end_s <= confirmed_s + POST_S + 1e-6, (end_s, confirmed_s)
    with av.open(str(path)) as container:  # faststart: the index (moov) before the media data
        assert container.duration is not None
        assert abs(container.duration / av.time_base - (end_s - start_s)) < 0.25
    head = path.read_bytes()[:4096]
    assert head.find(b"moov") != -1 and (head.find(b"mdat") == -1 or head.find(b"moov") < head.find(b"mdat"))


@pytest.fixture(scope="module")
def vtest_h264(tmp_path_factory: pytest.TempPathFactory, vtest_path: Path) -> Path:
    why = server_available()
    if why is not None:
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    return encode_clip(
        vtest_path, tmp_path_factory.mktemp("rtsp-clips") / "vtest.h264", gop=10, max_seconds=40
    )


def test_rtsp_clip_decodes_to_the_cameras_own_frames(
    tmp_path: Path, store: LiveStore, yolox_card: Path, vtest_h264: Path
) -> None:
    with RtspServer({"gate": vtest_h264}) as rtsp:
        cameras = [
            camera(
                "gate",
                rtsp.url("gate"),
                zone("van", VAN_PLACE, VAN_ONLY_ZONE, 6),
                sample={"mode": "keyframes"},
                clips={"enabled": True, "pre_s": PRE_S, "post_s": POST_S},
            )
        ]
        config = check_config(write_config(tmp_path, store, yolox_card, cameras))
        daemon = Daemon(config)
        code: list[int] = []
        runner = threading.Thread(target=lambda: code.append(daemon.run()), daemon=True)
        runner.start()
        try:
            wait_for(
                lambda: store.case_count() == 1 and clip_path(store, 1) is not None, 120, "the case's clip"
            )
        finally:
            daemon.stop()
            runner.join(60)
    assert code == [0]
    path = clip_path(store, 1)
    assert path is not None
    case = store.case(1)
    codec, decoded = frame_hashes(path)
    assert codec == "h264" and len(decoded) == len(packets(path))
    # Not re-encoded: the clip's frames are a run of the camera's own frames, pixel for pixel (the server
    # loops the 40 s clip; its frames are all distinct: people walk through).
    _, camera_frames = frame_hashes(vtest_h264)
    first = camera_frames.index(decoded[0])
    looped = camera_frames + camera_frames
    assert decoded == looped[first : first + len(decoded)]
    # About [first seen - pre_s, confirmed + post_s] from the keyframe before (stream time = wall clock).
    wanted = (aware(case.confirmed_at) - aware(case.first_seen_at)).total_seconds() + POST_S
    length = len(decoded) / 10.0
    assert wanted - 0.5 <= length <= wanted + PRE_S + GOP_S + 0.5, (length, wanted)
