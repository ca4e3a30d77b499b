"""``streetwatch scenes``: generate labelled street scenes, render the demo clip, score a demo run."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated

import typer

scenes_app = typer.Typer(no_args_is_help=True, help="Generated street scenes and the demo clip.")
REPO = Path(__file__).resolve().parents[2]
DEMO_MODEL = REPO / "models" / "streetwatch-demo-n.yaml"


@scenes_app.command("generate")
def generate_command(
    out: Annotated[Path, typer.Argument(help="Dataset folder: images/, labels/, dataset.yaml.")],
    count: Annotated[int, typer.Option(min=1, help="Scenes to generate (80/10/10 train/val/test).")] = 1000,
    seed: Annotated[int, typer.Option(help="The same seed and count always give the same dataset.")] = 0,
    workers: Annotated[int, typer.Option(min=1, help="Processes drawing scenes.")] = 1,
) -> None:
    """Procedural street scenes with YOLO labels (datasets.scenes.CLASSES, in that order)."""
    from datasets.scenes.generate import write_dataset

    typer.echo(f"wrote {write_dataset(out, count, seed, workers=workers)} ({count} scenes)")


@scenes_app.command("render-demo")
def render_demo_command(
    out: Annotated[Path, typer.Argument(help="Folder for demo.mp4, timeline.json and daemon.yaml.")],
    seed: Annotated[int, typer.Option(help="Scene seed (street textures, traffic, passers-by).")] = 7,
    duration: Annotated[float, typer.Option(min=10, max=600, help="Clip length in seconds.")] = 240.0,
    model: Annotated[Path, typer.Option(help="Model the daemon config points at.")] = DEMO_MODEL,
    store_url: Annotated[
        str, typer.Option(help="Case store the daemon config points at.")
    ] = "http://127.0.0.1:8765",
    device_key_file: Annotated[Path | None, typer.Option(help="Default: OUT/device.key.")] = None,
    device: Annotated[
        str, typer.Option(help="Edge box the camera is registered to in store.yaml.")
    ] = "demo-box",
) -> None:
    """The demo clip with scripted incidents, its ground-truth timeline, a daemon config for it, and
    store.yaml registering its camera and zones in the case store (`streetwatch api import-config`)."""
    from datasets.scenes.video import render_demo

    files = render_demo(
        out,
        seed,
        model=model,
        store_url=store_url,
        device_key_file=device_key_file,
        duration_s=duration,
        device=device,
    )
    typer.echo(f"wrote {files.video}, {files.timeline}, {files.config}, {files.store_config}")


@scenes_app.command("score")
def score_command(
    timeline: Annotated[Path, typer.Argument(help="timeline.json written by render-demo.")],
    store_url: Annotated[str, typer.Option(help="Case store base URL.")] = "http://127.0.0.1:8765",
    username: Annotated[
        str, typer.Option(help="Operator account; password from $STREETWATCH_PASSWORD.")
    ] = "operator",
    tolerance: Annotated[
        float, typer.Option(min=0, help="Seconds a case may fall outside an incident.")
    ] = 10.0,
    min_score: Annotated[
        float, typer.Option(min=0, max=1, help="Exit 1 below this precision or recall.")
    ] = 0.0,
) -> None:
    """Cases in the store against the clip's incidents: event-level precision and recall."""
    from datasets.scenes.score import TimelineError, fetch_cases, load_timeline, report, score

    try:
        loaded = load_timeline(timeline)
    except TimelineError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise here
    password = os.environ.get("STREETWATCH_PASSWORD", "")
    result = score(loaded.incidents, fetch_cases(store_url, username, password, loaded.start_time), tolerance)
    typer.echo(report(result))
    if min(result.precision, result.recall) < min_score:
        raise typer.Exit(1)


@scenes_app.command("false-alarms")
def false_alarms_command(
    model: Annotated[Path, typer.Option(help="Model card or ONNX file.")] = DEMO_MODEL,
    vtest: Annotated[Path, typer.Option(help="Debian's vtest.avi (opencv-doc).")] = Path(
        "/usr/share/doc/opencv-doc/examples/data/vtest.avi"
    ),
    lot: Annotated[
        Path, typer.Option(help="car-detection.mp4 (Intel IoT DevKit sample videos).")
    ] = REPO.parent / "shared" / "data" / "videos" / "car-detection.mp4",
) -> None:
    """Incidents the model raises on real footage through the daemon's rules, per camera and violation."""
    from datasets.scenes.false_alarms import count_incidents

    videos = {"vtest": vtest, "lot": lot}
    for name, path in videos.items():
        if not path.is_file():
            typer.echo(f"error: {path}: video not found (--{name})", err=True)
            raise typer.Exit(2)
    counts = count_incidents(model, videos)
    for camera in videos:
        parts = [
            f"{kind} {counts[(camera, kind)]}"
            for kind in ("illegal_parking", "street_stall", "exposed_garbage")
        ]
        typer.echo(f"{camera}: " + ", ".join(parts))


VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
GARBAGE_PHOTOS = REPO.parent / "shared" / "data" / "photos" / "garbage-amsterdam"
COCO_MODEL = REPO.parent / "shared" / "data" / "models" / "yolov8n_int8_coco.onnx"


@scenes_app.command("composite-garbage")
def composite_garbage_command(
    out: Annotated[Path, typer.Argument(help="Folder for clip.mp4, timeline.json and daemon.yaml.")],
    base: Annotated[Path, typer.Option(help="Real footage from a fixed camera.")] = VTEST,
    photo: Annotated[Path, typer.Option(help="Photo with a pile of garbage in its middle.")] = (
        GARBAGE_PHOTOS / "mdc_photo_mdc_0e131d_1519086692088_1519086707176.jpg"
    ),
    scenario: Annotated[
        str, typer.Option(help="stays (appears and stays), brief (gone before the dwell) or never.")
    ] = "stays",
    seed: Annotated[int, typer.Option(help="Camera shake path.")] = 0,
    fps: Annotated[float, typer.Option(min=1, max=30)] = 5.0,
    width: Annotated[int, typer.Option(min=160, max=1920, help="Output width in px.")] = 640,
    duration: Annotated[float | None, typer.Option(min=5, help="Seconds (default: the whole base).")] = None,
    appear: Annotated[float, typer.Option(min=0, help="Second the pile appears.")] = 20.0,
    brief: Annotated[float, typer.Option(min=1, help="brief: seconds the pile stays.")] = 20.0,
    dwell: Annotated[float, typer.Option(min=1, help="The zone's static_change dwell_s.")] = 30.0,
    ramp: Annotated[bool | None, typer.Option(help="Light ramp 1.0-0.55-1.2 (default: never only).")] = None,
    shake: Annotated[bool | None, typer.Option(help="+-3 px camera shake (default: never only).")] = None,
    model: Annotated[Path, typer.Option(help="Model the daemon config points at.")] = COCO_MODEL,
    store_url: Annotated[
        str, typer.Option(help="Case store the daemon config points at.")
    ] = "http://127.0.0.1:8765",
) -> None:
    """A real garbage photo composited into real footage; its timeline.json and static-change daemon.yaml."""
    import yaml

    from datasets.cli import user_errors
    from datasets.composite import CAMERA_ID, CompositeSpec, write_clip
    from datasets.composite_score import daemon_config, load_composite_timeline

    with user_errors():
        spec = CompositeSpec(
            base,
            photo,
            scenario,
            seed,
            fps,
            width,
            duration,
            appear,
            brief,
            dwell_s=dwell,
            ramp=ramp,
            shake=shake,
        )
        files = write_clip(spec, out)
        config = daemon_config(
            load_composite_timeline(files.timeline),
            video=files.video.resolve(),
            model=model.resolve(),
            camera_id=CAMERA_ID,
            place="310101001001099",
            store_url=store_url,
            device_key_file=(out / "device.key").resolve(),
            work_dir=(out / "edge").resolve(),
        )
        daemon_yaml = out / "daemon.yaml"
        header = f"# Static change on a composite clip (streetwatch scenes composite-garbage, {scenario}).\n"
        daemon_yaml.write_text(header + yaml.safe_dump(config, sort_keys=False, width=110), encoding="utf-8")
        typer.echo(f"wrote {files.video}, {files.timeline}, {daemon_yaml}")


@scenes_app.command("score-composite")
def score_composite_command(
    timeline: Annotated[Path, typer.Argument(help="timeline.json written by composite-garbage.")],
    store_url: Annotated[str, typer.Option(help="Case store base URL.")] = "http://127.0.0.1:8765",
    username: Annotated[
        str, typer.Option(help="Operator account; password from $STREETWATCH_PASSWORD.")
    ] = "operator",
    tolerance: Annotated[float, typer.Option(min=0, help="Seconds a case may fall outside a pile.")] = 10.0,
) -> None:
    """unknown_object cases in the store against the clip's piles: one per pile that stays, none otherwise.
    Exits 1 unless precision and recall are both 1."""
    from datasets.composite_score import load_composite_timeline, report, score_piles
    from datasets.scenes.score import TimelineError, fetch_cases

    try:
        loaded = load_composite_timeline(timeline)
    except TimelineError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    logging.getLogger("httpx").setLevel(logging.WARNING)
    password = os.environ.get("STREETWATCH_PASSWORD", "")
    result = score_piles(
        loaded, fetch_cases(store_url, username, password, loaded.start_time), tolerance_s=tolerance
    )
    typer.echo(report(result))
    if min(result.precision, result.recall) < 1.0:
        raise typer.Exit(1)
