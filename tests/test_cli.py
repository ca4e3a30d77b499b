"""The ``streetwatch`` command line as a user runs it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import av
import cv2
import numpy as np
from typer.testing import CliRunner

from pipeline.cli import check_config
from pipeline.preflight import no_camera_opens
from streetwatch.cli import app
from tests.conftest import REPO

runner = CliRunner()


def test_detect_image_writes_annotated_copy_and_json(
    tmp_path: Path, yolov8_int8: Path, vtest_frames: dict[int, np.ndarray]
) -> None:
    image = tmp_path / "in" / "gate.png"
    image.parent.mkdir()
    cv2.imwrite(str(image), vtest_frames[50])
    result = runner.invoke(
        app, ["detect", str(image), "--model", str(yolov8_int8), "--out", str(tmp_path / "out")]
    )
    assert result.exit_code == 0, result.output
    document = json.loads((tmp_path / "out" / "gate.json").read_text())
    names = [d["class_name"] for d in document["frames"][0]["detections"]]
    assert names.count("person") >= 3 and "truck" in names
    annotated = cv2.imread(str(tmp_path / "out" / "gate.jpg"))
    assert annotated.shape == vtest_frames[50].shape
    assert np.abs(annotated.astype(int) - vtest_frames[50].astype(int)).sum() > 0  # boxes were drawn


def test_detect_video_writes_annotated_video_and_per_frame_json(
    tmp_path: Path, yolox_card: Path, vtest_path: Path
) -> None:
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        [
            "detect",
            str(vtest_path),
            "-m",
            str(yolox_card),
            "--out",
            str(out),
            "--every",
            "10",
            "--max-frames",
            "6",
        ],
    )
    assert result.exit_code == 0, result.output
    document = json.loads((out / "vtest.json").read_text())
    assert [f["index"] for f in document["frames"]] == [0, 10, 20, 30, 40, 50]
    assert document["model"]["name"] == "yolox-nano-coco"
    assert all(any(d["class_name"] == "person" for d in f["detections"]) for f in document["frames"])
    with av.open(str(out / "vtest.mp4")) as container:
        decoded = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
    assert len(decoded) == 6 and decoded[0].shape == (576, 768, 3)


def test_detect_folder_handles_each_file(
    tmp_path: Path, yolox_card: Path, vtest_frames: dict[int, np.ndarray]
) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    for index in (0, 200):
        cv2.imwrite(str(folder / f"f{index}.jpg"), vtest_frames[index])
    result = runner.invoke(
        app, ["detect", str(folder), "-m", str(yolox_card), "--out", str(tmp_path / "o"), "--json-only"]
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["f0.json", "f200.json"]


def test_models_inspect_prints_layout_and_classes(yolox_card: Path) -> None:
    result = runner.invoke(app, ["models", "inspect", str(yolox_card), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["layout"] == "yolox"
    assert report["inputs"][0]["shape"] == [1, 3, 416, 416]
    assert report["outputs"][0]["shape"] == [1, 3549, 85]
    assert report["classes"][7] == "truck" and report["preprocessing"]["channel_order"] == "bgr"


def test_errors_are_one_clear_line_and_exit_code_2(tmp_path: Path, yolox_card: Path) -> None:
    missing = runner.invoke(app, ["detect", str(tmp_path / "nope.mp4"), "-m", str(yolox_card)])
    assert (
        missing.exit_code == 2 and "error:" in missing.output and "nope.mp4: no such file" in missing.output
    )
    not_video = tmp_path / "notes.txt"
    not_video.write_text("hello")
    bad = runner.invoke(app, ["detect", str(not_video), "-m", str(yolox_card), "--out", str(tmp_path / "o")])
    assert bad.exit_code == 2 and "notes.txt: cannot open as video" in bad.output
    bad_model = runner.invoke(app, ["models", "inspect", str(not_video)])
    assert bad_model.exit_code == 2 and "notes.txt: cannot load: expected an ONNX model" in bad_model.output


def _write_mkv(path: Path, frames: int = 50, fps: int = 10) -> None:
    """A small H.264 Matroska clip; a cut-off copy of it decodes a few frames and then just stops."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 5, np.uint8), format="bgr24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_detect_on_a_truncated_video_says_so_and_exits_2(tmp_path: Path) -> None:
    whole, cut = tmp_path / "whole.mkv", tmp_path / "cut.mkv"
    _write_mkv(whole)
    data = whole.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    model = str(REPO / "models" / "streetwatch-demo-n.onnx")
    options = ["-m", model, "--out", str(tmp_path / "out"), "--json-only"]
    ok = runner.invoke(app, ["detect", str(whole), *options])
    assert ok.exit_code == 0, ok.output
    result = runner.invoke(app, ["detect", str(cut), *options])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "cut.mkv: decoding stopped at " in errors[0], result.output
    assert re.search(r"stopped at \d+\.\d s of 5\.0 s \(frame \d+\): truncated or corrupt$", errors[0])


def _cut(source: Path, folder: Path, fraction: float = 0.5) -> Path:
    """A copy of ``source`` cut off after ``fraction`` of its bytes (a download or copy that stopped)."""
    cut = folder / f"cut-{source.name}"
    data = source.read_bytes()
    cut.write_bytes(data[: int(len(data) * fraction)])
    return cut


def test_detect_on_a_truncated_avi_says_how_much_was_read(tmp_path: Path, vtest_path: Path) -> None:
    cut = _cut(vtest_path, tmp_path)
    model = str(REPO / "models" / "streetwatch-demo-n.onnx")
    result = runner.invoke(
        app,
        ["detect", str(cut), "-m", model, "--out", str(tmp_path / "out"), "--json-only", "--every", "100"],
    )
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {cut}: decoding stopped at "), result.output
    _assert_read_about_half_of_vtest(errors[0])


def _assert_read_about_half_of_vtest(error: str) -> None:
    """Half of vtest.avi's bytes hold about half of its 79.5 s at 10 fps; the frame matches the time."""
    found = re.search(r"stopped at (\d+\.\d) s of 79\.5 s \(frame (\d+)\): truncated or corrupt$", error)
    assert found, error
    read_s, frame = float(found[1]), int(found[2])
    assert 30 < read_s < 50 and frame == round(read_s * 10), error


def _daemon_config(folder: Path, video: Path) -> Path:
    """A daemon configuration whose only camera is the file ``video``."""
    key = folder / "device.key"
    key.write_text("unused\n")
    key.chmod(0o600)
    config = {
        "detector": {
            "model": str(REPO / "models" / "streetwatch-demo-n.onnx"),
            "classes": {"car": "illegal_parking"},
        },
        "store": {
            "url": "http://127.0.0.1:9",
            "device_key_file": str(key),
            "outbox": str(folder / "outbox.sqlite"),
        },
        "cameras": [
            {
                "id": "gate",
                "url": str(video),
                "zones": [
                    {
                        "id": "z",
                        "place": "p1",
                        "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]],
                        "rules": {"illegal_parking": {"dwell_s": 30}},
                    }
                ],
            }
        ],
        "evidence": {"dir": str(folder / "evidence")},
    }
    path = folder / "daemon.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


def test_run_refuses_a_truncated_only_camera_saying_how_much_was_read(
    tmp_path: Path, vtest_path: Path
) -> None:
    whole = _daemon_config(tmp_path, vtest_path)
    assert no_camera_opens(check_config(whole)) is None  # the whole file would run
    cut = _cut(vtest_path, tmp_path)
    config = _daemon_config(tmp_path, cut)
    result = runner.invoke(app, ["run", "--config", str(config)])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    assert f"camera gate: {cut}: reading stopped at " in errors[0]
    _assert_read_about_half_of_vtest(errors[0])
    assert not (tmp_path / "outbox.sqlite").exists()  # refused before anything started


def test_run_refuses_an_unreadable_only_camera(tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    result = runner.invoke(app, ["run", "--config", str(_daemon_config(tmp_path, empty))])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"camera gate: {empty}: cannot open" in errors[0], result.output
