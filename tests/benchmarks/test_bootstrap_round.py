"""A tiny bootstrap round (benchmarks/bootstrap_round.py) so the loop never rots: two short generated clips
reviewed by the simulated operator through the real store, one training epoch at a tiny input size, the
model published, promoted and picked up by the daemon (a restart onto another class list), the unseen clip
and the demo clip run again. It asserts the loop's mechanics, never the accuracy targets (the full round
is measured by hand: benchmarks/README.md, Bootstrap round).

Slow (rendering, four daemon runs, training): marked ``e2e`` and ``train``.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from benchmarks import bootstrap_round

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.train,
    pytest.mark.skipif(importlib.util.find_spec("ultralytics") is None, reason="needs the train extra"),
]


def test_a_tiny_round_consumes_decisions_publishes_and_promotes_a_model_and_prints_the_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "round"
    tiny = "--clips 2 --unseen 1 --clip-s 80 --demo-s 80 --train-hours 0 --epochs 1 --imgsz 64 --batch 8"
    args = bootstrap_round.parse_args(["--out", str(out), *tiny.split(), "--truth-every-s", "20"])
    result = bootstrap_round.bootstrap_round(args)
    printed = capsys.readouterr().out
    # the operator's decisions reached the store and were consumed by the export
    assert sum(result["decisions"].values()) > 0 and result["decisions"].get("file", 0) > 0
    # a model trained on them, published and made live (the daemon restarted onto it: another class list)
    assert result["version_id"] >= 1 and Path(result["model"]).is_file()
    assert (out / "edge-after" / "models" / "staged.json").is_file()
    staged = json.loads((out / "edge-after" / "models" / "staged.json").read_text())
    assert staged["version_id"] == result["version_id"] and "stall" in staged["classes"]
    # one table: every class, before and after, the decisions and every step's wall time
    for kind in ("stall", "garbage", "parking"):
        assert any(line.startswith(kind) for line in printed.splitlines()), printed
    assert "operator decisions consumed:" in printed
    assert set(result["steps"]) == {"render", "before", "operator", "train", "after"}
    assert "garbage photos" in result["garbage_photos"]
    assert json.loads((out / "result.json").read_text())["version_id"] == result["version_id"]
    # the starting model has no stall or garbage class: no such case before the round
    for phase in ("unseen_before", "demo_before"):
        for kind in ("stall", "garbage"):
            assert result[phase][kind][0] == 0, result
