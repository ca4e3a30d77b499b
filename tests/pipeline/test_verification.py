"""Verification by camera against a REAL case store: the device-scoped list of resolved cases shows only
the box's own cameras; a resolved case whose zone stays empty is verified with an after-picture, one whose
object is still there goes back for rework. Stream time is driven by the test, never by sleeping."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import httpx

from api.models import Role
from detector.detections import Detections
from pipeline.config import DaemonConfig
from pipeline.incidents import RuleEngine
from pipeline.outbox import Outbox
from pipeline.pusher import Pusher, StoreClient
from pipeline.verification import ResolvedCase, Verifier
from tests.api.builders import make_operators
from tests.pipeline.live_store import LiveStore
from tests.pipeline.test_evidence import make_detections, noise_frame
from tests.pipeline.test_outbox import make_jpeg, make_report

T0 = dt.datetime(2026, 5, 11, 1, 0, tzinfo=dt.UTC)
PLACE_A, PLACE_B, PLACE_C = "110101001001001", "110101001001002", "110101001001003"
NAMES = ["person", "bicycle", "car"]
FRAME = noise_frame(hw=(360, 640))
CAR_IN_ZONE = make_detections([(400, 60, 560, 160, 0.9, 2)])  # anchor (480, 160): inside z-gate
ABSENT_S = 60.0


def daemon_config(store_url: str, key_file: Path, tmp_path: Path) -> DaemonConfig:
    return DaemonConfig.model_validate(
        {
            "detector": {"model": "models/yolox-nano-coco.yaml", "classes": {"car": "illegal_parking"}},
            "store": {
                "url": store_url,
                "device_key_file": key_file,
                "outbox": tmp_path / "outbox.sqlite",
                "retry_base_s": 0.05,
                "retry_max_s": 0.4,
            },
            "cameras": [
                {
                    "id": "cam-1",
                    "url": "rtsp://127.0.0.1:8554/gate",
                    "zones": [
                        {
                            "id": "z-gate",
                            "place": PLACE_A,
                            "polygon": [[0.5, 0.0], [1.0, 0.0], [1.0, 0.5], [0.5, 0.5]],
                            "rules": {"illegal_parking": {"dwell_s": 30}},
                        }
                    ],
                }
            ],
            "evidence": {"dir": tmp_path / "evidence"},
            "verification": {"absent_s": ABSENT_S, "poll_interval_s": 60},
        }
    )


def headers(key: str) -> dict[str, str]:
    return {"X-Device-Key": key}


def report(store: LiveStore, key: str, idempotency_key: str, **overrides: Any) -> int:
    body = make_report(idempotency_key, **overrides).model_dump(mode="json")
    response = httpx.post(f"{store.url}/api/v1/cases", json=body, headers=headers(key))
    assert response.status_code in (200, 201), response.text
    case_id: int = response.json()["case_id"]
    return case_id


def listed(store: LiveStore, key: str, **params: str) -> list[int]:
    response = httpx.get(f"{store.url}/api/v1/devices/me/cases", params=params, headers=headers(key))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["count"] == len(body["data"])
    return [row["id"] for row in body["data"]]


# --- the device-scoped endpoint -----------------------------------------------------------------------


def test_a_device_lists_only_resolved_cases_on_its_own_cameras(store: LiveStore) -> None:
    _, key_1 = store.add_device("box-1", cameras=("cam-1",))
    _, key_2 = store.add_device("box-2", cameras=("cam-2",))
    own = report(store, key_1, "incident-own-0001", camera="cam-1", place=PLACE_A)
    other = report(store, key_2, "incident-other-001", camera="cam-2", place=PLACE_B)
    loose = report(
        store, key_1, "incident-loose-001", camera="cam-loose", place=PLACE_C, violation_type="street_stall"
    )
    # box-1 also sees box-2's place: its sighting joins box-2's case, but the case's camera stays box-2's
    shared = report(store, key_2, "incident-shared-01", camera="cam-2", place=PLACE_C)
    assert report(store, key_1, "incident-shared-02", camera="cam-1", place=PLACE_C) == shared
    unresolved = report(
        store, key_1, "incident-open-0001", camera="cam-1", place=PLACE_B, violation_type="street_stall"
    )
    for case_id in (own, other, loose, shared):
        store.resolve(case_id)

    assert listed(store, key_1) == [own, loose]
    assert listed(store, key_2) == [other, shared]
    assert listed(store, key_1, status="verified") == []
    assert unresolved not in listed(store, key_1)
    row = httpx.get(f"{store.url}/api/v1/devices/me/cases", headers=headers(key_1)).json()["data"][0]
    assert row == {
        "id": own,
        "status": "resolved",
        "camera": "cam-1",
        "zone": "z-gate",
        "place": PLACE_A,
        "violation_code": "0505",
        "violation_type": "illegal_parking",
        "resolved_at": row["resolved_at"],
        "rework_count": 0,
    }
    assert row["resolved_at"] is not None


def test_the_endpoint_is_for_devices_and_resolved_or_verified_only(store: LiveStore) -> None:
    _, key = store.add_device("box-1", cameras=("cam-1",))
    token = make_operators(store.sessions, [("admin", Role.ADMIN, None)])["admin"]
    url = f"{store.url}/api/v1/devices/me/cases"

    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"Authorization": f"Bearer {token}"}).status_code == 403
    assert httpx.get(url, params={"status": "pending_review"}, headers=headers(key)).status_code == 422
    assert httpx.get(url, params={"limit": 0}, headers=headers(key)).status_code == 422


# --- the verifier, end to end ------------------------------------------------------------------------


class Box:
    """One edge box's delivery and verification parts, on a real store, with a real rule engine."""

    def __init__(self, store: LiveStore, tmp_path: Path) -> None:
        _, key = store.add_device("box-1", cameras=("cam-1",))
        self.key_file = tmp_path / "device.key"
        self.key_file.write_text(key)
        self.key_file.chmod(0o600)
        self.config = daemon_config(store.url, self.key_file, tmp_path)
        self.outbox = Outbox(self.config.store.outbox)
        self.pusher = Pusher(self.outbox, self.config.store)
        self.rules = RuleEngine(self.config, NAMES)
        self.verifier = Verifier(
            self.config, self.outbox, self.rules.present, NAMES, client=StoreClient(self.config.store)
        )

    def report_case(self, store: LiveStore) -> int:
        self.outbox.put(
            make_report("incident-0001", camera="cam-1", zone="z-gate", place=PLACE_A),
            [("confirmation", make_jpeg(self.key_file.parent, 1))],
        )
        assert self.pusher.drain(20)
        item = self.outbox.get("incident-0001")
        assert item is not None and item.case_id is not None
        return item.case_id

    def run(
        self, seconds: float, detections: Detections, start: dt.datetime, step_s: float = 2.0
    ) -> list[Any]:
        """Frames every ``step_s`` of stream time from ``start``; the verifier's decisions with their time."""
        decisions = []
        t = start
        while t <= start + dt.timedelta(seconds=seconds):
            self.rules.update("cam-1", t, detections, FRAME.shape[:2])
            decisions += [(t, d) for d in self.verifier.observe("cam-1", t, FRAME, detections)]
            t += dt.timedelta(seconds=step_s)
        return decisions


def test_a_zone_that_stays_empty_verifies_the_case_with_an_after_picture(
    store: LiveStore, tmp_path: Path
) -> None:
    box = Box(store, tmp_path)
    case_id = box.report_case(store)
    store.resolve(case_id)

    assert box.verifier.poll_once() == 1 and box.verifier.watching == [case_id]
    decisions = box.run(ABSENT_S + 10, Detections.empty(), T0)

    assert [(t - T0, d.verdict, d.queued) for t, d in decisions] == [
        (dt.timedelta(seconds=ABSENT_S), "verify", True)
    ]
    assert box.verifier.watching == []
    assert box.pusher.drain(20)
    box.pusher.stop()
    assert store.case(case_id).status == "verified"
    assert [kind for kind, _ in store.evidence(case_id)] == ["confirmation", "after"]
    assert store.events(case_id)[-2:] == [("device:box-1", "evidence"), ("device:box-1", "verify")]
    assert box.verifier.poll_once() == 0  # no longer resolved


def test_an_object_still_there_sends_the_case_back_for_rework(store: LiveStore, tmp_path: Path) -> None:
    box = Box(store, tmp_path)
    case_id = box.report_case(store)
    store.resolve(case_id)
    box.verifier.poll_once()

    decisions = box.run(ABSENT_S + 30, CAR_IN_ZONE, T0)

    assert [d.verdict for _, d in decisions] == ["rework"]
    when, decision = decisions[0]
    assert decision.run_s >= ABSENT_S
    # the car only counts as present once it has stood for the rule engine's first-seen time
    assert ABSENT_S <= (when - T0).total_seconds() <= ABSENT_S + 10
    assert box.pusher.drain(20)
    box.pusher.stop()
    case = store.case(case_id)
    assert (case.status, case.rework_count, case.resolved_at) == ("dispatched", 1, None)
    assert [kind for kind, _ in store.evidence(case_id)] == ["confirmation", "after"]
    assert store.events(case_id)[-1] == ("device:box-1", "rework")


def test_a_verdict_the_store_no_longer_accepts_is_recorded_not_retried(
    store: LiveStore, tmp_path: Path
) -> None:
    """An operator verified the case between the camera's decision and its delivery: 409, kept as failed."""
    box = Box(store, tmp_path)
    case_id = box.report_case(store)
    store.resolve(case_id)
    box.verifier.poll_once()
    (_, decision), *_ = box.run(ABSENT_S, Detections.empty(), T0)
    assert decision.verdict == "verify"

    assert store.act(case_id, "verify") == "verified"
    assert box.pusher.drain(20)
    box.pusher.stop()

    (failed,) = box.outbox.failed()
    assert failed.kind == "action" and (failed.last_error or "").startswith("HTTP 409")
    assert [kind for kind, _ in store.evidence(case_id)] == ["confirmation", "after"]


def test_a_restarted_daemon_does_not_judge_the_same_resolution_twice(
    store: LiveStore, tmp_path: Path
) -> None:
    box = Box(store, tmp_path)
    case_id = box.report_case(store)
    store.resolve(case_id)
    box.verifier.poll_once()
    assert [d.verdict for _, d in box.run(ABSENT_S, Detections.empty(), T0)] == ["verify"]

    # the store still says "resolved" (nothing delivered yet); a fresh verifier on the same outbox
    again = Verifier(box.config, box.outbox, box.rules.present, NAMES, client=StoreClient(box.config.store))
    assert again.poll_once() == 0
    assert box.verifier.poll_once() == 0


def test_the_polling_thread_watches_resolved_cases(store: LiveStore, tmp_path: Path) -> None:
    box = Box(store, tmp_path)
    case_id = box.report_case(store)
    store.resolve(case_id)

    box.verifier.start()
    try:
        deadline = time.monotonic() + 20
        while box.verifier.watching != [case_id]:
            assert time.monotonic() < deadline, "the verifier never polled"
            time.sleep(0.02)
    finally:
        box.verifier.stop()


def test_the_store_down_keeps_the_watch_list(store: LiveStore, tmp_path: Path) -> None:
    box = Box(store, tmp_path)
    case_id = box.report_case(store)
    store.resolve(case_id)
    box.verifier.poll_once()

    store.stop()
    assert box.verifier.poll_once() is None
    assert box.verifier.watching == [case_id]


# --- the decision rule on its own (presence scripted by the test) ---------------------------------------


class Script:
    """A presence answer per stream second, as RuleEngine.present would give it."""

    def __init__(self) -> None:
        self.present = False

    def __call__(self, camera_id: str, zone_id: str, violation_type: str) -> bool:
        return self.present


def scripted(tmp_path: Path) -> tuple[Verifier, Script, Outbox]:
    key_file = tmp_path / "device.key"
    key_file.write_text("swd_test_key")
    config = daemon_config("http://127.0.0.1:9", key_file, tmp_path)  # never asked: presence is scripted
    outbox = Outbox(tmp_path / "outbox.sqlite")
    script = Script()
    client = StoreClient(config.store)
    verifier = Verifier(config, outbox, script, NAMES, client=client)
    return verifier, script, outbox


RESOLVED = ResolvedCase(7, "cam-1", "z-gate", "illegal_parking", T0)


def look(verifier: Verifier, second: float) -> list[str]:
    t = T0 + dt.timedelta(seconds=second)
    return [d.verdict for d in verifier.observe("cam-1", t, FRAME, Detections.empty())]


def test_a_change_starts_the_run_again(tmp_path: Path) -> None:
    verifier, script, outbox = scripted(tmp_path)
    verifier.set_resolved([RESOLVED])

    assert look(verifier, 0) == []  # absent from 0 ...
    assert look(verifier, 50) == []
    script.present = True  # ... a car stops at 55 s ...
    assert look(verifier, 55) == []
    script.present = False  # ... and leaves: the clear run starts again at 58 s
    assert look(verifier, 58) == []
    assert look(verifier, 58 + ABSENT_S - 1) == []
    assert look(verifier, 58 + ABSENT_S) == ["verify"]
    item = outbox.get(RESOLVED.resolution_key)
    assert item is not None and item.body["action"] == "verify" and [i.kind for i in item.images] == ["after"]
    assert item.body["note"] == f"camera check: zone z-gate clear of illegal_parking for {ABSENT_S:.0f} s"


def test_polls_keep_a_running_watch_and_drop_cases_no_longer_resolved(tmp_path: Path) -> None:
    verifier, _, _ = scripted(tmp_path)
    verifier.set_resolved([RESOLVED])
    look(verifier, 0)

    verifier.set_resolved([RESOLVED])  # the next poll: same case, same resolution
    assert look(verifier, ABSENT_S) == ["verify"]

    verifier.set_resolved([ResolvedCase(8, "cam-1", "z-gate", "illegal_parking", T0)])
    verifier.set_resolved([])
    assert verifier.watching == [] and look(verifier, 2 * ABSENT_S) == []


def test_cases_outside_this_box_configuration_are_not_watched(tmp_path: Path) -> None:
    verifier, _, _ = scripted(tmp_path)

    watched = verifier.set_resolved(
        [
            ResolvedCase(1, "cam-9", "z-gate", "illegal_parking", T0),  # camera not on this box
            ResolvedCase(2, "cam-1", "z-other", "illegal_parking", T0),  # zone removed from the config
            ResolvedCase(3, "cam-1", "z-gate", "street_stall", T0),  # no such rule in the zone
        ]
    )

    assert watched == 0 and verifier.watching == []
