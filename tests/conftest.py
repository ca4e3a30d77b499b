"""Shared fixtures: the real footage and models in ../shared/data, Debian's vtest.avi, and the services
the tests talk to (PostgreSQL: tests/api/conftest.py; the MQTT broker: here). scripts/test.sh points the
STREETWATCH_TEST_* variables at private instances where the defaults are not reachable."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import NoReturn

import numpy as np
import numpy.typing as npt
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("STREETWATCH_SHARED_DATA", REPO.parent / "shared" / "data"))
VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
YOLOV8_INT8 = SHARED_DATA / "models" / "yolov8n_int8_coco.onnx"
YOLOX_NANO = SHARED_DATA / "models" / "yolox_nano_coco.onnx"
YOLOX_CARD = REPO / "models" / "yolox-nano-coco.yaml"
CAR_DETECTION = SHARED_DATA / "videos" / "car-detection.mp4"

os.environ.setdefault("YOLO_OFFLINE", "1")


def parse_host_port(value: str, variable: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise pytest.UsageError(f"{variable}={value!r}: expected HOST:PORT, e.g. 127.0.0.1:1883")
    return host, int(port)


MQTT_HOST, MQTT_PORT = parse_host_port(
    os.environ.get("STREETWATCH_TEST_MQTT", "127.0.0.1:1883"), "STREETWATCH_TEST_MQTT"
)


def service_missing(message: str) -> NoReturn:
    """A service the tests need is not reachable: a failure in CI, which must test it; a skip elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def mqtt_broker() -> tuple[str, int]:
    """The broker's (host, port); the MQTT tests subscribe and publish there."""
    try:
        socket.create_connection((MQTT_HOST, MQTT_PORT), timeout=3).close()
    except OSError as error:
        service_missing(f"no MQTT broker at {MQTT_HOST}:{MQTT_PORT} (STREETWATCH_TEST_MQTT): {error}")
    return MQTT_HOST, MQTT_PORT


def require(path: Path, why: str) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is missing ({why})")
    return path


@pytest.fixture(scope="session")
def yolov8_int8() -> Path:
    return require(YOLOV8_INT8, "shared/ data beside the checkout; present in CI")


@pytest.fixture(scope="session")
def yolox_nano() -> Path:
    return require(YOLOX_NANO, "shared/ data beside the checkout; present in CI")


@pytest.fixture(scope="session")
def yolox_card(yolox_nano: Path) -> Path:
    return YOLOX_CARD


def read_frames(path: Path, indices: list[int]) -> dict[int, npt.NDArray[np.uint8]]:
    """Decode the frames at ``indices`` (BGR) with PyAV."""
    import av

    wanted = set(indices)
    frames: dict[int, npt.NDArray[np.uint8]] = {}
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i in wanted:
                frames[i] = frame.to_ndarray(format="bgr24")
            if len(frames) == len(wanted):
                break
    return frames


@pytest.fixture(scope="session")
def vtest_path() -> Path:
    return require(VTEST, "apt-get install opencv-doc; the test command installs it")


@pytest.fixture(scope="session")
def vtest_frames(vtest_path: Path) -> dict[int, npt.NDArray[np.uint8]]:
    """Frames spread over the 79.5 s clip (10 fps)."""
    return read_frames(vtest_path, [0, 50, 200, 400, 600, 790])


@pytest.fixture(scope="session")
def car_video() -> Path:
    return require(CAR_DETECTION, "shared/ data beside the checkout; present in CI")
