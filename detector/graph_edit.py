"""Rewrite a fixed-shape detector ONNX graph: a dynamic batch axis, or another (rectangular) input size.

Ultralytics' static exports (batch 1, square input) bake both into a few constants: the head's
``Reshape`` targets start with the batch (``[1, 64, -1]``, ``[1, 4, 16, 8400]``) and the decode's anchor
points and strides are initializers computed for one input size. When the weights are gone (the bundled
demo model's ``.pt`` was a training run's scratch file) the graph can still be changed:

* dynamic batch: every ``Reshape`` of an activation whose target starts with 1 takes the input's own
  batch instead (``0`` = copy that axis), and the graph's input and output batch axes become ``batch``;
* input size: the anchor points ``[1, 2, N]`` and strides ``[1, N]`` are recomputed for the new grid
  (after checking the old ones are exactly Ultralytics' for the old size) and fixed anchor counts in
  ``Reshape`` targets become ``-1``; YOLOX's raw grid output needs only the input dims changed.

Nothing is trusted: :func:`check_rewrite` runs the original and the rewritten graph and compares them
(batch: every row of a batch equals the same image alone; size: the rewritten graph runs and gives
the expected anchor count). A graph that holds the batch or size anywhere else fails that check.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnx
from onnx import ModelProto, numpy_helper

from detector.errors import DetectorError

STRIDES = (8, 16, 32)
BATCH_AXIS = "batch"


class GraphEditError(DetectorError):
    """The graph holds a shape this tool cannot rewrite, or the rewritten graph computes something else."""


def _reachable_from_inputs(model: ModelProto) -> set[str]:
    """Tensors computed from the graph's inputs (activations), as opposed to weights and constants."""
    live = {i.name for i in model.graph.input} - {i.name for i in model.graph.initializer}
    for node in model.graph.node:  # nodes are topologically sorted in a valid ONNX graph
        if any(name in live for name in node.input):
            live.update(node.output)
    return live


def _constants(model: ModelProto) -> dict[str, onnx.TensorProto]:
    found = {i.name: i for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            found[node.output[0]] = node.attribute[0].t
    return found


def _replace_tensor(model: ModelProto, name: str, value: npt.NDArray[np.generic]) -> None:
    new = numpy_helper.from_array(value, name)
    for i, init in enumerate(model.graph.initializer):
        if init.name == name:
            model.graph.initializer[i].CopyFrom(new)
            return
    for node in model.graph.node:
        if node.op_type == "Constant" and node.output[0] == name:
            node.attribute[0].t.CopyFrom(new)
            return
    raise GraphEditError(f"constant {name} not found")


def _retarget(model: ModelProto, node: onnx.NodeProto, shape: npt.NDArray[np.int64], why: str) -> None:
    """Give ``node`` (a Reshape) its own new target ``shape``: the old constant may be shared."""
    name = f"{node.input[1]}_{why}_{len(model.graph.initializer)}"
    model.graph.initializer.append(numpy_helper.from_array(shape.astype(np.int64), name))
    node.input[1] = name


def _set_dim(dim: onnx.TensorShapeProto.Dimension, value: int | str) -> None:
    if isinstance(value, int):
        dim.dim_value = value
    else:
        dim.dim_param = value


def _io_shape(value: onnx.ValueInfoProto) -> list[int | str]:
    return [d.dim_param if d.dim_param else d.dim_value for d in value.type.tensor_type.shape.dim]


def make_batch_dynamic(model: ModelProto) -> ModelProto:
    """A copy of ``model`` whose batch axis is dynamic (see the module docstring); raises if it cannot be."""
    out = ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    if len(graph.input) != 1:
        raise GraphEditError(f"expected one image input, found {len(graph.input)}")
    if _io_shape(graph.input[0])[:1] not in ([1], [BATCH_AXIS]) and isinstance(
        _io_shape(graph.input[0])[0], int
    ):
        raise GraphEditError(f"input batch axis is {_io_shape(graph.input[0])[0]}, expected 1 or dynamic")
    live, consts = _reachable_from_inputs(out), _constants(out)
    for node in graph.node:
        if node.op_type != "Reshape" or node.input[0] not in live:
            continue
        if any(a.name == "allowzero" and a.i for a in node.attribute):
            raise GraphEditError(f"Reshape {node.name} has allowzero=1: 0 cannot copy the batch axis")
        target = consts.get(node.input[1])
        if target is None:
            continue  # a computed shape follows the input's own
        shape = numpy_helper.to_array(target).copy()
        if shape.size and shape[0] == 1:
            shape[0] = 0
            _retarget(out, node, shape, "batch")
    for value in (*graph.input, *graph.output):
        _set_dim(value.type.tensor_type.shape.dim[0], BATCH_AXIS)
    del graph.value_info[:]  # stale static shapes; ONNX Runtime infers its own
    _prune_initializers(out)
    return out


def ultralytics_anchors(
    size_hw: tuple[int, int], strides: Iterable[int] = STRIDES
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Ultralytics' ``make_anchors`` for a static export: points (1, 2, N) and strides (1, N)."""
    points, stride_rows = [], []
    for s in strides:
        h, w = size_hw[0] // s, size_hw[1] // s
        sy, sx = np.meshgrid(
            np.arange(h, dtype=np.float32) + 0.5, np.arange(w, dtype=np.float32) + 0.5, indexing="ij"
        )
        points.append(np.stack([sx.ravel(), sy.ravel()]))
        stride_rows.append(np.full(h * w, s, dtype=np.float32))
    return np.concatenate(points, axis=1)[None], np.concatenate(stride_rows)[None]


def resize_input(model: ModelProto, size_hw: tuple[int, int]) -> ModelProto:
    """A copy of ``model`` with input height and width ``size_hw`` (multiples of 32)."""
    if size_hw[0] % 32 or size_hw[1] % 32:
        raise GraphEditError(
            f"input size {size_hw[0]}x{size_hw[1]}: height and width must be multiples of 32"
        )
    out = ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    old = _io_shape(graph.input[0])
    if len(old) != 4 or not all(isinstance(d, int) for d in old[2:]):
        raise GraphEditError(f"input shape {old}: expected a static [batch, 3, height, width]")
    old_hw = (int(old[2]), int(old[3]))
    old_points, old_strides = ultralytics_anchors(old_hw)
    new_points, new_strides = ultralytics_anchors(size_hw)
    n_old, n_new = old_points.shape[2], new_points.shape[2]
    live, consts = _reachable_from_inputs(out), _constants(out)
    for name, tensor in consts.items():
        if name in live:
            continue
        value = numpy_helper.to_array(tensor)
        if n_old not in value.shape:
            continue
        if value.shape == old_points.shape and np.array_equal(value, old_points):
            _replace_tensor(out, name, new_points.astype(value.dtype))
        elif value.shape == old_strides.shape and np.array_equal(value, old_strides):
            _replace_tensor(out, name, new_strides.astype(value.dtype))
        else:
            raise GraphEditError(
                f"constant {name} {list(value.shape)} holds the anchor count {n_old} but is not Ultralytics' "
                "anchor points or strides for the old size; cannot recompute it"
            )
    for node in graph.node:
        if node.op_type == "Reshape" and node.input[0] in live and node.input[1] in consts:
            shape = numpy_helper.to_array(consts[node.input[1]]).copy()
            if n_old in shape.tolist():
                if -1 in shape.tolist():
                    raise GraphEditError(
                        f"Reshape {node.name} target {shape.tolist()}: cannot free the anchor axis"
                    )
                shape[shape.tolist().index(n_old)] = -1
                _retarget(out, node, shape, "anchors")
    dims = graph.input[0].type.tensor_type.shape.dim
    _set_dim(dims[2], size_hw[0])
    _set_dim(dims[3], size_hw[1])
    for value in graph.output:
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_value == n_old:  # the anchor (Ultralytics) or grid-cell (YOLOX) count
                dim.dim_value = n_new
    del graph.value_info[:]
    _prune_initializers(out)
    if _metadata(out).get("imgsz"):
        _set_metadata(out, "imgsz", str(list(size_hw)))
    return out


def _prune_initializers(model: ModelProto) -> None:
    """Drop initializers no node reads any more (the constants a rewrite replaced)."""
    used = {name for node in model.graph.node for name in node.input}
    keep = [i for i in model.graph.initializer if i.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)


def _metadata(model: ModelProto) -> dict[str, str]:
    return {p.key: p.value for p in model.metadata_props}


def _set_metadata(model: ModelProto, key: str, value: str) -> None:
    for prop in model.metadata_props:
        if prop.key == key:
            prop.value = value
            return
    if model.metadata_props:  # only Ultralytics-style files carry metadata; do not invent it for others
        model.metadata_props.add(key=key, value=value)


def _session(model: ModelProto) -> object:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(
        model.SerializeToString(), sess_options=options, providers=["CPUExecutionProvider"]
    )


def _input_hw(model: ModelProto) -> tuple[int, int]:
    shape = _io_shape(model.graph.input[0])
    return int(shape[2]), int(shape[3])


def check_rewrite(
    original: ModelProto, rewritten: ModelProto, images: npt.NDArray[np.float32], *, batch: int = 3
) -> float:
    """Compare ``rewritten`` with ``original`` on ``images`` (N, 3, H, W) of the original's size.

    The batch check: the rewritten graph at batch 1 gives the original's output exactly, and at
    ``batch`` rows of the same image each row equals it (a dynamically quantised graph scales per
    tensor, so only identical rows are comparable bit for bit). Returns the largest absolute difference.
    """
    a: object = _session(original)
    b: object = _session(rewritten)
    name = original.graph.input[0].name
    worst = 0.0
    for image in images:
        one = image[None]
        want = a.run(None, {name: one})[0]  # type: ignore[attr-defined]
        got = b.run(None, {name: one})[0]  # type: ignore[attr-defined]
        many = b.run(None, {name: np.repeat(one, batch, axis=0)})[0]  # type: ignore[attr-defined]
        if got.shape != want.shape or many.shape != (batch, *want.shape[1:]):
            raise GraphEditError(
                f"rewritten graph gives shapes {got.shape} / {many.shape}, expected {want.shape}"
            )
        worst = max(worst, float(np.abs(got - want).max()), float(np.abs(many - want).max()))
    scale = float(np.abs(want).max()) or 1.0
    if worst > 1e-4 * scale:
        raise GraphEditError(
            f"rewritten graph differs from the original by up to {worst:g} (outputs up to {scale:g})"
        )
    return worst


def check_resized(rewritten: ModelProto, size_hw: tuple[int, int], batch: int = 2) -> tuple[int, ...]:
    """Run the resized graph on a zero batch; its output must hold the new grid's anchor count."""
    name = rewritten.graph.input[0].name
    try:
        session: object = _session(rewritten)
        output = session.run(None, {name: np.zeros((batch, 3, *size_hw), np.float32)})[0]  # type: ignore[attr-defined]
    except Exception as exc:  # ONNX Runtime's shape inference or kernels reject the graph
        detail = str(exc).splitlines()[0]
        raise GraphEditError(
            "the graph holds its input size in more places than the anchors (e.g. an attention block's "
            f"reshapes), so it does not run at {size_hw[0]}x{size_hw[1]}: {detail}; export the weights at "
            f"that size instead (streetwatch models export WEIGHTS --imgsz {size_hw[0]},{size_hw[1]})"
        ) from exc
    anchors = sum((size_hw[0] // s) * (size_hw[1] // s) for s in STRIDES)
    if anchors not in output.shape:
        raise GraphEditError(
            f"resized graph output {list(output.shape)} lacks the {anchors} anchors of {size_hw}"
        )
    return tuple(output.shape)


def rewrite_file(
    source: Path,
    target: Path,
    *,
    dynamic_batch: bool = True,
    size_hw: tuple[int, int] | None = None,
    images: npt.NDArray[np.float32] | None = None,
) -> Path:
    """Rewrite ``source`` into ``target`` and check it (see :func:`check_rewrite`); returns ``target``."""
    try:
        original = onnx.load(str(source))
    except Exception as exc:  # protobuf decode errors have no common base
        raise GraphEditError(f"{source}: not an ONNX model ({exc})") from exc
    model = original
    if dynamic_batch:
        model = make_batch_dynamic(model)
        if images is None:
            rng = np.random.default_rng(0)
            images = rng.random((2, 3, *_input_hw(original)), dtype=np.float32)
        check_rewrite(original, model, images)
    if size_hw is not None:
        model = resize_input(model, size_hw)
        check_resized(model, size_hw, batch=2 if dynamic_batch else 1)
    target.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(target))
    return target


def metadata_imgsz(model: ModelProto) -> tuple[int, int] | None:
    raw = _metadata(model).get("imgsz")
    value = ast.literal_eval(raw) if raw else None
    return (int(value[0]), int(value[1])) if isinstance(value, list | tuple) and len(value) == 2 else None
