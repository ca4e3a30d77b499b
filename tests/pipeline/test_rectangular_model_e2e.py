"""The real-footage parking test with the YOLOX-Nano model rewritten to a 384x640 input (16:9 cameras):
the parked van still makes its one case, the passers-by and the parking lot none."""

from __future__ import annotations

from pathlib import Path

from detector.export import reshape_model
from tests.pipeline.live_store import LiveStore
from tests.pipeline.test_daemon_e2e import test_parked_van_makes_one_case_and_passers_by_none as parking


def test_parked_van_with_a_384x640_input(
    tmp_path: Path, store: LiveStore, yolox_card: Path, vtest_path: Path, car_video: Path
) -> None:
    _, card = reshape_model(yolox_card, tmp_path / "models" / "yolox-384x640.onnx", size_hw=(384, 640))
    assert "size_hw: [384, 640]" in card.read_text(encoding="utf-8")
    run = tmp_path / "run"
    run.mkdir()
    parking(run, store, card, vtest_path, car_video, "as_configured")
