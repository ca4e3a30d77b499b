"""Command-line entry points of the detector area: ``detect`` and ``models ...``."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from detector.annotate import draw_detections
from detector.detector import Detector
from detector.errors import DetectorError
from detector.loader import load_model
from detector.media import MediaError, VideoWriter, is_image, iter_video, read_image, video_fps
from detector.yaml_lines import YamlSyntaxError

models_app = typer.Typer(no_args_is_help=True)

USER_ERRORS: tuple[type[Exception], ...] = (DetectorError, MediaError, YamlSyntaxError, OSError, ValueError)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn expected failures (bad files, bad input) into one ``error:`` line and exit code 2."""
    try:
        yield
    except USER_ERRORS as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


ModelOption = Annotated[Path, typer.Option("--model", "-m", help="Model card (.yaml) or ONNX file.")]


def detect_command(
    source: Annotated[Path, typer.Argument(help="An image, a video, or a folder of them.")],
    model: ModelOption,
    out: Annotated[Path, typer.Option(help="Folder for annotated output and JSON.")] = Path("runs/detect"),
    provider: Annotated[str, typer.Option(help="cpu, cuda, tensorrt or openvino.")] = "cpu",
    conf: Annotated[float | None, typer.Option(help="Confidence threshold (default: the card's).")] = None,
    iou: Annotated[float | None, typer.Option(help="NMS IoU threshold (default: the card's).")] = None,
    max_det: Annotated[int | None, typer.Option(help="Top-k boxes per frame (default: the card's).")] = None,
    every: Annotated[int, typer.Option(min=1, help="Analyse every N-th video frame.")] = 1,
    max_frames: Annotated[
        int | None, typer.Option(min=1, help="Stop a video after this many analysed frames.")
    ] = None,
    save_media: Annotated[
        bool, typer.Option("--save-media/--json-only", help="Write annotated images/videos.")
    ] = True,
) -> None:
    """Run the detector on SOURCE; write annotated images/videos and one JSON file per source."""
    with user_errors():
        if not source.exists():
            raise MediaError(f"{source}: no such file or folder")
        detector = Detector(model, provider=provider, confidence=conf, iou=iou, max_detections=max_det)
        out.mkdir(parents=True, exist_ok=True)
        files = sorted(p for p in source.iterdir() if p.is_file()) if source.is_dir() else [source]
        for path in files:
            run = _detect_image if is_image(path) else _detect_video
            summary = run(detector, path, out, every=every, max_frames=max_frames, save_media=save_media)
            typer.echo(json.dumps(summary, ensure_ascii=False))


def _write_json(out: Path, path: Path, detector: Detector, frames: list[dict[str, Any]]) -> Path:
    target = out / f"{path.stem}.json"
    document = {
        "source": str(path),
        "model": {
            "name": detector.card.name,
            "version": detector.card.version,
            "layout": detector.card.layout.value,
        },
        "thresholds": {
            "confidence": detector.confidence,
            "iou": detector.iou,
            "max_detections": detector.max_detections,
        },
        "frames": frames,
    }
    target.write_text(json.dumps(document, ensure_ascii=False, indent=1), encoding="utf-8")
    return target


def _summary(path: Path, json_path: Path, media: Path | None, frames: list[dict[str, Any]]) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for frame in frames:
        for det in frame["detections"]:
            counts[det["class_name"]] = counts.get(det["class_name"], 0) + 1
    return {
        "source": str(path),
        "frames": len(frames),
        "json": str(json_path),
        "media": str(media) if media else None,
        "detections_by_class": counts,
    }


def _detect_image(detector: Detector, path: Path, out: Path, *, save_media: bool, **_: Any) -> dict[str, Any]:
    image = read_image(path)
    detections = detector(image)
    frames = [{"index": 0, "time_s": 0.0, "detections": detections.to_records(detector.class_names)}]
    media = None
    if save_media:
        media = out / f"{path.stem}.jpg"
        import cv2

        cv2.imwrite(str(media), draw_detections(image, detections, detector.class_names))
    return _summary(path, _write_json(out, path, detector, frames), media, frames)


def _detect_video(
    detector: Detector, path: Path, out: Path, *, every: int, max_frames: int | None, save_media: bool
) -> dict[str, Any]:
    frames: list[dict[str, Any]] = []
    writer: VideoWriter | None = None
    media = out / f"{path.stem}.mp4" if save_media else None
    try:
        for frame in iter_video(path, every=every, max_frames=max_frames):
            detections = detector(frame.bgr)
            frames.append(
                {
                    "index": frame.index,
                    "time_s": round(frame.time_s, 3),
                    "detections": detections.to_records(detector.class_names),
                }
            )
            if media is not None:
                if writer is None:
                    height, width = frame.bgr.shape[:2]
                    writer = VideoWriter(media, fps=video_fps(path) / every, width=width, height=height)
                writer.write(draw_detections(frame.bgr, detections, detector.class_names))
    finally:
        if writer is not None:
            writer.close()
    if not frames:
        raise MediaError(f"{path}: the video has no decodable frames")
    return _summary(path, _write_json(out, path, detector, frames), media, frames)


@models_app.command("inspect")
def inspect_command(
    model: Annotated[Path, typer.Argument(help="Model card (.yaml) or ONNX file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
) -> None:
    """Print a model's layout, input and output tensors, classes and metadata."""
    with user_errors():
        loaded = load_model(model)
        card, info = loaded.card, loaded.info
        report: dict[str, Any] = {
            "file": str(info.path),
            "card": str(loaded.card_path) if loaded.card_path else None,
            "name": card.name,
            "version": card.version,
            "layout": card.layout.value,
            "inputs": [{"name": t.name, "shape": list(t.shape), "type": t.dtype} for t in info.inputs],
            "outputs": [{"name": t.name, "shape": list(t.shape), "type": t.dtype} for t in info.outputs],
            "preprocessing": card.input.model_dump(mode="json"),
            "thresholds": card.thresholds.model_dump(),
            "classes": card.classes,
            "licence": card.licence,
            "metadata": info.metadata,
            "providers": list(loaded.session.get_providers()),
        }
        if as_json:
            typer.echo(json.dumps(report, ensure_ascii=False, indent=2))
            return
        _print_report(report, typer.echo)


def _print_report(report: dict[str, Any], echo: Callable[[str], Any]) -> None:
    for key in ("file", "card", "name", "version", "layout", "licence"):
        echo(f"{key:>13}: {report[key]}")
    for kind in ("inputs", "outputs"):
        for tensor in report[kind]:
            echo(f"{kind[:-1]:>13}: {tensor['name']} {tensor['shape']} {tensor['type']}")
    echo(f"{'preprocessing':>13}: " + ", ".join(f"{k}={v}" for k, v in report["preprocessing"].items()))
    echo(f"{'thresholds':>13}: " + ", ".join(f"{k}={v}" for k, v in report["thresholds"].items()))
    echo(f"{'classes':>13}: {len(report['classes'])}: " + ", ".join(report["classes"]))
    for key, value in report["metadata"].items():
        shown = value if len(value) <= 100 else value[:97] + "..."
        echo(f"{'metadata':>13}: {key} = {shown}")
    echo(f"{'providers':>13}: {', '.join(report['providers'])}")


# Commands contributed by other modules of this package register here (one line each):
# streetwatch models export   -> detector/export.py: export_command
# streetwatch models quantize -> detector/quantize.py: quantize_command
# streetwatch models publish  -> detector/publish.py: publish_command
# streetwatch models reshape  -> detector/export.py: reshape_command
from detector.export import export_command, reshape_command  # noqa: E402

models_app.command("export")(export_command)
models_app.command("reshape")(reshape_command)
from detector.quantize import quantize_command  # noqa: E402

models_app.command("quantize")(quantize_command)
from detector.publish import publish_command  # noqa: E402

models_app.command("publish")(publish_command)
