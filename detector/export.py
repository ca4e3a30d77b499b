"""``streetwatch models export``: Ultralytics weights to an ONNX file plus its model card (train extra).

Ultralytics does the export; streetwatch reads the result back with :func:`detector.loader.load_model`
(so the card states what the file really is: layout, input, classes) and writes a card that pins the
file's sha256 and records the command that reproduces it.

Ultralytics (and PyTorch) are imported lazily: the daemon and the API never need them.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from detector.card import Layout, ModelCard, Thresholds, card_to_yaml_dict, sha256_of
from detector.errors import DetectorError
from detector.loader import load_model

TRAIN_EXTRA_HINT = "pip install 'streetwatch[train]'"
WEIGHT_SUFFIXES = (".pt", ".yaml", ".yml")
DEFAULT_VERSION = "0.1.0"

ImageSize = int | tuple[int, int]


class ExportError(DetectorError):
    """Ultralytics is missing, the weights cannot be found or exported, or the output would clobber a file."""


def export_model(
    weights: Path,
    *,
    out_dir: Path = Path("models"),
    imgsz: ImageSize = 640,
    dynamic: bool = False,
    half: bool = False,
    batch: int = 1,
    opset: int | None = None,
    name: str | None = None,
    simplify: bool = True,
    end2end: bool = True,
    version: str = DEFAULT_VERSION,
    thresholds: Thresholds | None = None,
    overwrite: bool = False,
    dynamic_batch: bool = True,
) -> tuple[Path, Path]:
    """Export ``weights`` to ``out_dir/<name>.onnx`` and write ``out_dir/<name>.yaml``; return both paths.

    Args:
        weights: an Ultralytics checkpoint (``.pt``) or an architecture (``.yaml``: random weights, for
            tests); a bare architecture name such as ``yolo11n.yaml`` is resolved by Ultralytics.
        imgsz: input size, ``640`` or ``(height, width)``; the maximum size when ``dynamic``.
        dynamic: dynamic batch, height and width axes (rectangular inputs, any batch size).
        dynamic_batch: a dynamic batch axis only (the default): the static export's graph is rewritten
            and checked (:mod:`detector.graph_edit`), so the daemon runs a batch in one ``session.run``.
        half: FP16 weights (inputs and outputs stay float32).
        batch: fixed batch size of a static export.
        end2end: use the NMS-free one-to-one head where the architecture has one (YOLOv10, YOLO26);
            False exports the one-to-many output that needs NMS. Ignored for heads without one.
        thresholds: the card's default thresholds (default: Ultralytics' predict defaults).
        overwrite: replace an existing ONNX file or card of the same name.
    """
    source = _resolve_weights(weights)
    name = name or weights.stem
    if dynamic_batch and batch != 1 and not dynamic:
        raise ExportError(f"--batch {batch} fixes the batch size: pass --static-batch with it")
    onnx_path, card_path = out_dir / f"{name}.onnx", out_dir / f"{name}.yaml"
    _check_targets(weights, onnx_path, card_path, overwrite=overwrite)
    ultralytics = import_ultralytics()
    out_dir.mkdir(parents=True, exist_ok=True)
    options = {
        "imgsz": list(imgsz) if isinstance(imgsz, tuple) else imgsz,
        "dynamic": dynamic,
        "batch": batch,
        "opset": opset,
        "simplify": simplify,
    }
    _run_export(ultralytics, weights, source, onnx_path, options, half=half, end2end=end2end)
    if dynamic_batch and not dynamic:
        _make_batch_dynamic(onnx_path)
    command = reproduce_command(
        weights,
        out_dir=out_dir,
        imgsz=imgsz,
        dynamic=dynamic,
        half=half,
        batch=batch,
        opset=opset,
        name=name,
        simplify=simplify,
        end2end=end2end,
        version=version,
        dynamic_batch=dynamic_batch,
    )
    card = _card_for(
        onnx_path, weights, ultralytics.__version__, version=version, thresholds=thresholds, command=command
    )
    write_card(card, card_path, command=command)
    load_model(card_path)  # the card must load back: checksum, layout and classes agree with the file
    return onnx_path, card_path


def import_ultralytics() -> Any:
    """The ``ultralytics`` module, offline and without auto-installs, or an error naming the extra."""
    os.environ.setdefault("YOLO_OFFLINE", "1")  # never fetch weights, fonts or version checks
    os.environ.setdefault("YOLO_AUTOINSTALL", "false")  # never pip-install into the user's environment
    try:
        import ultralytics
    except ImportError as exc:
        raise ExportError(
            f"exporting needs Ultralytics and PyTorch, which are not installed ({exc}); "
            f"install the train extra: {TRAIN_EXTRA_HINT}"
        ) from exc
    return ultralytics


def _resolve_weights(weights: Path) -> str:
    """What to hand to ``YOLO()``: an absolute file path, or a bare Ultralytics architecture name."""
    if weights.suffix.lower() not in WEIGHT_SUFFIXES:
        raise ExportError(f"{weights}: expected Ultralytics weights (.pt) or an architecture (.yaml)")
    if weights.is_file():
        return str(weights.resolve())
    if weights.suffix.lower() != ".pt" and len(weights.parts) == 1:
        return str(weights)  # e.g. yolo11n.yaml: Ultralytics' own architecture, untrained weights
    raise ExportError(f"{weights}: weights file not found (expected a .pt checkpoint or .yaml architecture)")


def _check_targets(weights: Path, onnx_path: Path, card_path: Path, *, overwrite: bool) -> None:
    if weights.exists() and weights.resolve() in (onnx_path.resolve(), card_path.resolve()):
        raise ExportError(f"{weights}: the export would overwrite its source; choose another --out or --name")
    if not overwrite:
        for target in (onnx_path, card_path):
            if target.exists():
                raise ExportError(f"{target}: already exists; pass --overwrite to replace it")


def _run_export(
    ultralytics: Any,
    weights: Path,
    source: str,
    onnx_path: Path,
    options: dict[str, Any],
    *,
    half: bool,
    end2end: bool,
) -> None:
    """Export in a scratch folder (Ultralytics writes beside the weights, or into the working folder for a
    ``.yaml``), then move the ONNX file into place."""
    from ultralytics.utils import DEFAULT_CFG_DICT

    target = onnx_path.resolve()  # before the chdir below
    with tempfile.TemporaryDirectory(prefix="streetwatch-export-") as scratch, contextlib.chdir(scratch):
        if Path(source).is_absolute():  # a file: Ultralytics writes the ONNX beside it, so link it here
            link = Path(scratch) / Path(source).name
            try:
                link.symlink_to(source)
            except OSError:  # no symlinks (Windows without developer mode)
                shutil.copy2(source, link)
            source = str(link)
        try:
            model = ultralytics.YOLO(source, task="detect")
            args = {
                **options,
                **_precision_args(half, DEFAULT_CFG_DICT),
                **_head_args(model, end2end, DEFAULT_CFG_DICT),
            }
            exported = Path(model.export(format="onnx", device="cpu", **args)).resolve()
        except Exception as exc:  # Ultralytics raises anything from AssertionError to RuntimeError
            problem = f"{type(exc).__name__}: {exc}"
            raise ExportError(f"{weights}: Ultralytics could not export it: {problem}") from exc
        shutil.move(exported, target)


def _make_batch_dynamic(onnx_path: Path) -> None:
    """Rewrite the static export in place with a dynamic batch axis, checked against the original."""
    from detector.graph_edit import GraphEditError, rewrite_file

    scratch = onnx_path.with_name(f".{onnx_path.name}.dynamic")
    try:
        rewrite_file(onnx_path, scratch, dynamic_batch=True)
    except GraphEditError as exc:
        scratch.unlink(missing_ok=True)
        raise ExportError(
            f"{onnx_path}: cannot make the batch axis dynamic ({exc}); pass --static-batch"
        ) from exc
    scratch.replace(onnx_path)


def _precision_args(half: bool, defaults: dict[str, Any]) -> dict[str, Any]:
    """FP16 is ``quantize=16`` since Ultralytics 8.4's unified precision flag, ``half=True`` before."""
    if not half:
        return {}
    return {"quantize": 16} if "quantize" in defaults else {"half": True}


def _head_args(model: Any, end2end: bool, defaults: dict[str, Any]) -> dict[str, Any]:
    """Select the one-to-one (NMS-free) head, only for models that have one."""
    head = getattr(getattr(model, "model", None), "model", [None])[-1]
    if getattr(head, "one2one_cv2", None) is None:
        return {}  # YOLOv8/11-style head: one output layout only
    if "end2end" in defaults:
        return {"end2end": end2end}  # Ultralytics 8.4.0 until ``nms`` took this over
    return {"nms": False} if end2end else {"nms": None}  # nms=False: NMS-free head; None: raw outputs


def _card_for(
    onnx_path: Path,
    weights: Path,
    ultralytics_version: str,
    *,
    version: str,
    thresholds: Thresholds | None,
    command: str,
) -> ModelCard:
    """The card of the exported file, read back from it (layout, input, classes, licence) plus provenance."""
    loaded = load_model(onnx_path)
    card, metadata = loaded.card, loaded.info.metadata
    expected = Layout.END2END if metadata.get("end2end", "").lower() == "true" else Layout.ULTRALYTICS
    if card.layout is not expected:
        raise ExportError(f"{onnx_path}: exported layout {card.layout.value}, expected {expected.value}")
    described = (metadata.get("description") or "Ultralytics model").strip()
    return card.model_copy(
        update={
            "version": version,
            "sha256": sha256_of(onnx_path),
            "thresholds": thresholds or card.thresholds,
            "source": _describe_source(weights, ultralytics_version),
            "description": f"{described}; exported with: {command}",
        }
    )


def _describe_source(weights: Path, ultralytics_version: str) -> str:
    via = f"exported by Ultralytics {ultralytics_version}"
    if weights.suffix.lower() != ".pt":
        return f"{weights} (architecture only: random, untrained weights), {via}"
    return f"{weights} (sha256 {sha256_of(weights)}), {via}"


def write_card(card: ModelCard, card_path: Path, *, command: str) -> None:
    data = card_to_yaml_dict(card, relative_to=card_path.parent)
    writer = " ".join(command.split()[:3])  # streetwatch models export / reshape
    header = f"# Written by `{writer}`; regenerate rather than edit (sha256 pins the file):\n#   {command}\n"
    body = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=110, default_flow_style=None)
    card_path.write_text(header + body, encoding="utf-8")


def reproduce_command(
    weights: Path,
    *,
    out_dir: Path,
    imgsz: ImageSize,
    dynamic: bool,
    half: bool,
    batch: int,
    opset: int | None,
    name: str,
    simplify: bool,
    end2end: bool,
    version: str,
    dynamic_batch: bool = True,
) -> str:
    """The ``streetwatch models export`` command line that makes the same file (non-default flags only)."""
    size = f"{imgsz[0]},{imgsz[1]}" if isinstance(imgsz, tuple) else str(imgsz)
    words = ["streetwatch", "models", "export", str(weights), "--out", str(out_dir), "--imgsz", size]
    flags = {
        "--dynamic": dynamic,
        "--half": half,
        "--no-simplify": not simplify,
        "--no-end2end": not end2end,
        "--static-batch": not dynamic_batch and not dynamic,
    }
    words += [flag for flag, on in flags.items() if on]
    options = {
        "--batch": str(batch) if batch != 1 else None,
        "--opset": str(opset) if opset is not None else None,
        "--name": name if name != weights.stem else None,
        "--version": version if version != DEFAULT_VERSION else None,
    }
    for option, value in options.items():
        if value is not None:
            words += [option, value]
    return shlex.join(words)


def parse_imgsz(text: str) -> ImageSize:
    """``640`` or ``384,640`` (height, width)."""
    parts = [p.strip() for p in text.replace("x", ",").split(",")]
    if len(parts) not in (1, 2) or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"--imgsz {text!r}: expected a size like 640 or HEIGHT,WIDTH like 384,640")
    return int(parts[0]) if len(parts) == 1 else (int(parts[0]), int(parts[1]))


def export_command(
    weights: Annotated[Path, typer.Argument(help="Ultralytics weights (.pt), or an architecture (.yaml).")],
    out: Annotated[Path, typer.Option(help="Folder for the ONNX file and its model card.")] = Path("models"),
    imgsz: Annotated[str, typer.Option(help="640, or HEIGHT,WIDTH (the maximum if --dynamic).")] = "640",
    dynamic: Annotated[bool, typer.Option(help="Dynamic batch, height and width axes.")] = False,
    half: Annotated[bool, typer.Option(help="FP16 weights (inputs and outputs stay float32).")] = False,
    batch: Annotated[int, typer.Option(min=1, help="Fixed batch size of a static export.")] = 1,
    opset: Annotated[int | None, typer.Option(help="ONNX opset (default: Ultralytics' choice).")] = None,
    name: Annotated[str | None, typer.Option(help="File name stem (default: the weights' stem).")] = None,
    simplify: Annotated[bool, typer.Option(help="Simplify the graph with onnxslim.")] = True,
    end2end: Annotated[bool, typer.Option(help="NMS-free head where there is one (YOLOv10, YOLO26).")] = True,
    version: Annotated[str, typer.Option(help="Model version written to the card.")] = DEFAULT_VERSION,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing ONNX file or card.")] = False,
    dynamic_batch: Annotated[
        bool,
        typer.Option(
            "--dynamic-batch/--static-batch",
            help="Dynamic batch axis (default; height and width stay fixed) or the fixed --batch.",
        ),
    ] = True,
) -> None:
    """Export Ultralytics WEIGHTS to ONNX and write its model card beside it (needs the train extra)."""
    from detector.cli import user_errors  # here, not at the top: detector.cli imports this module

    with user_errors():
        onnx_path, card_path = export_model(
            weights,
            out_dir=out,
            imgsz=parse_imgsz(imgsz),
            dynamic=dynamic,
            half=half,
            batch=batch,
            opset=opset,
            name=name,
            simplify=simplify,
            end2end=end2end,
            version=version,
            overwrite=overwrite,
            dynamic_batch=dynamic_batch,
        )
        card = load_model(card_path).card
        typer.echo(
            json.dumps(
                {
                    "onnx": str(onnx_path),
                    "card": str(card_path),
                    "layout": card.layout.value,
                    "input_hw": list(card.input.size_hw),
                    "dynamic": card.input.dynamic,
                    "classes": len(card.classes),
                    "sha256": card.sha256,
                }
            )
        )


def reshape_model(
    source: Path,
    target: Path,
    *,
    dynamic_batch: bool = True,
    size_hw: tuple[int, int] | None = None,
    name: str | None = None,
    overwrite: bool = False,
) -> tuple[Path, Path]:
    """Rewrite a static model (a card or an ONNX file) with a dynamic batch axis and/or another input size,
    check it against the original (see :mod:`detector.graph_edit`) and write its card beside it."""
    from detector.graph_edit import rewrite_file

    if target.suffix.lower() != ".onnx":
        raise ExportError(f"{target}: the rewritten model must be an .onnx file")
    card_path = target.with_suffix(".yaml")
    loaded = load_model(source)
    onnx_source = Path(loaded.card.path)
    if onnx_source.resolve() == target.resolve() and not overwrite:
        raise ExportError(f"{target}: is the source itself; pass --overwrite to rewrite it in place")
    if not overwrite:
        for path in (target, card_path):
            if path.exists():
                raise ExportError(f"{path}: already exists; pass --overwrite to replace it")
    scratch = target.with_name(f".{target.name}.partial")
    rewrite_file(onnx_source, scratch, dynamic_batch=dynamic_batch, size_hw=size_hw)
    scratch.replace(target)
    words = ["streetwatch", "models", "reshape", str(source), str(target)]
    words += [] if dynamic_batch else ["--static-batch"]
    words += ["--imgsz", f"{size_hw[0]},{size_hw[1]}"] if size_hw else []
    command = shlex.join(words)
    card = loaded.card
    update: dict[str, Any] = {
        "name": name or target.stem,
        "path": target.resolve(),
        "sha256": sha256_of(target),
        "description": f"{card.description or card.name}; rewritten with: {command}",
    }
    if size_hw is not None:
        update["input"] = card.input.model_copy(update={"size_hw": size_hw})
    write_card(card.model_copy(update=update), card_path, command=command)
    load_model(card_path)  # the card must load back: checksum, layout and classes agree with the file
    return target, card_path


def reshape_command(
    source: Annotated[Path, typer.Argument(help="A model card (.yaml) or a static ONNX file.")],
    target: Annotated[Path, typer.Argument(help="The rewritten .onnx file; its card is written beside it.")],
    dynamic_batch: Annotated[
        bool, typer.Option("--dynamic-batch/--static-batch", help="Make the batch axis dynamic.")
    ] = True,
    imgsz: Annotated[str | None, typer.Option(help="New input HEIGHT,WIDTH, e.g. 384,640.")] = None,
    name: Annotated[str | None, typer.Option(help="Card name (default: the target's stem).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing file or card.")] = False,
) -> None:
    """Rewrite a static ONNX detector: dynamic batch axis, or another (rectangular) input size; checked."""
    from detector.cli import user_errors

    with user_errors():
        size = parse_imgsz(imgsz) if imgsz else None
        size_hw = (size, size) if isinstance(size, int) else size
        onnx_path, card_path = reshape_model(
            source, target, dynamic_batch=dynamic_batch, size_hw=size_hw, name=name, overwrite=overwrite
        )
        card = load_model(card_path).card
        typer.echo(
            json.dumps(
                {
                    "onnx": str(onnx_path),
                    "card": str(card_path),
                    "input_hw": list(card.input.size_hw),
                    "sha256": card.sha256,
                }
            )
        )
