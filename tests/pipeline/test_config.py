"""The daemon's configuration as a user meets it: ``streetwatch validate-config`` and ``streetwatch run``.

Every invalid configuration is reported as ``file:line: field: message`` with exit code 2, and an invalid
configuration never starts anything.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli import check_config
from pipeline.config import ConfigError
from pipeline.preflight import no_camera_opens
from streetwatch.cli import app
from tests.conftest import REPO

runner = CliRunner()


@pytest.fixture(autouse=True)
def box_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run from a folder holding the configs' device key file (secrets/device.key, mode 600)."""
    monkeypatch.chdir(tmp_path)
    key = tmp_path / "secrets" / "device.key"
    key.parent.mkdir()
    key.write_text("swd_0123456789ab_secret\n", encoding="utf-8")
    key.chmod(0o600)
    return tmp_path


# Line numbers matter: the table below names them.
BASE = """\
detector:
  model: @MODEL@
  classes:
    car: illegal_parking
    truck: illegal_parking
store:
  url: http://127.0.0.1:8000
  device_key_file: secrets/device.key
  outbox: @OUTBOX@
cameras:
  - id: cam-gate
    url: rtsp://127.0.0.1:8554/gate
    sample: {mode: fps, fps: 1}
    timezone: Asia/Shanghai
    zones:
      - id: gate-no-parking
        place: "110101001001001"
        polygon: [[0.55, 0.0], [1.0, 0.0], [1.0, 0.35], [0.55, 0.35]]
        rules:
          illegal_parking: {dwell_s: 30}
          street_stall: {dwell_s: 300, schedule: "mon-sun 06:00-22:00"}
"""

SECOND_CAMERA = """\
  - id: @ID@
    url: /dev/video0
    zones:
      - id: z1
        place: "110101001001002"
        polygon: [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]]
        rules:
          illegal_parking: {dwell_s: 30}
"""


def write_config(
    folder: Path, model: Path, *, replace: tuple[str, str] | None = None, append: str = ""
) -> Path:
    text = BASE + append
    if replace is not None:
        old, new = replace
        assert text.count(old) == 1, f"{old!r} must occur exactly once in the base config"
        text = text.replace(old, new)
    text = text.replace("@MODEL@", str(model)).replace("@OUTBOX@", str(folder / "outbox.sqlite"))
    path = folder / "daemon.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def validate(path: Path) -> tuple[int, str]:
    result = runner.invoke(app, ["validate-config", str(path)])
    return result.exit_code, result.output


def test_the_issue_example_validates_as_written(yolox_card: Path) -> None:
    code, output = validate(REPO / "configs" / "example.yaml")
    assert code == 0, output
    assert "1 cameras, 1 zones" in output


def test_the_vtest_demo_config_validates(yolox_card: Path) -> None:
    code, output = validate(REPO / "configs" / "vtest-demo.yaml")
    assert code == 0, output


def test_a_valid_config_passes(tmp_path: Path, yolox_card: Path) -> None:
    code, output = validate(write_config(tmp_path, yolox_card))
    assert code == 0, output
    assert f"{tmp_path / 'daemon.yaml'}: ok" in output


DUPLICATE_ZONE = """\
      - id: gate-no-parking
        place: "110101001001009"
        polygon: [[0.0, 0.0], [0.5, 0.0], [0.5, 0.5]]
        rules:
          illegal_parking: {dwell_s: 60}
"""


# (what, replace (old, new) or None, appended text, "line: field" expected, message fragment)
INVALID = [
    (
        "unknown key in a zone",
        ('        place: "110101001001001"\n', '        place: "110101001001001"\n        colour: red\n'),
        "",
        "18: cameras.0.zones.0.colour",
        "Extra inputs are not permitted",
    ),
    (
        "misspelt rule field",
        ("{dwell_s: 30}", "{dwel_s: 30}"),
        "",
        "20: cameras.0.zones.0.rules.illegal_parking.dwel_s",
        "Extra inputs are not permitted",
    ),
    (
        "camera URL with an unsupported scheme",
        ("rtsp://127.0.0.1:8554/gate", "ftp://127.0.0.1/gate.mp4"),
        "",
        "12: cameras.0.url",
        "unsupported URL scheme 'ftp'",
    ),
    ("unknown top-level key", None, "metric: {port: 9}\n", "22: metric", "Extra inputs are not permitted"),
    (
        "polygon corner outside the image",
        ("[1.0, 0.0], [1.0, 0.35]", "[1.2, 0.0], [1.0, 0.35]"),
        "",
        "18: cameras.0.zones.0.polygon.1.0",
        "less than or equal to 1",
    ),
    (
        "polygon with two corners",
        ("[[0.55, 0.0], [1.0, 0.0], [1.0, 0.35], [0.55, 0.35]]", "[[0.55, 0.0], [1.0, 0.35]]"),
        "",
        "18: cameras.0.zones.0.polygon",
        "at least 3 items",
    ),
    (
        "polygon corner with three numbers",
        ("[1.0, 0.0], [1.0, 0.35]", "[1.0, 0.0, 0.5], [1.0, 0.35]"),
        "",
        "18: cameras.0.zones.0.polygon.1",
        "at most 2 items",
    ),
    (
        "schedule with an hour past 24",
        ("06:00-22:00", "06:00-25:00"),
        "",
        "21: cameras.0.zones.0.rules.street_stall.schedule",
        "25:00 is not a time of day",
    ),
    (
        "schedule with an unknown day",
        ("mon-sun 06:00", "mon-fun 06:00"),
        "",
        "21: cameras.0.zones.0.rules.street_stall.schedule",
        "unknown day",
    ),
    (
        "unknown time zone",
        ("Asia/Shanghai", "Mars/Olympus_Mons"),
        "",
        "14: cameras.0.timezone",
        "unknown time zone 'Mars/Olympus_Mons'",
    ),
    (
        "duplicate camera id",
        None,
        SECOND_CAMERA.replace("@ID@", "cam-gate"),
        "10: cameras",
        "camera id 'cam-gate' appears twice",
    ),
    (
        "duplicate zone id",
        None,
        DUPLICATE_ZONE,
        "15: cameras.0.zones",
        "zone id 'gate-no-parking' appears twice",
    ),
    (
        "missing model file",
        ("@MODEL@", "/nonexistent/streetwatch-demo-n.onnx"),
        "",
        "2: detector.model",
        "model file not found",
    ),
    (
        "class the model does not have",
        ("    car: illegal_parking\n", "    carr: illegal_parking\n"),
        "",
        "4: detector.classes.carr",
        "'carr' is not a class of model yolox-nano-coco.yaml",
    ),
    (
        "unknown sampling mode",
        ("{mode: fps, fps: 1}", "{mode: every_frame}"),
        "",
        "13: cameras.0.sample",
        "does not match any of the expected tags",
    ),
    (
        "dwell of zero",
        ("{dwell_s: 30}", "{dwell_s: 0}"),
        "",
        "20: cameras.0.zones.0.rules.illegal_parking.dwell_s",
        "",
    ),
    ("store url without scheme", ("http://127.0.0.1:8000", "127.0.0.1:8000"), "", "7: store.url", ""),
    (
        "event writer share of a core above one",
        None,
        "scheduler:\n  event_cpu_share: 1.5\n",
        "23: scheduler.event_cpu_share",
        "less than or equal to 1",
    ),
    (
        "camera id with a space",
        ("id: cam-gate", "id: cam gate"),
        "",
        "11: cameras.0.id",
        "should match pattern",
    ),
]


@pytest.mark.parametrize(
    ("replace", "append", "where", "message"),
    [pytest.param(r, a, w, m, id=name) for name, r, a, w, m in INVALID],
)
def test_invalid_config_names_file_line_and_field(
    tmp_path: Path,
    yolox_card: Path,
    replace: tuple[str, str] | None,
    append: str,
    where: str,
    message: str,
) -> None:
    path = write_config(tmp_path, yolox_card, replace=replace, append=append)
    code, output = validate(path)
    assert code == 2, output
    assert f"{path}:{where}:" in output, output
    assert message in output
    assert "Traceback" not in output


def test_every_problem_is_reported_at_once(tmp_path: Path, yolox_card: Path) -> None:
    text = BASE.replace("@MODEL@", str(yolox_card)).replace("@OUTBOX@", str(tmp_path / "o.sqlite"))
    text = text.replace("Asia/Shanghai", "Nowhere/City").replace("{dwell_s: 30}", "{dwel_s: 30}")
    path = tmp_path / "two.yaml"
    path.write_text(text, encoding="utf-8")
    code, output = validate(path)
    assert code == 2
    assert f"{path}:14: cameras.0.timezone:" in output
    assert f"{path}:20: cameras.0.zones.0.rules.illegal_parking.dwel_s:" in output


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("detector: [unclosed\n", ":2:1: invalid YAML"),
        ("- just\n- a list\n", ":1: the configuration must be a YAML mapping"),
    ],
    ids=["yaml syntax", "not a mapping"],
)
def test_unreadable_config_is_one_clear_line(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    code, output = validate(path)
    assert code == 2
    assert f"{path}{expected}" in output


def test_missing_config_file(tmp_path: Path) -> None:
    code, output = validate(tmp_path / "absent.yaml")
    assert code == 2
    assert "configuration file not found" in output


def test_card_naming_a_missing_onnx_file(tmp_path: Path) -> None:
    card = tmp_path / "demo.yaml"
    card.write_text("name: demo\npath: gone.onnx\nlayout: yolox\n", encoding="utf-8")
    code, output = validate(write_config(tmp_path, card))
    assert code == 2
    assert f"{tmp_path / 'daemon.yaml'}:2: detector.model:" in output
    assert f"{tmp_path / 'gone.onnx'}: model file not found" in output


def test_run_refuses_an_invalid_config_before_starting_anything(tmp_path: Path, yolox_card: Path) -> None:
    path = write_config(tmp_path, yolox_card, replace=("Asia/Shanghai", "Nowhere/City"))
    result = runner.invoke(app, ["run", "--config", str(path)])
    assert result.exit_code == 2, result.output
    assert f"{path}:14: cameras.0.timezone:" in result.output
    assert not (tmp_path / "outbox.sqlite").exists()  # no outbox opened, no thread started


def test_check_config_raises_config_error_with_every_line(tmp_path: Path, yolox_card: Path) -> None:
    path = write_config(
        tmp_path, yolox_card, replace=("    truck: illegal_parking\n", "    lorry: illegal_parking\n")
    )
    with pytest.raises(ConfigError, match=r":5: detector\.classes\.lorry: 'lorry' is not a class"):
        check_config(path)


def test_run_with_a_missing_device_key_file_exits_2_naming_it(tmp_path: Path, yolox_card: Path) -> None:
    path = write_config(tmp_path, yolox_card, replace=("secrets/device.key", str(tmp_path / "absent.key")))
    result = runner.invoke(app, ["run", "--config", str(path)])
    assert result.exit_code == 2, result.output
    assert f"store.device_key_file {tmp_path / 'absent.key'}: file not found" in result.output
    assert not (tmp_path / "evidence").exists()


@pytest.mark.parametrize(
    ("replace", "where"),
    [
        pytest.param(("{mode: fps, fps: 1}", "{mode: fps, fps: 0.04}"), "13", id="one frame per 25 s"),
        pytest.param(
            ("    timezone: Asia/Shanghai\n", "    timezone: Asia/Shanghai\n    max_skip_s: 30\n"),
            "15",
            id="scene-change skip of 30 s",
        ),
    ],
)
def test_sampling_sparser_than_the_gap_tolerance_is_refused(
    tmp_path: Path, yolox_card: Path, replace: tuple[str, str], where: str
) -> None:
    # With the default 20 s gap tolerance, a stay would reset between two analysed frames.
    path = write_config(tmp_path, yolox_card, replace=replace)
    code, output = validate(path)
    assert code == 2, output
    assert f"{path}:{where}: cameras.0:" in output and "gap_tolerance_s = 20 s" in output, output


# --- what the configuration refers to on this box: camera files, device key file, model -------------


def test_a_missing_camera_file_is_named_with_its_line(tmp_path: Path, yolox_card: Path) -> None:
    missing = tmp_path / "gone.mp4"
    path = write_config(tmp_path, yolox_card, replace=("rtsp://127.0.0.1:8554/gate", str(missing)))
    code, output = validate(path)
    assert code == 2, output
    assert f"{path}:12: cameras.0.url: {missing}: cannot open:" in output


def test_a_camera_file_that_is_not_a_video_is_refused(tmp_path: Path, yolox_card: Path) -> None:
    notes = tmp_path / "notes.mp4"
    notes.write_text("not a video at all\n" * 50, encoding="utf-8")
    path = write_config(tmp_path, yolox_card, replace=("rtsp://127.0.0.1:8554/gate", str(notes)))
    code, output = validate(path)
    assert code == 2, output
    assert f"{path}:12: cameras.0.url: {notes}:" in output


def test_a_readable_camera_file_passes(tmp_path: Path, yolox_card: Path, vtest_path: Path) -> None:
    path = write_config(tmp_path, yolox_card, replace=("rtsp://127.0.0.1:8554/gate", str(vtest_path)))
    code, output = validate(path)
    assert code == 0, output


def test_a_missing_device_key_file_is_an_error(tmp_path: Path, yolox_card: Path) -> None:
    (tmp_path / "secrets" / "device.key").unlink()
    path = write_config(tmp_path, yolox_card)
    code, output = validate(path)
    assert code == 2, output
    assert f"{path}:8: store.device_key_file: secrets/device.key: file not found" in output


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_a_device_key_file_others_can_read_is_an_error(tmp_path: Path, yolox_card: Path, mode: int) -> None:
    (tmp_path / "secrets" / "device.key").chmod(mode)
    path = write_config(tmp_path, yolox_card)
    code, output = validate(path)
    assert code == 2, output
    expected = f"{path}:8: store.device_key_file: secrets/device.key: mode {mode:o} lets group or others"
    assert expected in output
    assert "chmod 600 secrets/device.key" in output
    assert "swd_0123456789ab_secret" not in output  # the key itself is never printed


def test_a_model_onnx_runtime_cannot_load_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "broken.onnx").write_bytes(b"\x00not an onnx protobuf" * 20)
    card = tmp_path / "broken.yaml"
    card.write_text("name: broken\npath: broken.onnx\nlayout: yolox\nclasses: [car, truck]\n")
    code, output = validate(write_config(tmp_path, card))
    assert code == 2, output
    assert f"{tmp_path / 'daemon.yaml'}:2: detector.model: {tmp_path / 'broken.onnx'}: cannot load" in output


def test_run_refuses_when_every_camera_is_a_file_and_none_opens(tmp_path: Path, yolox_card: Path) -> None:
    missing = tmp_path / "gone.mp4"
    path = write_config(tmp_path, yolox_card, replace=("rtsp://127.0.0.1:8554/gate", str(missing)))
    result = runner.invoke(app, ["run", "--config", str(path)])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.output
    assert "no camera can be opened (all are files): camera cam-gate: " in lines[0]
    assert str(missing) in lines[0]
    assert not (tmp_path / "outbox.sqlite").exists()  # nothing started


def test_a_live_camera_beside_missing_files_is_left_to_retry(tmp_path: Path, yolox_card: Path) -> None:
    path = write_config(
        tmp_path,
        yolox_card,
        replace=("rtsp://127.0.0.1:8554/gate", str(tmp_path / "gone.mp4")),
        append=SECOND_CAMERA.replace("@ID@", "cam-usb"),
    )
    assert no_camera_opens(check_config(path)) is None


def test_one_camera_file_that_opens_is_enough_to_run(
    tmp_path: Path, yolox_card: Path, vtest_path: Path
) -> None:
    second = SECOND_CAMERA.replace("@ID@", "cam-file").replace("/dev/video0", str(vtest_path))
    path = write_config(
        tmp_path,
        yolox_card,
        replace=("rtsp://127.0.0.1:8554/gate", str(tmp_path / "gone.mp4")),
        append=second,
    )
    assert no_camera_opens(check_config(path)) is None
