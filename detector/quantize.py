"""``streetwatch models quantize``: static INT8 with the detection head kept in float, and a drift report.

Calibration frames go through the detector's own :class:`Preprocessor`, so INT8 ranges are measured on
exactly the tensors the daemon feeds. The head (the last prediction convs of each branch and the decode
ops after them) stays float: its outputs are box coordinates and scores whose ranges span orders of
magnitude, where 8 bits cost the most accuracy and save the least time. The report then runs the float and
the INT8 model on held-out frames of the same source and says how far the detections moved.

``onnx`` and ``onnxruntime.quantization`` come with the ``dev`` or ``train`` extra; they are imported only
when a model is quantized, so the daemon never needs them.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, redirect_stdout
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import av
import numpy as np
import numpy.typing as npt
import typer
import yaml

from detector.boxes import box_iou_batch
from detector.card import ModelCard, card_to_yaml_dict, sha256_of
from detector.detections import Detections
from detector.detector import Detector
from detector.errors import QuantizeError
from detector.loader import LoadedModel, load_model
from detector.media import MediaError, is_image, iter_video, read_image
from detector.model_info import check_image_input
from detector.preprocess import Preprocessor

if TYPE_CHECKING:
    import onnx

log = logging.getLogger(__name__)

DEFAULT_CALIBRATION_FRAMES = 64
DEFAULT_EVALUATION_FRAMES = 32
MATCH_IOU = 0.5  # a float detection counts as found when an INT8 box of its class overlaps it this much
CONFIDENT = 0.5  # recall is also reported for float detections at least this confident

# The walk from the outputs stops at the first of these on each path: the branch's prediction layer.
PREDICTION_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"})
# Shape arithmetic reads a tensor's dims, never its values: a path through it leaves the head.
SHAPE_OPS = frozenset({"Shape", "Size"})
PER_CHANNEL_OPSET = 13  # DequantizeLinear gained its 'axis' (per-channel scales) in opset 13
QUANTIZED_OPS = frozenset(
    {
        "QuantizeLinear",
        "DequantizeLinear",
        "DynamicQuantizeLinear",
        "QLinearConv",
        "QLinearMatMul",
        "ConvInteger",
        "MatMulInteger",
    }
)
INSTALL_HINT = "install the 'dev' or 'train' extra (pip install 'streetwatch[dev]')"


# --- optional dependencies -----------------------------------------------------------------------------


def require_quantization_tools() -> None:
    """Raise a :class:`QuantizeError` saying how to install ``onnx`` / ``onnxruntime.quantization``.

    Called before any work; the functions below then import them where they use them.
    """
    try:
        import onnx.version_converter  # noqa: F401
        import onnxruntime.quantization  # noqa: F401
    except ImportError as exc:
        raise QuantizeError(f"INT8 quantization needs the onnx package ({exc}); {INSTALL_HINT}") from exc


# --- which nodes stay float ----------------------------------------------------------------------------


@dataclass(frozen=True)
class HeadNodes:
    """The nodes kept in float: every node name, and the prediction layers among them."""

    names: list[str]
    prediction_layers: list[str]


def is_dfl_conv(node: onnx.NodeProto, producers: dict[str, onnx.NodeProto]) -> bool:
    """Ultralytics' DFL: a fixed 1x1 Conv over a Softmax that turns bin probabilities into distances."""
    source = producers.get(node.input[0]) if node.input else None
    return node.op_type == "Conv" and source is not None and source.op_type == "Softmax"


def head_nodes(graph: onnx.GraphProto) -> HeadNodes:
    """Nodes from the graph outputs back to, and including, each branch's final prediction layer.

    Walks backwards through the decode ops (reshape, concat, sigmoid, softmax, slice, arithmetic) and stops
    at the first Conv/Gemm/MatMul on each path. The DFL Conv of Ultralytics v8/11 heads is decoding, not a
    prediction layer, so the walk goes through it to the box-branch convs behind it. Nodes must be named.
    """
    producers = {tensor: node for node in graph.node for tensor in node.output}
    graph_inputs = {tensor.name for tensor in graph.input}
    names: dict[str, None] = {}  # insertion-ordered set
    prediction_layers: list[str] = []
    pending = [tensor.name for tensor in graph.output]
    visited: set[str] = set()
    while pending:
        tensor = pending.pop()
        if tensor in visited:
            continue
        visited.add(tensor)
        if tensor in graph_inputs:
            raise QuantizeError(f"input '{tensor}' reaches an output with no Conv, Gemm or MatMul in between")
        node = producers.get(tensor)
        if node is None or node.name in names:
            continue  # an initializer, or a node already walked through
        names[node.name] = None
        if node.op_type in PREDICTION_OPS and not is_dfl_conv(node, producers):
            prediction_layers.append(node.name)
        elif node.op_type not in SHAPE_OPS:
            pending.extend(name for name in node.input if name)
    return HeadNodes(names=list(names), prediction_layers=prediction_layers)


def name_unnamed_nodes(graph: onnx.GraphProto) -> None:
    """Give every unnamed node a unique name: ONNX Runtime excludes nodes from quantization by name."""
    taken = {node.name for node in graph.node if node.name}
    for index, node in enumerate(graph.node):
        if not node.name:
            candidate = f"{node.op_type}_{index}"
            while candidate in taken:
                candidate += "_"
            node.name = candidate
            taken.add(candidate)


def check_float_model(model: onnx.ModelProto, path: Path) -> None:
    """Static INT8 needs a float32 model that is not quantized already."""
    quantized = sorted({node.op_type for node in model.graph.node if node.op_type in QUANTIZED_OPS})
    if quantized:
        raise QuantizeError(
            f"{path}: already quantized (has {', '.join(quantized)} nodes); expected the float model"
        )


# --- calibration and held-out frames -------------------------------------------------------------------


@dataclass(frozen=True)
class FrameSplit:
    """Frame indices of one source: calibration and held-out evaluation, disjoint and interleaved."""

    calibration: list[int]
    evaluation: list[int]


def split_frames(total: int, calibration: int, evaluation: int) -> FrameSplit:
    """Spread ``calibration + evaluation`` slots evenly over ``total`` frames; every k-th slot is held out.

    Interleaving keeps each held-out frame as far from its calibration neighbours as even spacing allows,
    so the report measures frames the calibration did not see, from all parts of the source. A source
    shorter than that is split in the asked proportion, keeping at least one frame each side.
    """
    if total < 1 or calibration < 1 or evaluation < 0:
        raise ValueError(f"cannot take {calibration} + {evaluation} frames from a source of {total} frames")
    slots = min(total, calibration + evaluation)
    if slots < calibration + evaluation:  # a short source is shared in the asked proportion
        held = round(slots * evaluation / (calibration + evaluation))
        evaluation = min(max(held, 1 if evaluation else 0), slots - 1)
    calibration = slots - evaluation
    slot_frames = ((np.arange(slots) + 0.5) * total / slots).astype(np.int64)
    held_out = np.zeros(slots, dtype=bool)
    if evaluation:
        held_out[((np.arange(evaluation) + 0.5) * slots / evaluation).astype(np.int64)] = True
    return FrameSplit(calibration=slot_frames[~held_out].tolist(), evaluation=slot_frames[held_out].tolist())


def image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and is_image(p))


def video_frame_count(path: Path) -> int:
    """Frames in a video: the container's count, or its packets when the header does not say."""
    try:
        with av.open(str(path), mode="r") as container:
            if not container.streams.video:
                raise MediaError(f"{path}: no video stream")
            stream = container.streams.video[0]
            return int(stream.frames) or sum(1 for packet in container.demux(stream) if packet.size)
    except (av.error.FFmpegError, OSError) as exc:
        raise MediaError(f"{path}: cannot open as video: {exc}") from exc


def count_frames(source: Path) -> int:
    """Frames (or images) in a video file or a folder of images."""
    if not source.exists():
        raise MediaError(f"{source}: no such file or folder (expected a video or a folder of images)")
    count = len(image_files(source)) if source.is_dir() else video_frame_count(source)
    if count == 0:
        raise MediaError(f"{source}: no frames or images to calibrate on")
    return count


def iter_frames_at(source: Path, indices: Sequence[int]) -> Iterator[npt.NDArray[np.uint8]]:
    """BGR frames at ``indices`` (sorted) of a video or a folder of images, decoded one at a time."""
    if source.is_dir():
        files = image_files(source)
        for index in indices:
            yield read_image(files[index])
        return
    wanted = set(indices)
    last = max(indices, default=-1)
    for frame in iter_video(source):
        if frame.index in wanted:
            yield frame.bgr
        if frame.index >= last:
            return


Feed = dict[str, npt.NDArray[np.floating]]


def calibration_feeds(
    frames: Iterable[npt.NDArray[np.uint8]], preprocessor: Preprocessor, input_name: str, batch: int
) -> Iterator[Feed]:
    """Model inputs made by the detector's own preprocessing, ``batch`` frames each (a fixed batch is
    filled up with the last real frame, never with empty pixels)."""
    frames = iter(frames)
    while chunk := list(islice(frames, batch)):
        chunk += [chunk[-1]] * (batch - len(chunk))
        tensor, _ = preprocessor(chunk)
        yield {input_name: tensor.copy()}  # the preprocessor reuses its buffer


class FeedReader:
    """A list of feeds as an ONNX Runtime ``CalibrationDataReader`` (which only checks for ``get_next``;
    duck typing keeps this module importable without the quantization extra)."""

    def __init__(self, feeds: list[Feed]) -> None:
        self._feeds = iter(feeds)

    def get_next(self) -> Feed | None:
        return next(self._feeds, None)


# --- quantization --------------------------------------------------------------------------------------


class Activations(StrEnum):
    UINT8 = "uint8"
    INT8 = "int8"


class Calibration(StrEnum):
    """How activation ranges are chosen from the calibration frames."""

    PERCENTILE = "percentile"  # clip each tensor at a percentile of |x|: robust to rare huge activations
    AVERAGE = "average"  # mean over frames of each frame's min and max
    MINMAX = "minmax"  # the extremes over all frames: one outlier frame coarsens the whole tensor


# Histogram calibrators keep every activation of every batch until they fold them into histograms
# (~125 MB a frame for YOLOX-Nano at 416 px), so they get the frames this many at a time.
HISTOGRAM_CHUNK = 4


@dataclass(frozen=True)
class QuantizeSettings:
    """How ONNX Runtime quantizes: QDQ format, int8 weights, and these choices."""

    activations: Activations = Activations.UINT8
    calibration: Calibration = Calibration.PERCENTILE
    percentile: float = 99.9
    per_channel: bool = True
    reduce_range: bool = False

    def describe(self) -> str:
        weights = "per-channel" if self.per_channel else "per-tensor"
        reduced = " (7-bit range)" if self.reduce_range else ""
        method = self.calibration.value
        if self.calibration is Calibration.PERCENTILE:
            method = f"{self.percentile:g} {method}"
        return f"QDQ, {weights} int8 weights{reduced}, {self.activations} activations, {method} calibration"


def calibrate_ranges(
    model_path: Path, feeds: Iterator[Feed], settings: QuantizeSettings, work_dir: Path
) -> tuple[Any, int]:
    """Activation ranges (ORT ``TensorsData``) of ``model_path`` over ``feeds``, and the batches used."""
    from onnxruntime.quantization import CalibrationMethod, create_calibrator

    percentile = {"percentile": settings.percentile}
    method, options, chunk = {
        Calibration.PERCENTILE: (CalibrationMethod.Percentile, percentile, HISTOGRAM_CHUNK),
        Calibration.AVERAGE: (CalibrationMethod.MinMax, {"moving_average": True}, None),
        Calibration.MINMAX: (CalibrationMethod.MinMax, {}, None),
    }[settings.calibration]
    calibrator = create_calibrator(
        model_path,
        [],
        augmented_model_path=str(work_dir / "augmented.onnx"),
        calibrate_method=method,
        extra_options=options,
    )
    # Min/max calibrators keep two scalars per tensor and batch: one pass, so "average" means every frame.
    # (Not CalibMaxIntermediateOutputs: ONNX Runtime 1.31 drops each full block instead of merging it.)
    batches = 0
    while block := list(islice(feeds, chunk)):
        calibrator.collect_data(FeedReader(block))
        batches += len(block)
    if batches == 0:
        raise MediaError("no calibration frames could be decoded")
    return calibrator.compute_data(), batches


def default_output(model: Path) -> Path:
    return model.with_name(f"{model.stem}-int8.onnx")


def default_opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def at_least_opset(model: onnx.ModelProto, opset: int) -> onnx.ModelProto:
    """``model`` converted up to ``opset`` when it is older (per-channel DequantizeLinear needs 13)."""
    import onnx.version_converter

    if default_opset(model) >= opset:
        return model
    log.info("converting the model from opset %d to %d (per-channel scales)", default_opset(model), opset)
    converted: onnx.ModelProto = onnx.version_converter.convert_version(model, opset)
    return converted


def prepare_model(float_path: Path, work_dir: Path) -> onnx.ModelProto:
    """The float model after ONNX Runtime's shape inference and graph optimisation, nodes named."""
    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = work_dir / "preprocessed.onnx"
    model = None
    # Symbolic shape inference first; it gives up on some dynamic axes (a dynamic batch), where ONNX's own
    # shape inference still lets the optimiser run. Its temporary files go to the working folder: chdir.
    for skip_symbolic in (False, True):
        try:
            with contextlib.chdir(work_dir):
                quant_pre_process(str(float_path.resolve()), str(prepared), skip_symbolic_shape=skip_symbolic)
            model = onnx.load(str(prepared))
            break
        except Exception as exc:  # pre-processing only helps; ORT and onnx raise assorted untyped errors
            problem = exc
    if model is None:
        log.warning(
            "%s: quantization pre-processing failed (%s); quantizing it as it is", float_path, problem
        )
        model = onnx.load(str(float_path))
    model = at_least_opset(model, PER_CHANNEL_OPSET)
    name_unnamed_nodes(model.graph)
    return model


def quantize_onnx(
    loaded: LoadedModel,
    frames: Iterable[npt.NDArray[np.uint8]],
    out: Path,
    settings: QuantizeSettings,
) -> tuple[HeadNodes, int]:
    """Write the static INT8 model of ``loaded`` to ``out``; return the float head and calibration batches."""
    import onnx
    from onnxruntime import quantization as q

    float_path = loaded.info.path
    image_input = check_image_input(loaded.info)
    if image_input.dtype != "tensor(float)":
        raise QuantizeError(f"{float_path}: input is {image_input.dtype}; INT8 starts from a float32 model")
    batch = image_input.shape[0] if isinstance(image_input.shape[0], int) else 1
    feeds = calibration_feeds(frames, Preprocessor(loaded.card.input, np.float32), image_input.name, batch)
    with tempfile.TemporaryDirectory(prefix="streetwatch-quantize-") as work_dir:
        work = Path(work_dir)
        model = prepare_model(float_path, work)
        check_float_model(model, float_path)
        head = find_head(model, float_path)
        onnx.save(model, str(work / "prepared.onnx"))
        with _quiet_onnxruntime():
            ranges, batches = calibrate_ranges(work / "prepared.onnx", feeds, settings, work)
        q.save_tensors_data(ranges, work / "ranges.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        uint8 = settings.activations is Activations.UINT8
        with _quiet_onnxruntime():
            q.quantize_static(
                model,
                str(out),
                None,
                calibration_cache_path=work / "ranges.json",
                calibrate_method=ranges.calibration_method,
                quant_format=q.QuantFormat.QDQ,
                per_channel=settings.per_channel,
                reduce_range=settings.reduce_range,
                activation_type=q.QuantType.QUInt8 if uint8 else q.QuantType.QInt8,
                weight_type=q.QuantType.QInt8,
                nodes_to_exclude=head.names,
            )
    _copy_metadata(float_path, out)
    return head, batches


def find_head(model: onnx.ModelProto, float_path: Path) -> HeadNodes:
    try:
        head = head_nodes(model.graph)
    except QuantizeError as exc:
        raise QuantizeError(f"{float_path}: cannot find the detection head: {exc}") from exc
    log.info("keeping %d head nodes in float, from %s", len(head.names), ", ".join(head.prediction_layers))
    return head


@contextmanager
def _quiet_onnxruntime() -> Iterator[None]:
    """ONNX Runtime's quantizer prints progress to stdout and logs every copied bias to the root logger
    at INFO; keep the command's output to its own report."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.WARNING))
    try:
        with redirect_stdout(io.StringIO()):
            yield
    finally:
        root.setLevel(level)


def _copy_metadata(source: Path, target: Path) -> None:
    """Carry the float model's metadata (Ultralytics names, imgsz, stride) into the INT8 file."""
    import onnx

    source_props = {p.key: p.value for p in onnx.load(str(source), load_external_data=False).metadata_props}
    model = onnx.load(str(target))
    props = {**source_props, **{p.key: p.value for p in model.metadata_props}}
    onnx.helper.set_model_props(model, props)
    onnx.save(model, str(target))


def int8_card(
    card: ModelCard, onnx_path: Path, *, settings: QuantizeSettings, calibration: str, float_path: Path
) -> ModelCard:
    """The source card with the INT8 file's name, path and checksum, saying how it was made."""
    return card.model_copy(
        update={
            "name": f"{card.name}-int8",
            "path": onnx_path.resolve(),
            "sha256": sha256_of(onnx_path),
            "source": (
                f"streetwatch models quantize of {float_path.name} (sha256 {sha256_of(float_path)[:12]})"
            ),
            "description": (
                f"Static INT8 of {card.name} ({settings.describe()}), calibrated on {calibration} "
                "through the card's own preprocessing; the detection head is kept in float."
            ),
        }
    )


def write_card(card: ModelCard, card_path: Path) -> None:
    data = card_to_yaml_dict(card, relative_to=card_path.parent)
    header = "# Written by `streetwatch models quantize`; the description says how it was calibrated.\n"
    card_path.write_text(
        header
        + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=None, width=110),
        encoding="utf-8",
    )


def check_targets(model: Path, float_path: Path, out: Path, card_path: Path) -> None:
    """Never overwrite the float model or its card."""
    sources = {model.resolve(), float_path.resolve()}
    for target in (out, card_path):
        if target.resolve() in sources:
            raise QuantizeError(f"{target}: would overwrite the float model or its card; pick another --out")
    if out.suffix.lower() != ".onnx":
        raise QuantizeError(f"{out}: the INT8 model must be written to a .onnx file")


# --- how far the detections moved ----------------------------------------------------------------------


F64 = npt.NDArray[np.float64]
Indices = npt.NDArray[np.intp]


def match_greedy(iou: F64, threshold: float) -> tuple[Indices, Indices]:
    """Greedy one-to-one matching, rows in priority order (best first): matched (rows, cols).

    The rule of COCO evaluation: each row in turn takes the free column it overlaps most, if that IoU is at
    least ``threshold``. Greedy rather than optimal assignment because a confident float detection should
    keep its best INT8 box, as an evaluator would score it. It runs in rounds over whole matrices: every
    open row claims its best free column at once, and the rows before the first clash (a column an earlier
    row claimed) are exactly what the sequential rule would give them. Without clashes this is one round.
    """
    free = np.where(iou >= threshold, iou, -1.0)
    open_rows = np.ones(len(iou), dtype=bool)
    matched_rows: list[Indices] = []
    matched_cols: list[Indices] = []
    while free.size:
        rows = np.flatnonzero(open_rows & (free.max(axis=1) >= threshold))
        if rows.size == 0:
            break
        cols = free[rows].argmax(axis=1)
        first_claims = np.zeros(len(cols), dtype=bool)
        first_claims[np.unique(cols, return_index=True)[1]] = True
        accepted = len(cols) if first_claims.all() else int(np.argmin(first_claims))
        rows, cols = rows[:accepted], cols[:accepted]
        matched_rows.append(rows)
        matched_cols.append(cols)
        open_rows[rows] = False
        free[:, cols] = -1.0
    if not matched_rows:
        return np.zeros(0, np.intp), np.zeros(0, np.intp)
    return np.concatenate(matched_rows), np.concatenate(matched_cols)


def match_detections(
    reference: Detections, candidate: Detections, iou_threshold: float = MATCH_IOU
) -> tuple[Indices, Indices, F64]:
    """Pairs (reference index, candidate index, IoU) of the same class, reference taken by confidence."""
    order = np.argsort(-reference.confidence, kind="stable")
    iou = box_iou_batch(reference.xyxy[order], candidate.xyxy)
    iou[reference.class_id[order][:, None] != candidate.class_id[None, :]] = 0.0
    rows, cols = match_greedy(iou, iou_threshold)
    return order[rows], cols, iou[rows, cols]


@dataclass
class DriftStats:
    """Float-vs-INT8 differences accumulated over frames; :meth:`summary` gives the report fields."""

    confident: float = CONFIDENT
    frames: int = 0
    float_count: int = 0
    int8_count: int = 0
    confident_count: int = 0
    confident_matched: int = 0
    iou: list[F64] = field(default_factory=list)
    confidence_change: list[npt.NDArray[np.float32]] = field(default_factory=list)
    corner_shift: list[npt.NDArray[np.float32]] = field(default_factory=list)
    latency_s: dict[str, list[float]] = field(default_factory=lambda: {"float": [], "int8": []})
    class_counts: dict[str, npt.NDArray[np.int64]] = field(default_factory=dict)

    def add(self, reference: Detections, candidate: Detections, num_classes: int) -> None:
        ref, cand, iou = match_detections(reference, candidate)
        self.frames += 1
        self.float_count += len(reference)
        self.int8_count += len(candidate)
        confident = reference.confidence >= self.confident
        self.confident_count += int(confident.sum())
        self.confident_matched += int(confident[ref].sum())
        self.iou.append(iou)
        self.confidence_change.append(np.abs(candidate.confidence[cand] - reference.confidence[ref]))
        corners = (candidate.xyxy[cand] - reference.xyxy[ref]).reshape(-1, 2, 2)
        self.corner_shift.append(np.linalg.norm(corners, axis=2).mean(axis=1))
        found = {"float": reference.class_id, "int8": candidate.class_id, "matched": reference.class_id[ref]}
        for key, ids in found.items():
            counts = np.bincount(ids, minlength=num_classes)[:num_classes]
            self.class_counts[key] = self.class_counts.get(key, np.zeros(num_classes, np.int64)) + counts

    def summary(self, class_names: Sequence[str]) -> dict[str, Any]:
        matched = int(sum(len(a) for a in self.iou))
        return {
            "frames": self.frames,
            "match_iou": MATCH_IOU,
            "float_detections": self.float_count,
            "int8_detections": self.int8_count,
            "matched": matched,
            "recall": _ratio(matched, self.float_count),
            "precision": _ratio(matched, self.int8_count),
            "confident_threshold": self.confident,
            "confident_float_detections": self.confident_count,
            "recall_confident": _ratio(self.confident_matched, self.confident_count),
            "mean_iou": _mean(self.iou),
            "mean_abs_confidence_change": _mean(self.confidence_change),
            "mean_corner_shift_px": _mean(self.corner_shift),
            "latency_ms": {name: _latency_ms(samples) for name, samples in self.latency_s.items()},
            "per_class": self._per_class(class_names),
        }

    def _per_class(self, class_names: Sequence[str]) -> dict[str, dict[str, int]]:
        """Counts for every class seen by either model."""
        if not self.class_counts:
            return {}
        seen = np.flatnonzero(self.class_counts["float"] + self.class_counts["int8"]).tolist()
        return {
            class_names[i]: {key: int(counts[i]) for key, counts in self.class_counts.items()} for i in seen
        }


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _mean(chunks: Sequence[npt.NDArray[Any]]) -> float | None:
    values = np.concatenate(chunks) if chunks else np.zeros(0)
    return round(float(values.mean()), 4) if values.size else None


def _latency_ms(samples: Sequence[float]) -> dict[str, float | None]:
    """Mean, p50, p90 and min: the min is the steadiest figure on a shared machine."""
    if not samples:
        return {"mean": None, "p50": None, "p90": None, "min": None}
    ms = np.asarray(samples) * 1000.0
    p50, p90 = np.percentile(ms, [50, 90])
    return {
        key: round(float(value), 2)
        for key, value in (("mean", ms.mean()), ("p50", p50), ("p90", p90), ("min", ms.min()))
    }


def compare_models(
    float_model: Detector, int8_model: Detector, frames: Iterable[npt.NDArray[np.uint8]]
) -> DriftStats:
    """Run both detectors on every frame (timing each call) and accumulate how far INT8 moved."""
    stats = DriftStats()
    num_classes = len(float_model.class_names)
    for frame in frames:
        started = time.perf_counter()
        reference = float_model(frame)
        middle = time.perf_counter()
        candidate = int8_model(frame)
        stats.latency_s["float"].append(middle - started)
        stats.latency_s["int8"].append(time.perf_counter() - middle)
        stats.add(reference, candidate, num_classes)
    return stats


# --- the whole command ---------------------------------------------------------------------------------


def quantize_model(
    model: Path,
    calib: Path,
    *,
    frames: int = DEFAULT_CALIBRATION_FRAMES,
    eval_frames: int = DEFAULT_EVALUATION_FRAMES,
    out: Path | None = None,
    report: Path | None = None,
    settings: QuantizeSettings | None = None,
) -> dict[str, Any]:
    """Quantize ``model`` on frames of ``calib``, write the INT8 ONNX, its card and the report; return it."""
    settings = settings or QuantizeSettings()
    require_quantization_tools()  # before any work, so a missing extra is the first thing said
    loaded = load_model(model)
    float_path = loaded.info.path
    out = out or default_output(model)
    card_path = out.with_suffix(".yaml")
    report = report or out.with_suffix(".report.json")
    check_targets(model, float_path, out, card_path)
    split = split_frames(count_frames(calib), frames, eval_frames)
    log.info("calibrating on %d frames of %s", len(split.calibration), calib)
    head, batches = quantize_onnx(loaded, iter_frames_at(calib, split.calibration), out, settings)
    calibration = f"{len(split.calibration)} frames of {calib.name}"
    write_card(
        int8_card(loaded.card, out, settings=settings, calibration=calibration, float_path=float_path),
        card_path,
    )
    document: dict[str, Any] = {
        "model": {
            "float": str(float_path),
            "int8": str(out),
            "int8_card": str(card_path),
            "float_mb": _megabytes(float_path),
            "int8_mb": _megabytes(out),
        },
        "settings": {"description": settings.describe(), **asdict(settings)},
        "head_in_float": {"nodes": head.names, "prediction_layers": head.prediction_layers},
        "calibration": {"source": str(calib), "frames": split.calibration, "batches": batches},
        "evaluation": {"source": str(calib), "frames": split.evaluation},
        "report": str(report),
    }
    if split.evaluation:
        document["drift"] = measure_drift(model, card_path, iter_frames_at(calib, split.evaluation))
    report.write_text(json.dumps(document, ensure_ascii=False, indent=1), encoding="utf-8")
    return document


def measure_drift(
    float_model: Path, int8_card_path: Path, frames: Iterable[npt.NDArray[np.uint8]]
) -> dict[str, Any]:
    """The drift fields of the report: both models, loaded as the daemon loads them, on ``frames``."""
    reference, candidate = Detector(float_model), Detector(int8_card_path)
    return compare_models(reference, candidate, frames).summary(reference.class_names)


def _megabytes(path: Path) -> float:
    return round(path.stat().st_size / 1e6, 2)


def format_report(document: dict[str, Any]) -> list[str]:
    """The report as lines for a terminal."""
    model = document["model"]
    head, calibration = document["head_in_float"], document["calibration"]
    lines = [
        f"INT8 model: {model['int8']} ({model['int8_mb']} MB; float {model['float_mb']} MB)",
        f"      card: {model['int8_card']}",
        f"  settings: {document['settings']['description']}",
        f"  in float: {len(head['nodes'])} head nodes, ending in {', '.join(head['prediction_layers'])}",
        f"calibrated: {len(calibration['frames'])} frames of {calibration['source']}",
    ]
    drift = document.get("drift")
    if drift is None:
        return [*lines, "no held-out frames left for the drift report", f"    report: {document['report']}"]
    latency = drift["latency_ms"]
    lines += [
        f"\nheld-out frames: {drift['frames']} (match: same class, IoU >= {drift['match_iou']})",
        f"{'':<36}{'float':>10}{'int8':>10}",
        f"{'detections':<36}{drift['float_detections']:>10}{drift['int8_detections']:>10}",
        f"{'latency ms, mean':<36}{_fmt(latency['float']['mean']):>10}{_fmt(latency['int8']['mean']):>10}",
        f"{'latency ms, p50':<36}{_fmt(latency['float']['p50']):>10}{_fmt(latency['int8']['p50']):>10}",
        f"{'latency ms, min':<36}{_fmt(latency['float']['min']):>10}{_fmt(latency['int8']['min']):>10}",
        f"{'recall of float detections':<36}{_fmt(drift['recall']):>20}",
        f"{'  of those >= ' + str(drift['confident_threshold']) + ' confident':<36}"
        f"{_fmt(drift['recall_confident']):>20}",
        f"{'precision':<36}{_fmt(drift['precision']):>20}",
        f"{'mean IoU of matched pairs':<36}{_fmt(drift['mean_iou']):>20}",
        f"{'mean |confidence change|':<36}{_fmt(drift['mean_abs_confidence_change']):>20}",
        f"{'mean box-corner shift, px':<36}{_fmt(drift['mean_corner_shift_px']):>20}",
        f"report: {document['report']}",
    ]
    return lines


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


CalibOption = Annotated[Path, typer.Option("--calib", help="Video or folder of images from the cameras.")]
FramesOption = Annotated[int, typer.Option(min=1, help="Calibration frames, spread evenly over --calib.")]
EvalFramesOption = Annotated[int, typer.Option(min=0, help="Held-out frames of --calib to compare on.")]
OutOption = Annotated[Path | None, typer.Option(help="INT8 ONNX (default: <stem>-int8.onnx beside MODEL).")]
ReportOption = Annotated[Path | None, typer.Option(help="Report JSON (default: <out>.report.json).")]
CalibrationOption = Annotated[Calibration, typer.Option(help="How activation ranges are chosen.")]
PercentileOption = Annotated[float, typer.Option(min=50, max=100, help="For --calibration percentile.")]
ActivationsOption = Annotated[Activations, typer.Option(help="Activation integer type.")]
PerChannelOption = Annotated[bool, typer.Option("--per-channel/--per-tensor", help="Weight scales.")]
ReduceRangeOption = Annotated[bool, typer.Option(help="7-bit weights (saturation on some CPUs).")]


def quantize_command(
    model: Annotated[Path, typer.Argument(help="Model card (.yaml) or float ONNX file.")],
    calib: CalibOption,
    frames: FramesOption = DEFAULT_CALIBRATION_FRAMES,
    eval_frames: EvalFramesOption = DEFAULT_EVALUATION_FRAMES,
    out: OutOption = None,
    report: ReportOption = None,
    calibration: CalibrationOption = QuantizeSettings.calibration,
    percentile: PercentileOption = QuantizeSettings.percentile,
    activations: ActivationsOption = QuantizeSettings.activations,
    per_channel: PerChannelOption = QuantizeSettings.per_channel,
    reduce_range: ReduceRangeOption = QuantizeSettings.reduce_range,
) -> None:
    """Make a static INT8 model (head kept in float) and report how far its detections move."""
    from detector.cli import user_errors  # here, not at the top: detector.cli registers this command

    with user_errors():
        settings = QuantizeSettings(activations, calibration, percentile, per_channel, reduce_range)
        document = quantize_model(
            model, calib, frames=frames, eval_frames=eval_frames, out=out, report=report, settings=settings
        )
        for line in format_report(document):
            typer.echo(line)
