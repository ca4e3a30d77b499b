"""The daemon's lean options on real clips, as fast as files can be read: zone-ROI inference and per-zone
change gating against the same daemon without them, in one run.

Each scene is a real clip with the zones the end-to-end tests use (vtest.avi: the van's service road and
the walkway, dwell 30 s; car-detection.mp4: the whole lot, dwell 10 s) or the generated street of
``streetwatch scenes render-demo`` (its own zones and model), sampled at 2 fps, scene-change skip off (so
that only the option under test skips anything). Per variant: wall seconds, process CPU seconds, frames
through the model, frames carried forward by gating (the share of inferences skipped) and confirmed
incidents (they must not change). Variants run interleaved ``--repeats`` times.

    .venv/bin/python -m benchmarks.bench_lean --repeats 1 [--street /tmp/demo]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
SHARED = Path(os.environ.get("STREETWATCH_SHARED_DATA", REPO.parent / "shared" / "data"))
YOLOX_CARD = REPO / "models" / "yolox-nano-coco.yaml"
VAN_ZONE = [[0.82, 0.05], [1.0, 0.05], [1.0, 0.2], [0.82, 0.2]]
WALKWAY_ZONE = [[0.0, 0.28], [0.75, 0.28], [0.75, 0.6], [0.0, 0.6]]
LOT_ZONE = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]
VARIANTS: dict[str, dict[str, Any]] = {
    "plain": {},
    "zone_roi": {"zone_roi": True},
    # the crop at the stream's pixels, not enlarged: what a model of dynamic input size runs on (YOLOX is
    # fixed-size, so here it costs the same and only the accuracy differs)
    "zone_roi native": {"zone_roi": True, "zone_roi_scale": "native"},
    "zone_gating": {"zone_gating": True},
    "both": {"zone_roi": True, "zone_gating": True},
}
COCO_VEHICLES = {"car": "illegal_parking", "truck": "illegal_parking", "bus": "illegal_parking"}


def zone(zone_id: str, polygon: list[list[float]], dwell_s: float) -> dict[str, Any]:
    return {
        "id": zone_id,
        "place": zone_id,
        "polygon": polygon,
        "rules": {"illegal_parking": {"dwell_s": dwell_s}},
    }


def scenes(street: Path | None) -> dict[str, dict[str, Any]]:
    found = {
        "vtest": {
            "model": YOLOX_CARD,
            "classes": COCO_VEHICLES,
            "camera": {
                "url": str(VTEST),
                "zones": [zone("van", VAN_ZONE, 30), zone("walkway", WALKWAY_ZONE, 30)],
            },
        },
        "vtest van zone": {  # the service road alone: a still zone beside a busy walkway
            "model": YOLOX_CARD,
            "classes": COCO_VEHICLES,
            "camera": {"url": str(VTEST), "zones": [zone("van", VAN_ZONE, 30)]},
        },
        "car-detection": {
            "model": YOLOX_CARD,
            "classes": COCO_VEHICLES,
            "camera": {
                "url": str(SHARED / "videos" / "car-detection.mp4"),
                "zones": [zone("lot", LOT_ZONE, 10)],
            },
        },
    }
    if street is not None:
        found["generated street"] = street_scene(street)
    return found


def street_scene(folder: Path) -> dict[str, Any]:
    """The render-demo clip with the cameras, zones, model and classes of its own daemon.yaml."""
    from detector.yaml_lines import load_located_yaml

    document = load_located_yaml(folder / "daemon.yaml").data
    camera = dict(document["cameras"][0])
    camera["url"] = (
        str((folder / camera["url"]).resolve()) if not Path(camera["url"]).is_absolute() else camera["url"]
    )
    model = Path(document["detector"]["model"])
    model = model if model.is_absolute() else (REPO / model if (REPO / model).exists() else folder / model)
    keep = {"url", "zones", "timezone", "start_time"}
    return {
        "model": model,
        "classes": document["detector"]["classes"],
        "camera": {k: v for k, v in camera.items() if k in keep},
    }


def run_once(scene: dict[str, Any], options: dict[str, Any], work: Path) -> dict[str, Any]:
    from pipeline.config import DaemonConfig
    from pipeline.daemon import Daemon

    work.mkdir(parents=True, exist_ok=True)
    key = work / "device.key"
    key.write_text("swd_benchmark\n", encoding="utf-8")
    key.chmod(0o600)
    config = DaemonConfig.model_validate(
        {
            "detector": {"model": str(scene["model"]), "classes": scene["classes"], "batch_size": 4},
            "store": {
                "url": "http://127.0.0.1:9",
                "device_key_file": str(key),
                "outbox": str(work / "outbox.sqlite"),
                "retry_base_s": 60,
                "health_report_s": 0,
                "zone_sync_s": 0,
                "snapshot_s": 0,
            },
            "cameras": [
                {
                    **scene["camera"],
                    "id": "cam",
                    "sample": {"mode": "fps", "fps": 2},
                    "skip_unchanged": False,
                    **options,
                }
            ],
            "evidence": {"dir": str(work / "evidence")},
            "verification": {"enabled": False},
            "metrics": {"port": 0},
            "scheduler": {"drain_timeout_s": 0},
        }
    )
    daemon = Daemon(config)
    cpu, wall = time.process_time(), time.perf_counter()
    code = daemon.run()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    value = daemon.metrics.value
    analysed = value("streetwatch_frames_analysed_total", {"camera": "cam"}) or 0.0
    carried = value("streetwatch_frames_skipped_total", {"camera": "cam", "reason": "carried"}) or 0.0
    return {
        "exit": code,
        "wall_s": wall,
        "cpu_s": cpu,
        "inferences": analysed,
        "carried": carried,
        "skipped_share": carried / (analysed + carried) if analysed + carried else 0.0,
        "confirmed": value("streetwatch_incident_events_total", {"kind": "confirmed"}) or 0.0,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=1, help="Interleaved rounds of every variant.")
    p.add_argument("--street", type=Path, default=None, help="A `streetwatch scenes render-demo` folder.")
    p.add_argument("--scenes", default=None, help="Comma-separated subset of the scene names.")
    p.add_argument("--out", type=Path, default=None, help="Write the JSON here.")
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error("--repeats must be at least 1")
    if args.street is not None and not (args.street / "daemon.yaml").is_file():
        p.error(f"--street {args.street}: no daemon.yaml there (make it with streetwatch scenes render-demo)")
    chosen = scenes(args.street)
    if args.scenes:
        wanted = [name.strip() for name in args.scenes.split(",")]
        unknown = [name for name in wanted if name not in chosen]
        if unknown:
            p.error(f"--scenes: unknown {', '.join(unknown)} (known: {', '.join(chosen)})")
        chosen = {name: chosen[name] for name in wanted}
    load = os.getloadavg()
    results: dict[str, dict[str, list[dict[str, Any]]]] = {s: {v: [] for v in VARIANTS} for s in chosen}
    with tempfile.TemporaryDirectory(prefix="bench-lean-") as tmp:
        for round_ in range(args.repeats):
            for scene_name, scene in chosen.items():
                for variant, options in VARIANTS.items():
                    work = Path(tmp) / f"{scene_name}-{variant}-{round_}".replace(" ", "_")
                    results[scene_name][variant].append(run_once(scene, options, work))
    print(f"load average at start {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {args.repeats} round(s)")
    print("scene | variant | wall s | CPU s | CPU vs plain | inferences | skipped by gating | confirmed")
    for scene_name, variants in results.items():
        base = sum(r["cpu_s"] for r in variants["plain"]) / len(variants["plain"])
        for variant, runs in variants.items():
            cpu = sum(r["cpu_s"] for r in runs) / len(runs)
            wall = sum(r["wall_s"] for r in runs) / len(runs)
            last = runs[-1]
            print(
                f"{scene_name} | {variant} | {wall:.1f} | {cpu:.1f} | {cpu / base:.2f}x | "
                f"{last['inferences']:.0f} | {last['skipped_share']:.0%} | {last['confirmed']:.0f}"
            )
    document = {"results": results, "load_average": load, "load_average_end": os.getloadavg()}
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(document, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
