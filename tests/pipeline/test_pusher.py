"""The pusher against a REAL case store (migrated SQLite, uvicorn on a local port, a real device key):
exactly-once delivery with evidence, the store going down and coming back, a daemon restart with a full
outbox, permanent refusals recorded, a bad key that keeps reports, and the key file as configuration."""

from __future__ import annotations

import datetime as dt
import logging
import random
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from common.backoff import backoff_s
from contract.reports import IncidentUpdate
from pipeline.config import StoreConfig
from pipeline.errors import DeviceKeyError
from pipeline.outbox import Outbox
from pipeline.pusher import Pusher, _Refused, _Retry, _Unauthorized, check, read_device_key
from tests.pipeline.live_store import LiveStore
from tests.pipeline.test_outbox import T0, make_jpeg, make_report

FAST = {"retry_base_s": 0.05, "retry_max_s": 0.4, "timeout_s": 5.0}
PLACE_A, PLACE_B = "110101001001001", "110101001001002"


def store_config(store: LiveStore, key_file: Path, **overrides: float) -> StoreConfig:
    return StoreConfig.model_validate(
        {"url": store.url, "device_key_file": key_file, "outbox": key_file.parent / "outbox.sqlite"}
        | FAST
        | overrides
    )


def device(store: LiveStore, tmp_path: Path, name: str = "box-1") -> tuple[int, Path]:
    """A real device with camera cam-1; its key in a 0600 file, as an installer would leave it."""
    device_id, key = store.add_device(name, cameras=("cam-1",))
    key_file = tmp_path / f"{name}.key"
    key_file.write_text(key + "\n")
    key_file.chmod(0o600)
    return device_id, key_file


def wait_until(condition: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_reports_arrive_exactly_once_with_their_evidence(store: LiveStore, tmp_path: Path) -> None:
    _, key_file = device(store, tmp_path)
    outbox = Outbox(tmp_path / "outbox.sqlite")
    first_seen, confirmation, crop = (make_jpeg(tmp_path, seed) for seed in (1, 2, 3))
    outbox.put(make_report("incident-a-0001"), [("first_seen", first_seen), ("confirmation", confirmation)])
    outbox.put(make_report("incident-a-0002"), [("crop", crop)])  # same place: a sighting of the same case
    outbox.put(make_report("incident-b-0001", place=PLACE_B))
    pusher = Pusher(outbox, store_config(store, key_file), rng=random.Random(1))

    pusher.start()
    try:
        assert pusher.drain(30)
    finally:
        pusher.stop()

    assert store.case_count() == 2
    assert sorted(store.sighting_keys()) == ["incident-a-0001", "incident-a-0002", "incident-b-0001"]
    case_a = outbox.get("incident-a-0001")
    assert case_a is not None and case_a.case_id is not None and case_a.state == "delivered"
    assert store.case(case_a.case_id).sighting_count == 2
    assert [kind for kind, _ in store.evidence(case_a.case_id)] == ["first_seen", "confirmation", "crop"]
    assert pusher.stats.delivered == 3 and pusher.stats.images_uploaded == 3
    assert outbox.counts() == {"pending": 0, "delivered": 3, "failed": 0}


def test_a_report_delivered_twice_is_one_sighting_and_one_image(store: LiveStore, tmp_path: Path) -> None:
    """The answer was lost (or the box crashed before recording it): the report and its images go again."""
    _, key_file = device(store, tmp_path)
    image = make_jpeg(tmp_path)
    for attempt in range(2):  # a second outbox holding the same report, as after losing the first's record
        outbox = Outbox(tmp_path / f"outbox-{attempt}.sqlite")
        outbox.put(make_report("incident-0001"), [("confirmation", image)])
        pusher = Pusher(outbox, store_config(store, key_file))
        assert pusher.drain(30)
        pusher.stop()

    assert store.sighting_keys() == ["incident-0001"]
    item = outbox.get("incident-0001")
    assert item is not None and item.case_id is not None
    assert store.case(item.case_id).sighting_count == 1
    assert [kind for kind, _ in store.evidence(item.case_id)] == ["confirmation"]


def test_store_down_reports_wait_with_backoff_then_each_arrives_once(
    store: LiveStore, tmp_path: Path
) -> None:
    _, key_file = device(store, tmp_path)
    outbox = Outbox(tmp_path / "outbox.sqlite")
    pusher = Pusher(outbox, store_config(store, key_file), rng=random.Random(2))
    pusher.start()
    try:
        outbox.put(make_report("incident-0001"), [("confirmation", make_jpeg(tmp_path, 1))])
        wait_until(lambda: outbox.pending_count() == 0)

        store.stop()  # the store goes down with the daemon running
        keys = ["incident-0002", "incident-0003", "incident-b-0001"]
        for seed, key in enumerate(keys, start=10):
            place = PLACE_B if "-b-" in key else PLACE_A
            outbox.put(make_report(key, place=place), [("crop", make_jpeg(tmp_path, seed))])
        time.sleep(1.5)

        assert outbox.pending_count() == 3  # nothing lost, nothing given up
        assert not pusher.stats.store_up and "Error" in (pusher.stats.last_error or "")
        # backoff: a handful of probes in 1.5 s (base 0.05 s, cap 0.4 s), not a request per item per loop
        assert 2 <= pusher.stats.retries <= 15
        assert store.case_count() == 1

        store.start()
        assert pusher.drain(30)
    finally:
        pusher.stop()

    assert pusher.stats.store_up
    assert sorted(store.sighting_keys()) == ["incident-0001", *keys]
    assert store.case_count() == 2
    case_a = outbox.get("incident-0003")
    assert case_a is not None and case_a.case_id is not None
    assert store.case(case_a.case_id).sighting_count == 3
    assert [kind for kind, _ in store.evidence(case_a.case_id)] == ["confirmation", "crop", "crop"]


def test_a_restarted_daemon_delivers_the_outbox_it_left(store: LiveStore, tmp_path: Path) -> None:
    _, key_file = device(store, tmp_path)
    path = tmp_path / "outbox.sqlite"
    first = make_report("incident-0001")

    # first run: the store is down the whole time; the daemon is stopped with reports queued
    store.stop()
    outbox = Outbox(path)
    pusher = Pusher(outbox, store_config(store, key_file))
    pusher.start()
    outbox.put(first, [("confirmation", make_jpeg(tmp_path, 1))])
    outbox.put(make_report("incident-b-0001", place=PLACE_B), [("confirmation", make_jpeg(tmp_path, 2))])
    assert pusher.drain(0.5) is False
    pusher.stop()
    outbox.close()
    # ... and its last attempt at incident-0001 did reach the store, but the answer never came back
    store.start()
    sent = httpx.post(
        f"{store.url}/api/v1/cases",
        json=first.model_dump(mode="json"),
        headers={"X-Device-Key": read_device_key(key_file)},
    )
    assert sent.status_code == 201, sent.text

    # second run, same outbox file
    restarted = Outbox(path)
    assert restarted.pending_count() == 2
    pusher = Pusher(restarted, store_config(store, key_file))
    pusher.start()
    try:
        restarted.put(make_report("incident-0002"), [("crop", make_jpeg(tmp_path, 3))])
        assert pusher.drain(30)
    finally:
        pusher.stop()

    assert sorted(store.sighting_keys()) == ["incident-0001", "incident-0002", "incident-b-0001"]
    assert store.case_count() == 2
    item = restarted.get("incident-0001")
    assert item is not None and item.case_id is not None and item.case_id == sent.json()["case_id"]
    assert store.case(item.case_id).sighting_count == 2
    # Two reports, each with its image: the order between independent outbox items is not a contract.
    assert sorted(kind for kind, _ in store.evidence(item.case_id)) == ["confirmation", "crop"]


def test_a_permanent_refusal_is_recorded_not_retried(store: LiveStore, tmp_path: Path) -> None:
    _, key_file = device(store, tmp_path)
    store.add_device("box-2", cameras=("cam-other",))
    outbox = Outbox(tmp_path / "outbox.sqlite")
    not_a_jpeg = tmp_path / "broken.jpg"
    not_a_jpeg.write_bytes(b"\xff\xd8\xff" + b"garbage" * 10)
    outbox.put(make_report("incident-other-cam", camera="cam-other"))  # another box's camera: 403
    outbox.put(make_report("incident-0001"), [("confirmation", not_a_jpeg), ("crop", make_jpeg(tmp_path))])
    pusher = Pusher(outbox, store_config(store, key_file))

    pusher.start()
    try:
        assert pusher.drain(30)
        time.sleep(0.5)  # would be several retries if it were retried
    finally:
        pusher.stop()

    refused = outbox.get("incident-other-cam")
    assert refused is not None and refused.state == "failed" and refused.attempts == 1
    assert (refused.last_error or "").startswith(
        "HTTP 403 forbidden: camera 'cam-other' is registered to another"
    )
    delivered = outbox.get("incident-0001")
    assert delivered is not None and delivered.state == "delivered"
    assert [(i.kind, i.state) for i in delivered.images] == [("confirmation", "failed"), ("crop", "uploaded")]
    assert (delivered.images[0].last_error or "").startswith("HTTP 422")
    assert store.sighting_keys() == ["incident-0001"]
    assert pusher.stats.failed == 1 and pusher.stats.images_failed == 1


def test_a_rejected_key_keeps_the_reports_until_the_key_file_is_fixed(
    store: LiveStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _, key_file = device(store, tmp_path)
    good_key = read_device_key(key_file)
    wrong_key = good_key[:-4] + "AAAA"
    key_file.write_text(wrong_key)
    outbox = Outbox(tmp_path / "outbox.sqlite")
    outbox.put(make_report("incident-0001"))
    pusher = Pusher(outbox, store_config(store, key_file))

    caplog.set_level(logging.DEBUG)
    pusher.start()
    try:
        wait_until(lambda: pusher.stats.retries >= 1)
        item = outbox.get("incident-0001")
        assert item is not None and item.state == "pending" and "HTTP 401" in (item.last_error or "")
        key_file.write_text(good_key)
        assert pusher.drain(30)
    finally:
        pusher.stop()

    assert store.sighting_keys() == ["incident-0001"]
    assert good_key not in caplog.text and wrong_key not in caplog.text
    assert "rejected this box's device key" in caplog.text


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "file not found; create it"),
        ("", "the file is empty"),
        ("swd_abc_def\nswd_second", "expected one device key"),
    ],
)
def test_the_key_file_is_configuration(tmp_path: Path, content: str | None, message: str) -> None:
    key_file = tmp_path / "secrets" / "device.key"
    if content is not None:
        key_file.parent.mkdir()
        key_file.write_text(content)
    config = StoreConfig(url="http://127.0.0.1:9", device_key_file=key_file)

    with pytest.raises(DeviceKeyError, match=message) as raised:
        Pusher(Outbox(tmp_path / "outbox.sqlite"), config)

    assert f"store.device_key_file {key_file}" in str(raised.value)
    assert "swd_abc" not in str(raised.value)


def test_a_world_readable_key_file_is_warned_about(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    key_file = tmp_path / "device.key"
    key_file.write_text("swd_abc_secret\n")
    key_file.chmod(0o644)

    assert read_device_key(key_file) == "swd_abc_secret"
    assert "chmod 600" in caplog.text and "secret" not in caplog.text.replace("device.key", "")


def _response(status: int, body: object = None, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=body or {"detail": "x", "code": "c"}, headers=headers)


@pytest.mark.parametrize(
    ("status", "body", "expected", "store_down"),
    [
        (200, None, None, False),
        (201, None, None, False),
        (401, None, _Unauthorized, False),
        (403, None, _Refused, False),
        (404, None, _Refused, False),
        (409, None, _Refused, False),
        (409, {"detail": "kept changing; retry later", "code": "conflict", "retry": True}, _Retry, False),
        (413, None, _Refused, False),
        (422, None, _Refused, False),
        (408, None, _Retry, False),
        (429, None, _Retry, False),
        (500, None, _Retry, False),
        (502, None, _Retry, True),
        (503, None, _Retry, True),
        (504, None, _Retry, True),
    ],
)
def test_what_each_answer_means(
    status: int, body: object, expected: type[Exception] | None, store_down: bool
) -> None:
    response = _response(status, body)
    if expected is None:
        assert check(response) is response
        return
    with pytest.raises(expected) as raised:
        check(response)
    assert str(raised.value).startswith(f"HTTP {status}")
    if isinstance(raised.value, _Retry):
        assert raised.value.store_down is store_down


def test_retry_after_is_read() -> None:
    with pytest.raises(_Retry) as raised:
        check(_response(429, headers={"Retry-After": "7"}))
    assert raised.value.retry_after_s == 7.0


def test_backoff_grows_exponentially_with_jitter_and_is_capped() -> None:
    rng = random.Random(0)
    for attempt in range(1, 40):
        ceiling = min(300.0, 2.0 * 2 ** (attempt - 1))
        delays = [backoff_s(attempt, base_s=2.0, cap_s=300.0, rng=rng.random) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1  # jittered


# --- an incident's later sightings and its end ---


def make_update(incident: str, kind: str, seconds: float, count: int) -> IncidentUpdate:
    suffix = "end" if kind == "ended" else f"s{count}"
    return IncidentUpdate.model_validate(
        {
            "idempotency_key": f"{incident}:{suffix}",
            "incident_key": incident,
            "kind": kind,
            "at": T0 + dt.timedelta(seconds=seconds),
            "sighting_count": count,
        }
    )


def test_sightings_and_the_end_arrive_exactly_once_after_their_report(
    store: LiveStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Queued before its report was delivered, an update waits for it; delivered again (a lost answer,
    a second outbox), it changes nothing; the delivery log names the store's case id."""
    _, key_file = device(store, tmp_path)
    outbox = Outbox(tmp_path / "outbox.sqlite")
    outbox.put(make_report("incident-0001", sighting_count=30), [])
    outbox.retry_later(outbox.get("incident-0001").id, 0.5, "held back")  # type: ignore[union-attr]
    outbox.put_update(
        make_update("incident-0001", "sighting", 400, 120), [("sighting", make_jpeg(tmp_path, 5), 0.9)]
    )
    outbox.put_update(make_update("incident-0001", "ended", 700, 200), [])
    pusher = Pusher(outbox, store_config(store, key_file), rng=random.Random(3))

    with caplog.at_level(logging.DEBUG, logger="pipeline.pusher"):
        pusher.start()  # the updates are due first: they wait for the report
        try:
            wait_until(lambda: outbox.pending_count() == 0)
        finally:
            pusher.stop()

    assert "waiting for the earlier messages of incident incident-0001" in caplog.text
    report = outbox.get("incident-0001")
    assert report is not None and report.case_id is not None
    case = store.case(report.case_id)
    assert case.sighting_count == 200 and case.ended_at is not None
    life = [action for _, action in store.events(case.id) if action in ("still_there", "gone")]
    assert life == ["still_there", "gone"]
    assert [kind for kind, _ in store.evidence(case.id)] == ["sighting"]
    assert f"delivered report incident-0001 (case {case.id})" in caplog.text
    assert "(case None)" not in caplog.text

    again = Outbox(tmp_path / "outbox-again.sqlite")  # the same updates once more: nothing moves
    again.put_update(make_update("incident-0001", "sighting", 400, 120), [])
    again.put_update(make_update("incident-0001", "ended", 700, 200), [])
    pusher = Pusher(again, store_config(store, key_file))
    assert pusher.drain(30)
    pusher.stop()
    assert store.case(case.id).sighting_count == 200
    assert [action for _, action in store.events(case.id)].count("gone") == 1


def test_store_down_updates_wait_then_arrive_once(store: LiveStore, tmp_path: Path) -> None:
    _, key_file = device(store, tmp_path)
    outbox = Outbox(tmp_path / "outbox.sqlite")
    pusher = Pusher(outbox, store_config(store, key_file), rng=random.Random(4))
    pusher.start()
    try:
        outbox.put(make_report("incident-0001"), [])
        wait_until(lambda: outbox.pending_count() == 0)
        store.stop()
        outbox.put_update(make_update("incident-0001", "sighting", 300, 60), [])
        outbox.put_update(make_update("incident-0001", "ended", 600, 90), [])
        time.sleep(1.0)
        assert outbox.pending_count() == 2  # nothing lost, nothing given up
        store.start()
        assert pusher.drain(30)
    finally:
        pusher.stop()
    item = outbox.get("incident-0001:end")
    assert item is not None and item.state == "delivered" and item.case_id is not None
    case = store.case(item.case_id)
    assert case.sighting_count == 90 and case.ended_at is not None


def test_an_update_whose_report_was_refused_is_refused_too(store: LiveStore, tmp_path: Path) -> None:
    _, key_file = device(store, tmp_path)
    outbox = Outbox(tmp_path / "outbox.sqlite")
    outbox.put(make_report("incident-0001", violation_type="flying_saucer"), [])
    outbox.put_update(make_update("incident-0001", "ended", 600, 90), [])
    pusher = Pusher(outbox, store_config(store, key_file))
    assert pusher.drain(30)
    pusher.stop()
    update = outbox.get("incident-0001:end")
    assert update is not None and update.state == "failed"
    assert "the report of incident incident-0001 was refused" in (update.last_error or "")


def test_a_clip_queued_after_its_report_goes_to_the_reports_case_once(
    store: LiveStore, tmp_path: Path, car_video: Path
) -> None:
    """The evidence clip is ready only seconds after the report (post_s): queued as an 'evidence' item of
    the incident, it waits for the report, goes to its case, and a second delivery changes nothing."""
    from tests.api.clip_builders import clip_bytes

    _, key_file = device(store, tmp_path)
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(clip_bytes(car_video, 1.0))
    outbox = Outbox(tmp_path / "outbox.sqlite")
    outbox.put(make_report("incident-0001"), [("confirmation", make_jpeg(tmp_path, 1))])
    outbox.retry_later(outbox.get("incident-0001").id, 0.5, "held back")  # type: ignore[union-attr]
    assert outbox.put_evidence(incident_key="incident-0001", images=[("clip", clip)])
    assert not outbox.put_evidence(incident_key="incident-0001", images=[("clip", clip)])  # once
    pusher = Pusher(outbox, store_config(store, key_file), rng=random.Random(4))
    pusher.start()  # the clip is due first: it waits for the report
    try:
        wait_until(lambda: outbox.pending_count() == 0)
    finally:
        pusher.stop()
    item = outbox.get("incident-0001:clip")
    assert item is not None and item.state == "delivered" and item.kind == "evidence"
    report = outbox.get("incident-0001")
    assert report is not None and item.case_id == report.case_id is not None
    assert [kind for kind, _ in store.evidence(report.case_id)] == ["confirmation", "clip"]
    outbox.retry_now()
    with outbox._write() as db:  # a lost answer: the clip goes once more; the store keeps one
        db.execute("UPDATE items SET state = 'pending' WHERE kind = 'evidence'")
        db.execute("UPDATE images SET state = 'pending'")
    assert Pusher(outbox, store_config(store, key_file)).drain(30)
    assert [kind for kind, _ in store.evidence(report.case_id)] == ["confirmation", "clip"]


def test_a_clip_whose_report_was_refused_is_refused_too(store: LiveStore, tmp_path: Path) -> None:
    _, key_file = device(store, tmp_path)
    store.add_device("box-2", cameras=("cam-other",))
    outbox = Outbox(tmp_path / "outbox.sqlite")
    outbox.put(make_report("incident-0001", camera="cam-other"), [])  # another box's camera: 403
    outbox.put_evidence(incident_key="incident-0001", images=[("clip", make_jpeg(tmp_path, 2))])
    pusher = Pusher(outbox, store_config(store, key_file))
    assert pusher.drain(30)
    pusher.stop()
    item = outbox.get("incident-0001:clip")
    assert item is not None and item.state == "failed" and "was refused" in (item.last_error or "")


def test_an_update_follows_its_report_within_the_first_delay_however_long_the_report_waited(
    store: LiveStore, tmp_path: Path
) -> None:
    """While its report is held back (an outage, a store error), an update only waits here: its own delay
    stays at the first backoff step instead of doubling towards retry_max_s, so it goes out right after
    the report instead of minutes later; and waiting never counts as the store having answered."""
    _, key_file = device(store, tmp_path)
    outbox = Outbox(tmp_path / "outbox.sqlite")
    outbox.put(make_report("incident-0001"), [])
    outbox.retry_later(outbox.get("incident-0001").id, 4.0, "held back")  # type: ignore[union-attr]
    outbox.put_update(make_update("incident-0001", "sighting", 300, 60), [])
    pusher = Pusher(
        outbox, store_config(store, key_file, retry_base_s=0.2, retry_max_s=300.0), rng=random.Random(5)
    )
    pusher.start()
    try:
        wait_until(lambda: outbox.get("incident-0001").state == "delivered", 20)  # type: ignore[union-attr]
        report_at = time.monotonic()
        wait_until(lambda: outbox.pending_count() == 0, 20)
        lag_s = time.monotonic() - report_at
    finally:
        pusher.stop()
    # Doubling from 0.2 s, the update's 5th wait alone would be 1.6-3.2 s; the fixed wait is <= 0.2 s.
    assert lag_s < 1.0, lag_s
    update = outbox.get("incident-0001:s60")
    assert update is not None and update.state == "delivered" and update.attempts >= 10


def test_a_training_frame_arrives_with_the_boxes_detected_in_it(store: LiveStore, tmp_path: Path) -> None:
    """The undrawn frame's detections travel with it (form field ``boxes``) and are kept on its evidence
    row, where a training set reads them; the other pictures carry none."""
    from sqlalchemy import select

    from api.models import Evidence

    _, key_file = device(store, tmp_path)
    outbox = Outbox(tmp_path / "outbox.sqlite")
    boxes = (
        '[{"xyxy":[10.0,20.0,110.0,90.0],"confidence":0.91,"class_name":"car"},'
        '{"xyxy":[200.0,40.0,260.0,100.0],"confidence":0.6,"class_name":"unknown_object"}]'
    )
    outbox.put(
        make_report("incident-a-0001"),
        [("confirmation", make_jpeg(tmp_path, 1), 0.5), ("frame", make_jpeg(tmp_path, 2), None, boxes)],
    )
    pusher = Pusher(outbox, store_config(store, key_file), rng=random.Random(1))
    pusher.start()
    try:
        assert pusher.drain(30)
    finally:
        pusher.stop()

    item = outbox.get("incident-a-0001")
    assert item is not None and item.case_id is not None
    with store.sessions() as session:
        rows = session.execute(
            select(Evidence.kind, Evidence.boxes)
            .where(Evidence.case_id == item.case_id)
            .order_by(Evidence.id)
        ).all()
    assert [(kind, stored) for kind, stored in rows] == [
        ("confirmation", None),
        (
            "frame",
            [
                {"xyxy": [10.0, 20.0, 110.0, 90.0], "confidence": 0.91, "class_name": "car"},
                {"xyxy": [200.0, 40.0, 260.0, 100.0], "confidence": 0.6, "class_name": "unknown_object"},
            ],
        ),
    ]
