"""ONNX Runtime sessions: providers (with their options) and a logged or refused fallback, thread pools and
spinning, clear file errors."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import onnxruntime as ort

from detector.errors import DetectorError, ModelFileError

log = logging.getLogger(__name__)

ProviderName = Literal["cpu", "cuda", "tensorrt", "openvino"]

# Each choice lists the ONNX Runtime providers to try, best first; CPU always closes the chain.
PROVIDER_CHAINS: dict[str, tuple[str, ...]] = {
    "cpu": ("CPUExecutionProvider",),
    "cuda": ("CUDAExecutionProvider", "CPUExecutionProvider"),
    "tensorrt": ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"),
    "openvino": ("OpenVINOExecutionProvider", "CPUExecutionProvider"),
}
PROVIDER_NAMES: dict[str, str] = {short: chain[0] for short, chain in PROVIDER_CHAINS.items()}
CPU = "CPUExecutionProvider"
SPINNING_KEYS = ("session.intra_op.allow_spinning", "session.inter_op.allow_spinning")

# A JSON list of {"name": ..., "options": {...}} that replaces the configured providers in every session this
# process opens: how benchmarks/bench_gpu.py puts the pipeline benchmark's trial processes on a GPU.
PROVIDERS_ENV = "STREETWATCH_ORT_PROVIDERS"

ONNX_MAGIC_HINT = "expected an ONNX model (a protobuf ModelProto, usually *.onnx)"


class ProviderError(DetectorError):
    """A configured execution provider is not in this ONNX Runtime build or failed, and fallback is off."""


@dataclass(frozen=True)
class ProviderSpec:
    """One execution provider to try: ``cpu``/``cuda``/``tensorrt``/``openvino`` or ONNX Runtime's own name,
    with its provider options (e.g. ``device_id``, ``trt_fp16_enable``, ``trt_engine_cache_path``)."""

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ort_name(self) -> str:
        return PROVIDER_NAMES.get(self.name, self.name)

    def ort_options(self) -> dict[str, str]:
        """Options as ONNX Runtime takes them (strings; booleans as ``True``/``False``)."""
        return {str(k): str(v) for k, v in self.options.items()}


@dataclass(frozen=True)
class SessionSettings:
    """How the daemon's (or a benchmark's) ONNX Runtime session runs.

    Args:
        intra_op_threads, inter_op_threads: thread pools (None: ONNX Runtime's default, one per core).
        allow_spinning: False stops the pools' threads spin-waiting for work between runs (they sleep);
            None keeps ONNX Runtime's default (spinning on).
        execution_mode: ``sequential`` (default) or ``parallel`` (independent branches on the inter-op pool).
        providers: providers with options, best first; empty: the ``provider`` shorthand's chain.
        fallback: True: a provider that is not installed or fails to initialise is skipped with a warning
            and CPU closes the chain; False: that is an error (:class:`ProviderError`).
    """

    intra_op_threads: int | None = None
    inter_op_threads: int | None = None
    allow_spinning: bool | None = None
    execution_mode: Literal["sequential", "parallel"] | None = None
    providers: tuple[ProviderSpec, ...] = ()
    fallback: bool = True

    def describe(self) -> str:
        intra, inter = self.intra_op_threads or "default", self.inter_op_threads or "default"
        threads = f"intra-op threads {intra}, inter-op {inter}"
        spinning = {None: "default", True: "on", False: "off"}[self.allow_spinning]
        return f"{threads}, spinning {spinning}, execution {self.execution_mode or 'default'}"


def session_options(settings: SessionSettings) -> ort.SessionOptions:
    """The ``SessionOptions`` for ``settings`` (graph optimisations always on)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if settings.intra_op_threads is not None:
        options.intra_op_num_threads = settings.intra_op_threads
    if settings.inter_op_threads is not None:
        options.inter_op_num_threads = settings.inter_op_threads
    if settings.allow_spinning is not None:
        for key in SPINNING_KEYS:
            options.add_session_config_entry(key, "1" if settings.allow_spinning else "0")
    if settings.execution_mode is not None:
        options.execution_mode = (
            ort.ExecutionMode.ORT_PARALLEL
            if settings.execution_mode == "parallel"
            else ort.ExecutionMode.ORT_SEQUENTIAL
        )
    return options


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


def resolve_provider_specs(
    specs: Sequence[ProviderSpec], *, fallback: bool
) -> list[tuple[str, dict[str, str]]]:
    """ONNX Runtime's ``providers`` argument for ``specs``: missing ones skipped (warned) or refused."""
    available = ort.get_available_providers()
    chosen: list[tuple[str, dict[str, str]]] = []
    for spec in specs:
        if spec.ort_name not in available:
            problem = (
                f"execution provider {spec.name!r} ({spec.ort_name}) is not in this ONNX Runtime build "
                f"(available: {', '.join(sorted(available))})"
            )
            if not fallback:
                raise ProviderError(
                    f"detector.providers: {problem}; install the matching onnxruntime package "
                    "(onnxruntime-gpu for CUDA/TensorRT) or set detector.provider_fallback: true"
                )
            log.warning("%s; skipping it", problem)
            continue
        chosen.append((spec.ort_name, spec.ort_options()))
    if fallback and CPU not in [name for name, _ in chosen]:
        chosen.append((CPU, {}))
    if not chosen:
        raise ProviderError("detector.providers: no execution provider left to run on")
    return chosen


def providers_from_env() -> tuple[ProviderSpec, ...] | None:
    """The providers :data:`PROVIDERS_ENV` names, or None when it is unset; a malformed value is an error."""
    raw = os.environ.get(PROVIDERS_ENV)
    if not raw:
        return None
    try:
        items = json.loads(raw)
        return tuple(ProviderSpec(str(i["name"]), dict(i.get("options", {}))) for i in items)
    except (ValueError, TypeError, KeyError) as exc:
        raise ProviderError(
            f"{PROVIDERS_ENV}={raw!r}: expected a JSON list like "
            '[{"name": "cuda", "options": {"device_id": 0}}] '
            f"({exc})"
        ) from exc


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
    settings: SessionSettings | None = None,
) -> Any:
    """An ``InferenceSession`` for ``path``; raises :class:`ModelFileError` for anything not ONNX.

    ``settings`` (threads, spinning, providers with options) wins over ``provider`` and the thread
    arguments, which remain for callers that need nothing else.
    """
    check_model_file(path)
    if settings is None:
        settings = SessionSettings(intra_op_threads=intra_op_threads, inter_op_threads=inter_op_threads)
    overridden = providers_from_env()
    if overridden is not None:
        log.warning("%s: providers set by %s: %s", path.name, PROVIDERS_ENV, [p.ort_name for p in overridden])
        settings = replace(settings, providers=overridden)
    options = session_options(settings)
    providers: list[Any]
    if settings.providers:
        providers = resolve_provider_specs(settings.providers, fallback=settings.fallback)
        wanted = providers[0][0]
    else:
        providers = resolve_providers(provider)
        wanted = providers[0]
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as exc:  # ORT raises its own untyped errors for bad protobufs
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if settings.providers and wanted.removesuffix("ExecutionProvider").lower() in detail.lower():
            raise ProviderError(f"{path}: ONNX Runtime could not start on {wanted}: {detail}") from exc
        raise ModelFileError(path, f"cannot load: {ONNX_MAGIC_HINT}; ONNX Runtime said: {detail}") from exc
    actual = session.get_providers()
    if actual and actual[0] != wanted:
        if settings.providers and not settings.fallback:
            raise ProviderError(
                f"{path}: {wanted} failed to initialise (ONNX Runtime runs on {actual[0]}) and "
                "detector.provider_fallback is false"
            )
        log.warning("%s: %s failed to initialise; running on %s", path, wanted, actual[0])
    provider_options = session.get_provider_options()
    log.info(
        "%s: running on %s (%s)",
        path.name,
        "; ".join(f"{p} {provider_options[p]}" if provider_options.get(p) else p for p in actual),
        settings.describe(),
    )
    return session
