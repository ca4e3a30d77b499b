"""ONNX Runtime sessions: provider choice with a logged fallback, thread counts, clear file errors."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

import onnxruntime as ort

from detector.errors import ModelFileError

log = logging.getLogger(__name__)

ProviderName = Literal["cpu", "cuda", "tensorrt", "openvino"]

# Each choice lists the ONNX Runtime providers to try, best first; CPU always closes the chain.
PROVIDER_CHAINS: dict[str, tuple[str, ...]] = {
    "cpu": ("CPUExecutionProvider",),
    "cuda": ("CUDAExecutionProvider", "CPUExecutionProvider"),
    "tensorrt": ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"),
    "openvino": ("OpenVINOExecutionProvider", "CPUExecutionProvider"),
}

ONNX_MAGIC_HINT = "expected an ONNX model (a protobuf ModelProto, usually *.onnx)"


def resolve_providers(choice: str) -> list[str]:
    """The providers to ask ONNX Runtime for; warn when the requested one is not installed."""
    if choice not in PROVIDER_CHAINS:
        raise ValueError(f"unknown execution provider {choice!r}; expected one of {sorted(PROVIDER_CHAINS)}")
    available = set(ort.get_available_providers())
    chain = [p for p in PROVIDER_CHAINS[choice] if p in available]
    if chain[0] != PROVIDER_CHAINS[choice][0]:
        log.warning(
            "execution provider %r requested but %s is not installed (available: %s); using %s",
            choice,
            PROVIDER_CHAINS[choice][0],
            ", ".join(sorted(available)),
            chain[0],
        )
    return chain


def check_model_file(path: Path) -> None:
    if not path.exists():
        raise ModelFileError(path, "model file not found")
    if not path.is_file():
        raise ModelFileError(path, f"not a file; {ONNX_MAGIC_HINT}")


def create_session(
    path: Path,
    *,
    provider: str = "cpu",
    intra_op_threads: int | None = None,
    inter_op_threads: int | None = None,
) -> Any:
    """An ``InferenceSession`` for ``path``; raises :class:`ModelFileError` for anything not ONNX."""
    check_model_file(path)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if intra_op_threads is not None:
        options.intra_op_num_threads = intra_op_threads
    if inter_op_threads is not None:
        options.inter_op_num_threads = inter_op_threads
    providers = resolve_providers(provider)
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as exc:  # ORT raises its own untyped errors for bad protobufs
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelFileError(path, f"cannot load: {ONNX_MAGIC_HINT}; ONNX Runtime said: {detail}") from exc
    actual = session.get_providers()
    if actual and actual[0] != providers[0]:
        log.warning("%s: %s failed to initialise; running on %s", path, providers[0], actual[0])
    log.info("%s: running on %s", path.name, ", ".join(actual))
    return session
