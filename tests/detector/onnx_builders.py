"""Tiny hand-built ONNX models with a known, constant output: golden inputs for decoders and errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

onnx = pytest.importorskip("onnx", reason="the dev extra installs onnx to build test models")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

ELEM_TYPES = {
    "float": TensorProto.FLOAT,
    "float16": TensorProto.FLOAT16,
    "int64": TensorProto.INT64,
    "uint8": TensorProto.UINT8,
}


def constant_output_model(
    path: Path,
    output: npt.NDArray[np.float32],
    *,
    input_shape: list[int | str] = [1, 3, 64, 64],  # noqa: B006 - read only
    input_type: str = "float",
    metadata: dict[str, str] | None = None,
    output_name: str = "output0",
) -> Path:
    """An ONNX model whose output is ``output`` for any input (the input only has to be fed)."""
    value = numpy_helper.from_array(output.astype(np.float32), name="value")
    graph = helper.make_graph(
        [
            # Add 0 * ReduceSum(input) so the input is genuinely consumed and validated by ONNX Runtime.
            helper.make_node("Cast", ["images"], ["images_f"], to=TensorProto.FLOAT),
            helper.make_node("ReduceSum", ["images_f"], ["total"], keepdims=0),
            helper.make_node("Mul", ["total", "zero"], ["nothing"]),
            helper.make_node("Add", ["value", "nothing"], [output_name]),
        ],
        "constant",
        [helper.make_tensor_value_info("images", ELEM_TYPES[input_type], input_shape)],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, list(output.shape))],
        initializer=[value, numpy_helper.from_array(np.zeros((), np.float32), name="zero")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for key, text in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, text
    onnx.save(model, str(path))
    return path


def ultralytics_metadata(
    names: list[str], imgsz: tuple[int, int], *, end2end: bool = False
) -> dict[str, str]:
    return {
        "names": repr(dict(enumerate(names))),
        "imgsz": repr(list(imgsz)),
        "stride": "32",
        "end2end": str(end2end),
        "author": "Ultralytics",
        "license": "AGPL-3.0 License (https://ultralytics.com/license)",
    }
