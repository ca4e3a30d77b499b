"""The bundled demo model's card tells the truth: its held-out mAP is reproduced by ``streetwatch evaluate``,
and the evaluator agrees with Ultralytics' own validation of the same ONNX file.

The card's test split is regenerated from the seed and count in its reproduce command (only that split's
180 scenes: the generator gives every scene its own seed, so they are the files the card was measured on).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from datasets.evaluate import evaluate
from datasets.scenes.generate import write_dataset
from tests.conftest import REPO

CARD = REPO / "models" / "streetwatch-demo-n.yaml"
CARD_TEXT = CARD.read_text(encoding="utf-8")


def card_claim(pattern: str) -> float:
    found = re.search(pattern, CARD_TEXT)
    assert found, f"{CARD} does not state {pattern!r}"
    return float(found.group(1))


@pytest.fixture(scope="module")
def test_split(tmp_path_factory: pytest.TempPathFactory) -> Path:
    recipe = re.search(r"--count (\d+) --seed (\d+)", CARD_TEXT)
    assert recipe, f"{CARD} has no reproduce command with --count and --seed"
    count, seed = int(recipe.group(1)), int(recipe.group(2))
    out = tmp_path_factory.mktemp("demo-test-split")
    return write_dataset(out, count, seed, workers=2, only_split="test")


def test_evaluate_reproduces_the_cards_map(test_split: Path) -> None:
    ours = evaluate(CARD, test_split, split="test")
    assert ours.images == len(list((test_split.parent / "images" / "test").glob("*.jpg"))) > 100
    assert ours.map50 == pytest.approx(card_claim(r"Test split mAP50 ([0-9.]+)"), abs=0.01)
    assert ours.map50_95 == pytest.approx(
        card_claim(r"Test split mAP50 [0-9.]+, mAP50-95 ([0-9.]+)"), abs=0.01
    )


@pytest.mark.train
def test_evaluate_agrees_with_ultralytics_val_of_the_onnx(test_split: Path, tmp_path: Path) -> None:
    pytest.importorskip("ultralytics")
    from ultralytics import YOLO

    card = yaml.safe_load(CARD_TEXT)
    onnx = CARD.parent / card["path"]
    metrics = YOLO(str(onnx), task="detect").val(
        data=str(test_split),
        split="test",
        imgsz=card["input"]["size_hw"][0],
        batch=1,
        rect=False,  # the model's fixed input: a dynamic batch axis makes Ultralytics try rectangles
        conf=0.001,
        iou=0.7,
        device="cpu",
        plots=False,
        verbose=False,
        project=str(tmp_path / "runs"),
    )
    # Ultralytics scores every class above the threshold per box: the evaluator's matching protocol
    ours = evaluate(CARD, test_split, split="test", protocol="ultralytics")
    assert 0.2 < ours.map50 < 0.99  # a real, imperfect model
    assert ours.map50 == pytest.approx(float(metrics.box.map50), abs=0.02)
    assert ours.map50_95 == pytest.approx(float(metrics.box.map), abs=0.02)
