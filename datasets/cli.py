"""Command-line entry points of the dataset tooling: ``dataset ...``, ``train`` and ``evaluate``.

Heavy or optional imports (SQLAlchemy and the case store, Ultralytics, ONNX Runtime) happen inside the
commands, so ``streetwatch --help`` works on an edge box without the store or train extras.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from datasets.augmentation import DEFAULT_HUE_SHIFT, MAX_HUE_SHIFT
from datasets.errors import DatasetError
from detector.errors import DetectorError
from detector.yaml_lines import YamlSyntaxError

dataset_app = typer.Typer(no_args_is_help=True)


@contextmanager
def user_errors() -> Iterator[None]:
    """Expected failures (bad files, bad input) become one ``error:`` line and exit code 2."""
    try:
        yield
    except (DatasetError, DetectorError, YamlSyntaxError, OSError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


@dataset_app.command("coco-to-yolo")
def coco_to_yolo_command(
    annotations: Annotated[Path, typer.Argument(help="COCO detection JSON.")],
    out: Annotated[Path, typer.Argument(help="YOLO dataset folder (dataset.yaml is created or extended).")],
    split: Annotated[str, typer.Option(help="Split to write: train, val or test.")] = "train",
    images: Annotated[
        Path | None, typer.Option(help="Folder the COCO file_names are relative to; images are linked in.")
    ] = None,
) -> None:
    """Convert COCO boxes to YOLO labels from the annotations' widths and heights (images optional)."""
    from datasets.coco import coco_to_yolo

    with user_errors():
        report = coco_to_yolo(annotations, out, split=_split(split), images_dir=images)
        typer.echo(json.dumps({"dataset": str(out / "dataset.yaml"), **report.to_json()}))


@dataset_app.command("yolo-to-coco")
def yolo_to_coco_command(
    dataset: Annotated[Path, typer.Argument(help="dataset.yaml")],
    out: Annotated[Path, typer.Argument(help="COCO JSON to write.")],
    split: Annotated[str, typer.Option(help="Split to convert.")] = "val",
) -> None:
    """Convert one split of a YOLO dataset to a COCO detection file."""
    from datasets.coco import yolo_to_coco

    with user_errors():
        report = yolo_to_coco(dataset, out, split=_split(split))
        typer.echo(json.dumps({"coco": str(out), **report.to_json()}))


@dataset_app.command("export-reviewed")
def export_reviewed_command(
    out: Annotated[Path, typer.Argument(help="New folder for the YOLO dataset.")],
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="Store data directory (default: $STREETWATCH_DATA_DIR or ./data)."),
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option("--database-url", help="SQLAlchemy URL (default: $STREETWATCH_DATABASE_URL)."),
    ] = None,
    mapping: Annotated[
        Path | None, typer.Option(help="YAML: classes and per-violation class mapping (default: built in).")
    ] = None,
    images: Annotated[
        str,
        typer.Option(
            help="frame (whole frames with nothing drawn on them, evidence kind 'frame': the scale the "
            "daemon's model sees) or crop (close-ups: a model trained on them looks for large objects)."
        ),
    ] = "frame",
    group_by: Annotated[str, typer.Option(help="Split unit: incident, camera or case.")] = "incident",
    split: Annotated[str, typer.Option("--split", help="train,val,test fractions.")] = "0.8,0.1,0.1",
    seed: Annotated[int, typer.Option(help="Changes which groups land in which split.")] = 0,
    strict: Annotated[
        bool, typer.Option(help="Fail on a case that cannot be exported instead of skipping.")
    ] = False,
    context_confidence: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="From this confidence another case's unconfirmed box of another class labels a false "
            "positive's picture (a lower one drops the picture).",
        ),
    ] = 0.5,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report as one JSON object instead of the table.")
    ] = False,
) -> None:
    """Turn reviewed cases into a YOLO dataset: confirmed -> labelled boxes, false positives -> negatives
    where their boxes were, operators' drawn boxes -> labels; prints images, boxes per class, negatives and
    drawn labels per split and per camera."""
    with user_errors():
        try:
            from api.db import make_engine, make_session_factory
            from api.settings import Settings
        except ModuleNotFoundError as missing:
            raise DatasetError(
                f"export-reviewed reads the case store: pip install 'streetwatch[store]' ({missing})"
            ) from missing
        from datasets.reviewed import GroupBy, ImageSource, export_reviewed, load_mapping, parse_fractions
        from datasets.yolo import read_dataset_yaml

        if data_dir is not None:
            os.environ["STREETWATCH_DATA_DIR"] = str(data_dir)
        if database_url is not None:
            os.environ["STREETWATCH_DATABASE_URL"] = database_url
        settings = Settings()
        engine = make_engine(settings)
        try:
            with make_session_factory(engine)() as session:
                yaml_path, report = export_reviewed(
                    session,
                    settings.evidence_dir,
                    out,
                    mapping=load_mapping(mapping) if mapping else None,
                    source=ImageSource(images),
                    group_by=GroupBy(group_by),
                    fractions=parse_fractions(split),
                    seed=seed,
                    strict=strict,
                    context_confidence=context_confidence,
                )
        finally:
            engine.dispose()
        summary = report.to_json()
        summary["skipped"] = summary["skipped"][:5]
        if as_json:
            typer.echo(json.dumps({"dataset": str(yaml_path), **summary}, ensure_ascii=False))
        else:
            typer.echo(report.table(read_dataset_yaml(yaml_path).names))
            typer.echo(f"dataset: {yaml_path}")


def train_command(
    model: Annotated[str, typer.Argument(help="Architecture (.yaml, e.g. yolo11n.yaml) or weights (.pt).")],
    data: Annotated[Path, typer.Argument(help="dataset.yaml")],
    epochs: Annotated[int, typer.Option(min=1)] = 100,
    imgsz: Annotated[int, typer.Option(min=32)] = 640,
    batch: Annotated[int, typer.Option(min=1)] = 16,
    device: Annotated[str, typer.Option(help="cpu, 0 (first GPU), 0,1 ...")] = "cpu",
    project: Annotated[Path, typer.Option(help="Ultralytics run folder.")] = Path("runs/train"),
    name: Annotated[str, typer.Option(help="Run name, also the exported model's name.")] = "streetwatch",
    seed: Annotated[int, typer.Option()] = 0,
    hue_shift: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=MAX_HUE_SHIFT,
            help="Largest random hue rotation (share of the colour circle; Ultralytics' hsv_h). 0.5: "
            "every colour, for objects whose colour does not make them what they are.",
        ),
    ] = DEFAULT_HUE_SHIFT,
    workers: Annotated[int, typer.Option(min=0, help="Data loader processes.")] = 2,
    threads: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Torch threads of a CPU training (default: every core; Ultralytics' own "
            "default leaves one idle).",
        ),
    ] = None,
    export: Annotated[bool, typer.Option(help="Export best.pt to ONNX with a model card.")] = True,
    out: Annotated[Path, typer.Option(help="Folder for the ONNX file and card.")] = Path("models"),
    overwrite: Annotated[bool, typer.Option(help="Replace an existing ONNX file or card.")] = False,
) -> None:
    """Train a detector with Ultralytics (offline), then export it to ONNX with its card (train extra)."""
    from datasets.train import train

    with user_errors():
        result = train(
            model,
            data,
            epochs=epochs,
            imgsz=imgsz,
            batch=batch,
            device=device,
            project=project,
            name=name,
            seed=seed,
            hue_shift=hue_shift,
            workers=workers,
            threads=threads,
            export=export,
            out_dir=out,
            overwrite=overwrite,
        )
        typer.echo(
            json.dumps(
                {
                    "weights": str(result.weights),
                    "onnx": str(result.onnx) if result.onnx else None,
                    "card": str(result.card) if result.card else None,
                    "metrics": result.metrics,
                    "working_points": result.working_points,
                    "threads": result.threads,
                    "command": result.command,
                }
            )
        )


def evaluate_command(
    model: Annotated[Path, typer.Argument(help="Model card (.yaml) or ONNX file.")],
    dataset: Annotated[Path, typer.Argument(help="dataset.yaml")],
    split: Annotated[str | None, typer.Option(help="Split (default: test if present, else val).")] = None,
    conf: Annotated[float, typer.Option(help="Confidence threshold (keep it low for mAP).")] = 0.001,
    iou: Annotated[float, typer.Option(help="NMS IoU threshold.")] = 0.7,
    max_det: Annotated[int, typer.Option(help="Boxes kept per image.")] = 300,
    provider: Annotated[str, typer.Option(help="cpu, cuda, tensorrt or openvino.")] = "cpu",
    protocol: Annotated[
        str, typer.Option(help="daemon (one class per box) or ultralytics (multi-label, as yolo val).")
    ] = "daemon",
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the result as JSON here.")
    ] = None,
) -> None:
    """mAP50 and mAP50-95 of MODEL on DATASET, run by streetwatch's own detector as the daemon runs it."""
    from datasets.evaluate import evaluate, write_json

    with user_errors():
        result = evaluate(
            model,
            dataset,
            split=split,
            confidence=conf,
            iou=iou,
            max_detections=max_det,
            provider=provider,
            protocol=protocol,
        )
        typer.echo(result.table(), err=True)
        if json_out is not None:
            write_json(result, json_out)
        typer.echo(json.dumps(result.to_json(), ensure_ascii=False))


def _split(split: str) -> str:
    if split not in ("train", "val", "test"):
        raise typer.BadParameter(f"split must be train, val or test, not {split!r}")
    return split
