"""ONNX Runtime session settings reach ONNX Runtime: threads, spinning, execution mode, providers with
options and the fallback policy; the daemon's configuration builds them."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from detector import Detector
from detector.session import ProviderError, ProviderSpec, SessionSettings, create_session
from pipeline.config import DetectorConfig
from tests.conftest import REPO

DEMO = REPO / "models" / "streetwatch-demo-n.yaml"
DEMO_ONNX = REPO / "models" / "streetwatch-demo-n.onnx"
CLASSES = {"car": "illegal_parking"}


def test_threads_spinning_and_mode_reach_the_session() -> None:
    settings = SessionSettings(
        intra_op_threads=1, inter_op_threads=2, allow_spinning=False, execution_mode="parallel"
    )
    options = create_session(DEMO_ONNX, settings=settings).get_session_options()
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (1, 2)
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert options.get_session_config_entry("session.inter_op.allow_spinning") == "0"
    assert options.execution_mode == ort.ExecutionMode.ORT_PARALLEL

    spinning = create_session(DEMO_ONNX, settings=SessionSettings(allow_spinning=True)).get_session_options()
    assert spinning.get_session_config_entry("session.intra_op.allow_spinning") == "1"
    default = create_session(DEMO_ONNX).get_session_options()
    with pytest.raises(RuntimeError, match="does not have configuration"):  # None: ORT's own default
        default.get_session_config_entry("session.intra_op.allow_spinning")


def test_the_daemons_detector_section_builds_the_settings() -> None:
    config = DetectorConfig.model_validate(
        {
            "model": DEMO,
            "classes": CLASSES,
            "intra_op_threads": 1,
            "allow_spinning": False,
            "providers": [{"name": "cpu", "options": {"use_arena": False}}],
        }
    )
    settings = config.session_settings()
    assert settings == SessionSettings(
        intra_op_threads=1,
        allow_spinning=False,
        execution_mode="sequential",
        providers=(ProviderSpec("cpu", {"use_arena": False}),),
        fallback=True,
    )
    assert settings.providers[0].ort_options() == {"use_arena": "False"}
    detector = Detector(DEMO, settings=settings)
    options = detector.session.get_session_options()
    assert options.intra_op_num_threads == 1
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert detector.providers == ["CPUExecutionProvider"]
    # the older spelling still works, and a contradiction is refused
    assert (
        DetectorConfig.model_validate({"model": DEMO, "classes": CLASSES, "threads": 2})
        .session_settings()
        .intra_op_threads
        == 2
    )
    with pytest.raises(ValueError, match="threads and intra_op_threads disagree"):
        DetectorConfig.model_validate(
            {"model": DEMO, "classes": CLASSES, "threads": 2, "intra_op_threads": 1}
        )


def test_the_provider_shorthand_keeps_its_chain() -> None:
    config = DetectorConfig.model_validate({"model": DEMO, "classes": CLASSES, "provider": "tensorrt"})
    names = [p.ort_name for p in config.session_settings().providers]
    assert names == ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(), reason="a CUDA build")
def test_cuda_on_a_cpu_build_falls_back_with_a_warning_or_refuses(caplog: pytest.LogCaptureFixture) -> None:
    cuda = (ProviderSpec("cuda", {"device_id": 0}),)
    with caplog.at_level(logging.WARNING, logger="detector.session"):
        session = create_session(DEMO_ONNX, settings=SessionSettings(providers=cuda, fallback=True))
    assert session.get_providers() == ["CPUExecutionProvider"]
    assert "'cuda' (CUDAExecutionProvider) is not in this ONNX Runtime build" in caplog.text

    with pytest.raises(ProviderError) as refused:
        create_session(DEMO_ONNX, settings=SessionSettings(providers=cuda, fallback=False))
    message = str(refused.value)
    assert "detector.providers: execution provider 'cuda'" in message
    assert "onnxruntime-gpu" in message and "detector.provider_fallback: true" in message


def test_the_start_log_names_providers_options_and_threads(caplog: pytest.LogCaptureFixture) -> None:
    settings = SessionSettings(intra_op_threads=1, allow_spinning=False, providers=(ProviderSpec("cpu"),))
    with caplog.at_level(logging.INFO, logger="detector.session"):
        create_session(DEMO_ONNX, settings=settings)
    assert "running on CPUExecutionProvider" in caplog.text
    assert "intra-op threads 1" in caplog.text and "spinning off" in caplog.text


def test_a_dynamic_batch_runs_in_one_session_call(tmp_path: Path) -> None:
    detector = Detector(DEMO, settings=SessionSettings(intra_op_threads=1))
    assert detector.fixed_batch is None  # the bundled demo model's batch axis is dynamic
    calls: list[tuple[int, ...]] = []
    real_run = detector.session.run

    class Recording:
        def run(self, outputs: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
            calls.append(next(iter(feeds.values())).shape)
            return real_run(outputs, feeds)  # type: ignore[no-any-return]

    frames = [np.full((360, 640, 3), v, np.uint8) for v in (0, 90, 180, 250)]
    alone = [detector(f) for f in frames]
    detector.session = Recording()
    together = detector.detect_batch(frames)
    assert calls == [(4, 3, 320, 320)]
    for a, b in zip(alone, together, strict=True):
        np.testing.assert_array_equal(a.xyxy, b.xyxy)


def test_the_environment_override_replaces_the_providers_and_names_a_bad_value(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("STREETWATCH_ORT_PROVIDERS", '[{"name": "cpu", "options": {"use_arena": false}}]')
    cuda_only = SessionSettings(providers=(ProviderSpec("cuda"),), fallback=False)
    with caplog.at_level(logging.WARNING, logger="detector.session"):
        session = create_session(DEMO_ONNX, settings=cuda_only)  # refused without the override
    assert session.get_providers() == ["CPUExecutionProvider"]
    assert "providers set by STREETWATCH_ORT_PROVIDERS" in caplog.text
    monkeypatch.setenv("STREETWATCH_ORT_PROVIDERS", "cuda")
    with pytest.raises(ProviderError, match="STREETWATCH_ORT_PROVIDERS='cuda': expected a JSON list"):
        create_session(DEMO_ONNX)
