"""The recipe of the bundled demo model (models/streetwatch-demo-n.onnx): generate scenes, train from
scratch with Ultralytics on the CPU, measure mAP on the held-out test split, export to ONNX with its card.

    python -m datasets.scenes.train_demo --data /tmp/sw-demo-data --count 1800 --seed 1 --hours 0.9 --batch 16

The card records mAP50 and mAP50-95 on the test split twice: as ``streetwatch evaluate`` measures the
exported ONNX file (streetwatch's own detector, as the daemon runs it) and as Ultralytics' validator
measures the PyTorch weights. ``--weights best.pt`` skips training and only exports and measures.

Needs the train extra (``pip install 'streetwatch[train]'``). Models trained with Ultralytics are
AGPL-3.0, and so is the exported file.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path
from typing import Any

import yaml

from datasets.scenes import CLASSES
from datasets.scenes.generate import write_dataset

ARCHITECTURE = Path(__file__).with_name("streetwatch-demo.yaml")
NAME = "streetwatch-demo-n"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, required=True, help="Dataset folder (generated when absent).")
    parser.add_argument("--count", type=int, default=2400, help="Scenes to generate (80/10/10 split).")
    parser.add_argument("--seed", type=int, default=1, help="Generator seed.")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--epochs", type=int, default=60, help="Upper bound when --hours is given.")
    parser.add_argument("--hours", type=float, default=None, help="Train for this long (Ultralytics 'time').")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--runs", type=Path, default=Path("runs/train-demo"))
    parser.add_argument(
        "--models", type=Path, default=Path("models"), help="Where the ONNX file and card go."
    )
    parser.add_argument("--finetune-hours", type=float, default=None, help="A second, gentler cycle.")
    parser.add_argument("--weights", type=Path, default=None, help="Trained weights: skip training.")
    return parser.parse_args(argv)


def train_options(args: argparse.Namespace, name: str) -> dict[str, Any]:
    return {
        "data": str(args.data / "dataset.yaml"),
        "imgsz": args.imgsz,
        "epochs": args.epochs,
        "batch": args.batch,
        "workers": args.workers,
        "device": "cpu",
        "pretrained": False,
        "amp": False,
        "cache": "ram",
        "seed": 0,
        "deterministic": True,
        "close_mosaic": 3,
        "patience": 1000,
        "plots": False,
        "project": str(args.runs.resolve()),
        "name": name,
        "exist_ok": True,
    }


def train(args: argparse.Namespace) -> Path:
    """From scratch for ``--hours``; then, with ``--finetune-hours``, again from the best weights at a
    lower learning rate without warm-up (a second cosine cycle: the small classes, stalls and
    garbage, are still learning when the first ends)."""
    from detector.export import import_ultralytics

    ultralytics = import_ultralytics()
    options = train_options(args, "train")
    if args.hours:
        options["time"] = args.hours
    ultralytics.YOLO(str(ARCHITECTURE)).train(**options)
    weights: Path = args.runs.resolve() / "train" / "weights" / "best.pt"
    if not args.finetune_hours:
        return weights
    options = train_options(args, "finetune")
    # Ultralytics' "auto" optimizer chose AdamW at lr 0.00083 for the first cycle (8 classes, few steps).
    options.update(
        time=args.finetune_hours,
        optimizer="AdamW",
        lr0=0.0005,
        warmup_epochs=0,
        close_mosaic=2,
        pretrained=True,
    )
    ultralytics.YOLO(str(weights)).train(**options)
    finetuned: Path = args.runs.resolve() / "finetune" / "weights" / "best.pt"
    return finetuned


def ultralytics_metrics(weights: Path, args: argparse.Namespace) -> dict[str, float]:
    """mAP on the held-out test split, as Ultralytics' validator measures the PyTorch weights."""
    from detector.export import import_ultralytics

    result = (
        import_ultralytics()
        .YOLO(str(weights))
        .val(
            data=str(args.data / "dataset.yaml"),
            split="test",
            imgsz=args.imgsz,
            batch=16,
            device="cpu",
            plots=False,
        )
    )
    return {"map50": round(float(result.box.map50), 4), "map50_95": round(float(result.box.map), 4)}


def streetwatch_metrics(card: Path, args: argparse.Namespace) -> dict[str, float]:
    """mAP on the held-out test split, as ``streetwatch evaluate`` measures the exported model."""
    from datasets.evaluate import evaluate

    result = evaluate(card, args.data / "dataset.yaml", split="test")
    return {"map50": round(result.map50, 4), "map50_95": round(result.map50_95, 4)}


def export(weights: Path, args: argparse.Namespace, command: str) -> Path:
    """The ONNX file and its card, with the test-split mAP of both measurements."""
    from detector.card import Thresholds
    from detector.export import export_model

    _, card_path = export_model(
        weights,
        out_dir=args.models,
        imgsz=args.imgsz,
        name=NAME,
        thresholds=Thresholds(confidence=0.25, iou=0.5, max_detections=100),
        overwrite=True,
    )
    ours, theirs = streetwatch_metrics(card_path, args), ultralytics_metrics(weights, args)
    card = yaml.safe_load(card_path.read_text(encoding="utf-8"))
    card["licence"] = "AGPL-3.0 (trained with Ultralytics; the weights are a derivative work)"
    card["description"] = (
        f"streetwatch demo model: YOLOv8 (width 0.1875) trained from scratch on {args.count} generated "
        f"street scenes (datasets/scenes, seed {args.seed}) for the demo; not for real cameras. "
        f"Held-out generated test split ({args.count // 10} images): mAP50 {ours['map50']}, "
        f"mAP50-95 {ours['map50_95']} (streetwatch evaluate, the ONNX file as the daemon runs it); "
        f"Ultralytics val of the PyTorch weights: mAP50 {theirs['map50']}, mAP50-95 {theirs['map50_95']}."
    )
    header = (
        "# The bundled demo model: classes " + ", ".join(CLASSES) + ".\n"
        f"# Test split mAP50 {ours['map50']}, mAP50-95 {ours['map50_95']} "
        "on held-out generated scenes\n"
        f"# (streetwatch evaluate {card_path} DATA/dataset.yaml --split test;\n"
        f"#  Ultralytics val of best.pt: mAP50 {theirs['map50']}, mAP50-95 {theirs['map50_95']}).\n"
        "# Reproduce (train extra, about an hour on 2 CPU cores):\n"
        f"#   {command}\n"
    )
    body = yaml.safe_dump(card, sort_keys=False, allow_unicode=True, width=110, default_flow_style=None)
    card_path.write_text(header + body, encoding="utf-8")
    return card_path


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("YOLO_OFFLINE", "1")
    args = parse_args(sys.argv[1:] if argv is None else argv)
    words = list(sys.argv[1:] if argv is None else argv)
    if "--weights" in words:  # the recorded command trains: drop the shortcut
        del words[words.index("--weights") : words.index("--weights") + 2]
    command = "python -m datasets.scenes.train_demo " + shlex.join(words)
    if not (args.data / "dataset.yaml").exists():
        write_dataset(args.data, args.count, args.seed, workers=args.workers)
    weights = args.weights or train(args)
    print(f"card: {export(weights, args, command)}")


if __name__ == "__main__":
    main()
