"""Zone sync against a real case store: the box polls with its device key and an ETag, converts the store's
zones (schedules included), falls back to its YAML where the store has none, keeps the last good answer on
disk for a start while the store is down, and ignores an answer it cannot use."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from pipeline.config import CameraConfig, StoreConfig
from pipeline.pusher import StoreClient
from pipeline.zone_sync import ZoneSync
from tests.pipeline.live_store import LiveStore

GATE = [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]]
YAML_ZONE = {
    "id": "local",
    "place": "local-place",
    "polygon": [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]],
    "rules": {"illegal_parking": {"dwell_s": 30}},
}


def local_cameras(*codes: str) -> list[CameraConfig]:
    return [CameraConfig.model_validate({"id": c, "url": f"{c}.mp4", "zones": [YAML_ZONE]}) for c in codes]


def client_for(store: LiveStore, tmp_path: Path, device: str, cameras: tuple[str, ...]) -> StoreClient:
    _, key = store.add_device(device, cameras=cameras)
    key_file = tmp_path / f"{device}.key"
    key_file.write_text(key, encoding="utf-8")
    key_file.chmod(0o600)
    return StoreClient(
        StoreConfig.model_validate({"url": store.url, "device_key_file": key_file, "timeout_s": 3})
    )


def put_zone(store: LiveStore, camera: str, code: str, **values: Any) -> None:
    """What the zone editor saves (through the same service the API uses)."""
    from api.reference.cameras import ZoneBody, put_zone

    body = {"place": store.world.place_key, "polygon": GATE, "rules": {}} | values
    with store.sessions.begin() as session:
        put_zone(session, camera, code, ZoneBody.model_validate(body))


def test_polls_converts_and_falls_back(store: LiveStore, tmp_path: Path) -> None:
    client = client_for(store, tmp_path, "box-1", ("cam-a", "cam-b"))
    sync = ZoneSync(client, local_cameras("cam-a", "cam-b", "cam-c"), tmp_path / "zones.json")
    first = sync.poll()
    assert first is not None, "the first answer is always new"
    assert {camera: [z.id for z in zones] for camera, zones in first.items()} == {
        "cam-a": ["local"],  # nothing in the store yet: the YAML's zones
        "cam-b": ["local"],
        "cam-c": ["local"],  # not in the store at all
    }
    assert sync.poll() is None  # 304: unchanged

    schedule = [{"days": [1, 2, 3, 4, 5], "start": "07:00", "end": "08:30"}]
    put_zone(store, "cam-a", "gate", rules={"illegal_parking": {"dwell_s": 45, "schedule": schedule}})
    changed = sync.poll()
    assert changed is not None
    [gate] = changed["cam-a"]
    assert (gate.id, gate.place, gate.polygon) == ("gate", store.world.place_key, [tuple(p) for p in GATE])
    assert gate.rules["illegal_parking"].dwell_s == 45
    assert gate.rules["illegal_parking"].schedule == "mon-fri 07:00-08:30"
    assert [z.id for z in changed["cam-b"]] == ["local"]
    assert sync.poll() is None

    # A zone without rules judges nothing: the camera keeps only the zones that do.
    put_zone(store, "cam-a", "empty")
    with_empty = sync.poll()
    assert with_empty is not None and [z.id for z in with_empty["cam-a"]] == ["gate"]


def test_a_device_gets_only_its_own_cameras_zones(store: LiveStore, tmp_path: Path) -> None:
    client_for(store, tmp_path, "box-2", ("cam-x",))
    put_zone(store, "cam-x", "theirs", rules={"illegal_parking": {"dwell_s": 10}})
    mine = client_for(store, tmp_path, "box-1", ("cam-a",))
    # box-1's YAML also names cam-x (a wrong config): it still never receives box-2's zones.
    zones = ZoneSync(mine, local_cameras("cam-a", "cam-x"), None).poll()
    assert zones is not None and [z.id for z in zones["cam-x"]] == ["local"]


def test_cache_serves_a_start_while_the_store_is_down(store: LiveStore, tmp_path: Path) -> None:
    client = client_for(store, tmp_path, "box-1", ("cam-a",))
    put_zone(store, "cam-a", "gate", rules={"illegal_parking": {"dwell_s": 20}})
    cache = tmp_path / "cache" / "zones.json"
    assert ZoneSync(client, local_cameras("cam-a"), cache).poll() is not None
    store.stop()
    restarted = ZoneSync(client, local_cameras("cam-a"), cache)
    assert restarted.poll() is None  # unreachable: nothing new, nothing lost
    cached = restarted.cached()
    assert cached is not None and [z.id for z in cached["cam-a"]] == ["gate"]
    store.start()
    assert restarted.poll() is None  # the cache's ETag still matches: 304


def test_an_unusable_answer_is_logged_and_ignored(
    store: LiveStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = client_for(store, tmp_path, "box-1", ("cam-a",))
    put_zone(store, "cam-a", "gate", rules={"illegal_parking": {"dwell_s": 20}})
    sync = ZoneSync(client, local_cameras("cam-a"), tmp_path / "zones.json")
    assert sync.poll() is not None
    # The store accepts any number of zones per camera; a box draws at most 64 into its masks.
    for i in range(64):
        put_zone(store, "cam-a", f"extra-{i:02d}", rules={"illegal_parking": {"dwell_s": 20}})
    with caplog.at_level(logging.ERROR, logger="pipeline.zone_sync"):
        assert sync.poll() is None
    assert "camera 'cam-a' has 65 zones; at most 64" in caplog.text
    assert "keeping the current ones" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="pipeline.zone_sync"):
        assert sync.poll() is None  # 304: the same broken version is not reported again
    assert caplog.text == ""
    cached = ZoneSync(client, local_cameras("cam-a"), tmp_path / "zones.json").cached()
    assert cached is not None and cached["cam-a"][0].rules["illegal_parking"].dwell_s == 20  # last good kept
