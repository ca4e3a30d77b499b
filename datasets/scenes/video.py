"""Render the demo clip to H.264 (PyAV), with its ground-truth timeline (JSON), daemon config (YAML) and the
reference file that registers its camera and zones in the case store (YAML, for `api import-config`)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import av
import cv2
import numpy as np
import yaml

from datasets.scenes import demo
from datasets.scenes.actors import Actor
from datasets.scenes.compose import Label, composite
from datasets.scenes.street import render_street
from datasets.scenes.textures import Image

START_TIME = dt.datetime(2026, 5, 4, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
CAMERA_ID = "demo-street"
DEMO_DEVICE = "demo-box"  # the edge box scripts/demo.sh registers
NOISE_FRAMES = 7
CONFIRM_MARGIN_S = 8.0
CLASS_TO_VIOLATION = {
    "car": "illegal_parking",
    "truck": "illegal_parking",
    "bus": "illegal_parking",
    "motorcycle": "illegal_parking",
    "stall": "street_stall",
    "garbage": "exposed_garbage",
}


@dataclass(frozen=True)
class DemoFiles:
    video: Path
    timeline: Path
    config: Path
    store_config: Path


class DemoScene:
    """The demo's street and actors for one seed; :meth:`frame` draws any moment of it."""

    def __init__(
        self, seed: int, duration_s: float = demo.DURATION_S, *, look: int = 0, piles: int = 1
    ) -> None:
        """``look`` other than 0: the scripted actors look different; ``piles``: of rubbish, with another
        look (demo.scripted_actors)."""
        rng = np.random.default_rng(seed)
        self.seed, self.duration_s = seed, duration_s
        self.background = render_street(rng, demo.STREET, demo.CAMERA)
        self.actors: list[Actor] = demo.scripted_actors(look, piles) + demo.traffic(rng)
        # Sensor noise: a bank of seeded noise frames, cycled (cheap, and the same on every machine).
        noise = rng.normal(0, 2.0, (NOISE_FRAMES, demo.HEIGHT, demo.WIDTH, 3))
        self.noise = np.round(noise).astype(np.int16)

    def frame(self, t: float) -> tuple[Image, list[Label]]:
        things = [thing for thing in (a.at(t) for a in self.actors) if thing is not None]
        image, labels = composite(self.background, demo.CAMERA, things, night=False)
        noise = self.noise[round(t * demo.FPS) % NOISE_FRAMES]
        noisy: Image = cv2.add(image, noise, dtype=cv2.CV_8U).astype(np.uint8, copy=False)
        return noisy, labels

    def frames(self, fps: int) -> Iterator[tuple[float, Image]]:
        for index in range(round(self.duration_s * fps)):
            t = index / fps
            yield t, self.frame(t)[0]


def write_video(scene: DemoScene, path: Path, fps: int = demo.FPS) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = demo.WIDTH, demo.HEIGHT
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "23", "preset": "veryfast", "g": str(2 * fps)}
        for _, image in scene.frames(fps):
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def timeline(scene: DemoScene, video: Path) -> dict[str, object]:
    return {
        "video": video.name,
        "camera": CAMERA_ID,
        "seed": scene.seed,
        "fps": demo.FPS,
        "duration_s": scene.duration_s,
        "start_time": START_TIME.isoformat(),
        "dwell_s": demo.DWELL_S,
        # A shortened clip keeps the incidents it can confirm (dwell + a margin before the end), cut short.
        "incidents": [
            {**asdict(incident), "end_s": min(incident.end_s, scene.duration_s), "place": incident.place}
            for incident in demo.incidents()
            if incident.start_s + demo.DWELL_S + CONFIRM_MARGIN_S <= scene.duration_s
        ],
    }


def daemon_config(
    *, video: Path, model: Path, store_url: str, device_key_file: Path, work_dir: Path
) -> dict[str, object]:
    """A daemon configuration for the clip: the file read once, unpaced, stream time from START_TIME."""
    return {
        "detector": {"model": str(model), "provider": "cpu", "classes": CLASS_TO_VIOLATION, "batch_size": 4},
        "store": {
            "url": store_url,
            "device_key_file": str(device_key_file),
            "outbox": str(work_dir / "outbox.sqlite"),
            "retry_base_s": 0.5,
            "retry_max_s": 5.0,
        },
        "cameras": [
            {
                "id": CAMERA_ID,
                "url": str(video),
                "sample": {"mode": "fps", "fps": 2},
                "start_time": START_TIME.isoformat(),
                "zones": [_zone_config(zone) for zone in demo.ZONES],
            }
        ],
        "evidence": {"dir": str(work_dir / "evidence"), "blur_persons": True},
        "verification": {"enabled": False},
        "metrics": {"port": 0},
    }


def _zone_config(zone: demo.Zone) -> dict[str, object]:
    config: dict[str, object] = {
        "id": zone.id,
        "place": zone.place,
        "polygon": [list(p) for p in zone.polygon(demo.CAMERA)],
    }
    if zone.rules:
        config["rules"] = {rule: {"dwell_s": demo.DWELL_S} for rule in zone.rules}
    if zone.static_change:
        config["static_change"] = {
            "dwell_s": demo.DWELL_S,
            "report_as": "unknown_object",
            "min_area": demo.STATIC_MIN_AREA,
        }
    return config


def store_config(device: str = DEMO_DEVICE) -> dict[str, object]:
    """A reference file (``streetwatch api import-config``) registering the demo camera on ``device`` with
    the daemon's zones, written the store's way: the store then sends the box the zones its YAML has,
    and the zone editor shows them on the camera's real frame. Its places are configs/reference/
    demo-city.yaml's (import that first)."""
    zones = []
    for zone in demo.ZONES:
        config = _zone_config(zone)
        zones.append({"code": config.pop("id"), **config})
    return {
        "version": 1,
        "cameras": [{"code": CAMERA_ID, "name": "示范商业街 (demo)", "device": device, "zones": zones}],
    }


def render_demo(
    out: Path,
    seed: int,
    *,
    model: Path,
    store_url: str = "http://127.0.0.1:8765",
    device_key_file: Path | None = None,
    duration_s: float = demo.DURATION_S,
    device: str = DEMO_DEVICE,
    look: int = 0,
    piles: int = 1,
) -> DemoFiles:
    """Write ``demo.mp4``, ``timeline.json``, ``daemon.yaml`` and ``store.yaml`` into ``out``; ``look`` other
    than 0 draws the scripted actors with other looks, with ``piles`` of rubbish (not the demo: see
    demo.scripted_actors)."""
    out.mkdir(parents=True, exist_ok=True)
    scene = DemoScene(seed, duration_s, look=look, piles=piles)
    files = DemoFiles(out / "demo.mp4", out / "timeline.json", out / "daemon.yaml", out / "store.yaml")
    write_video(scene, files.video)
    files.timeline.write_text(json.dumps(timeline(scene, files.video), indent=2) + "\n", encoding="utf-8")
    config = daemon_config(
        video=files.video.resolve(),
        model=model.resolve(),
        store_url=store_url,
        device_key_file=(device_key_file or out / "device.key").resolve(),
        work_dir=(out / "edge").resolve(),
    )
    header = f"# The demo clip's daemon configuration (streetwatch scenes render-demo, seed {seed}).\n"
    files.config.write_text(header + yaml.safe_dump(config, sort_keys=False, width=110), encoding="utf-8")
    write_store_config(files.store_config, seed, device)
    return files


def write_store_config(path: Path, seed: int, device: str = DEMO_DEVICE) -> None:
    """Write :func:`store_config` as ``store.yaml`` (what scripts/demo.sh imports after render-demo)."""
    path.write_text(
        f"# The demo camera and its zones for the case store (render-demo, seed {seed}).\n"
        + yaml.safe_dump(store_config(device), sort_keys=False, width=110, allow_unicode=True),
        encoding="utf-8",
    )
