"""Incident events written on a thread of their own (pipeline.event_writer): in order, bounded, drained on a
normal stop, dropped only when the daemon gives up; and through the daemon, a burst of slow evidence no
longer holds the rules (and so detection), while every case still reaches the outbox with its pictures."""

from __future__ import annotations

import functools
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from pipeline.daemon import Daemon
from pipeline.event_writer import EventWriter
from pipeline.outbox import Outbox
from pipeline.reporting import Reporter
from pipeline.stages import StageControl
from tests.pipeline.test_daemon import FakeDetector, FileSource, camera, make_config, reports


def writer(capacity: int = 4, control: StageControl | None = None) -> tuple[EventWriter, list[str]]:
    idle: list[str] = []
    errors: list[str] = []
    made = EventWriter(
        capacity,
        control or StageControl(),
        on_idle=lambda: idle.append(threading.current_thread().name),
        on_error=lambda: errors.append("failed"),
    )
    return made, errors


def test_jobs_run_in_order_on_the_writer_thread_and_finish_drains_them() -> None:
    events, errors = writer(capacity=2)
    done: list[tuple[int, str]] = []
    events.start()

    def job(i: int) -> None:
        time.sleep(0.01)
        done.append((i, threading.current_thread().name))

    for i in range(10):  # more than the capacity: submit waits for room, nothing is lost
        events.submit(functools.partial(job, i))
    events.finish(drain=True)
    assert [i for i, _ in done] == list(range(10))
    assert {name for _, name in done} == {"events"}
    assert not events.running and errors == []


def test_before_start_and_after_finish_jobs_run_on_the_callers_thread() -> None:
    events, _ = writer()
    ran: list[str] = []
    events.submit(lambda: ran.append(threading.current_thread().name))
    events.start()
    events.finish(drain=True)
    events.submit(lambda: ran.append(threading.current_thread().name))
    assert ran == [threading.current_thread().name] * 2


def test_a_failing_job_is_counted_and_the_next_ones_still_run() -> None:
    events, errors = writer()
    done: list[int] = []
    events.start()
    events.submit(lambda: done.append(1))
    events.submit(lambda: 1 / 0)
    events.submit(lambda: done.append(3))
    events.finish(drain=True)
    assert done == [1, 3] and errors == ["failed"]


def test_giving_up_drops_what_is_queued_and_does_not_wait_for_it() -> None:
    control = StageControl()
    events, _ = writer(capacity=8, control=control)
    release = threading.Event()
    done: list[int] = []
    events.start()

    in_hand = threading.Event()

    def held() -> None:
        in_hand.set()
        release.wait(5)
        done.append(0)

    events.submit(held)
    for i in range(1, 6):
        events.submit(functools.partial(done.append, i))
    assert in_hand.wait(5)
    control.abandon.set()
    finishing = threading.Thread(target=lambda: events.finish(drain=False))
    finishing.start()
    time.sleep(0.2)  # finish() dropped the queue while the job in hand still runs
    release.set()
    finishing.join(5)
    assert not finishing.is_alive() and not events.running
    assert done == [0]  # the job in hand finished; the queued ones were dropped


@pytest.mark.parametrize("event_queue", [0, 64])
def test_a_burst_of_slow_evidence_no_longer_holds_the_rules_and_no_case_is_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, event_queue: int
) -> None:
    """Eight cameras confirm a parked car at the same moment; each case's pictures take 0.3 s. With the
    writer the rules keep analysing frames while the pictures are written; without it (0) they wait."""
    cameras = [f"cam-{i}" for i in range(8)]
    config = make_config(
        tmp_path,
        [camera(c, dwell_s=5) for c in cameras],
        scheduler={"drain_timeout_s": 0.5, "event_queue": event_queue},
    )
    sources = {c: FileSource(c, 40) for c in cameras}
    evidence_threads: list[str] = []
    writing = threading.Event()
    analysed_while_writing: list[int] = []
    original_evidence = Reporter.evidence

    def slow_evidence(self: Reporter, event: Any, item: Any, score: float | None = None) -> Any:
        evidence_threads.append(threading.current_thread().name)
        if event.kind == "confirmed":
            writing.set()
            time.sleep(0.3)
            writing.clear()
        return original_evidence(self, event, item, score)

    original_analyse = Reporter.analyse

    def analyse(self: Reporter, item: Any) -> None:
        if writing.is_set():
            analysed_while_writing.append(1)
        original_analyse(self, item)

    monkeypatch.setattr(Reporter, "evidence", slow_evidence)
    monkeypatch.setattr(Reporter, "analyse", analyse)
    daemon = Daemon(config, detector=FakeDetector(), source_factory=lambda c: sources[c.id])
    assert daemon.run() == 0

    found = reports(tmp_path)
    assert sorted(r["camera"] for r in found) == cameras  # one case per camera: nothing lost on the stop
    outbox = Outbox(tmp_path / "outbox.sqlite")
    try:
        for report in found:  # each with its pictures, written before the daemon stopped
            item = outbox.get(report["_key"])
            assert item is not None
            assert [image.kind for image in item.images] == ["first_seen", "confirmation", "crop", "frame"]
    finally:
        outbox.close()
    if event_queue:
        assert set(evidence_threads) == {"events"}
        assert len(analysed_while_writing) > 8  # frames went through the rules during the 2.4 s of pictures
    else:
        assert set(evidence_threads) == {"rules"}
        assert analysed_while_writing == []  # the rules waited for every picture
    assert daemon.metrics.value("streetwatch_incident_events_total", {"kind": "confirmed"}) == 8


def burn(cpu_s: float) -> None:
    """A job that spends ``cpu_s`` of CPU on its own thread (as rendering evidence does)."""
    end = time.thread_time() + cpu_s
    while time.thread_time() < end:
        pass


def yielding_writer(capacity: int, behind: dict[str, bool], pauses: list[float]) -> EventWriter:
    return EventWriter(
        capacity,
        StageControl(),
        on_idle=lambda: None,
        on_error=lambda: None,
        behind=lambda: behind["now"],
        cpu_share=0.25,
        on_pause=pauses.append,
    )


def test_while_detection_is_behind_the_writer_uses_at_most_its_share_of_a_core() -> None:
    behind = {"now": True}
    pauses: list[float] = []
    events = yielding_writer(64, behind, pauses)
    events.start()
    started = time.monotonic()
    for _ in range(5):
        events.submit(functools.partial(burn, 0.04))
    while events.queued:
        time.sleep(0.01)
    time.sleep(0.4)  # the last job (40 ms) and its pause (120 ms) are over
    # 5 x 40 ms of CPU at a quarter of a core: 5 x 120 ms of pauses
    assert sum(pauses) >= 0.55 and time.monotonic() - started >= 0.8
    behind["now"] = False  # detection caught up: flat out, no pause
    paused = sum(pauses)
    for _ in range(5):
        events.submit(functools.partial(burn, 0.04))
    events.finish(drain=True)
    assert sum(pauses) == paused


def test_the_pause_never_makes_the_rules_wait_nor_slows_a_stop() -> None:
    """From three quarters of a full queue on, and once finish() is called, the writer runs flat out."""
    events = yielding_writer(4, {"now": True}, [])
    events.start()
    started = time.monotonic()
    for _ in range(12):  # three times the capacity at once: the queue stays three quarters full
        events.submit(functools.partial(burn, 0.02))
    events.finish(drain=True)
    # 12 jobs x 20 ms; with a pause after every job it would take 12 x 80 ms = 0.96 s
    assert time.monotonic() - started < 0.6
    assert not events.running


def test_the_frames_queued_jobs_hold_bound_the_queue_as_their_count_does() -> None:
    """A burst of small (substream) events queues many more than of large (1080p) ones; the rules wait
    when the bytes are reached, and a job larger than the whole bound still goes in alone."""
    gate = threading.Event()
    events = EventWriter(
        64, StageControl(), on_idle=lambda: None, on_error=lambda: None, capacity_bytes=10_000_000
    )
    events.start()
    events.submit(gate.wait)  # the writer is busy with this one until the gate opens
    time.sleep(0.05)
    for _ in range(19):  # 19 x 0.5 MB: room for all of them (the count bound is 64)
        assert events.submit(lambda: None, nbytes=500_000)
    assert events.queued == 19 and events.queued_bytes == 9_500_000
    submitted = threading.Event()

    def large() -> None:
        events.submit(lambda: None, nbytes=4_000_000)  # would pass 10 MB: waits for room
        submitted.set()

    threading.Thread(target=large, daemon=True).start()
    assert not submitted.wait(0.3)
    gate.set()
    assert submitted.wait(5)
    events.finish(drain=True)
    assert events.queued == 0 and events.queued_bytes == 0
    alone = EventWriter(4, StageControl(), on_idle=lambda: None, on_error=lambda: None, capacity_bytes=1000)
    alone.start()
    ran: list[int] = []
    assert alone.submit(lambda: ran.append(1), nbytes=5000)  # larger than the bound, but alone
    alone.finish(drain=True)
    assert ran == [1]


def test_three_quarters_of_the_bytes_make_the_writer_run_flat_out() -> None:
    pauses: list[float] = []
    events = EventWriter(
        64,
        StageControl(),
        on_idle=lambda: None,
        on_error=lambda: None,
        behind=lambda: True,
        cpu_share=0.25,
        on_pause=pauses.append,
        capacity_bytes=4_000_000,
    )
    events.start()
    started = time.monotonic()
    for _ in range(12):  # a million bytes each: the queue stays at three quarters of its bytes or more
        events.submit(functools.partial(burn, 0.02), nbytes=1_000_000)
    events.finish(drain=True)
    assert time.monotonic() - started < 0.6  # 12 x (20 ms + 60 ms of pause) would take 0.96 s
    assert len(pauses) <= 3  # only the last few jobs, with the queue below three quarters, paused


def test_cpu_share_outside_0_to_1_is_refused() -> None:
    with pytest.raises(ValueError, match="cpu_share"):
        EventWriter(4, StageControl(), on_idle=lambda: None, on_error=lambda: None, cpu_share=0.0)


def test_the_daemon_writes_a_burst_of_cases_from_what_a_busy_detector_leaves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Eight cameras confirm at once while frames queue for a slow detector: the events' thread pauses
    (counted in streetwatch_events_paused_seconds_total) and every case still reaches the outbox."""
    cameras = [f"cam-{i}" for i in range(8)]
    config = make_config(
        tmp_path,
        [camera(c, dwell_s=5) for c in cameras],
        scheduler={"drain_timeout_s": 0.5, "event_cpu_share": 0.25},
    )
    sources = {c: FileSource(c, 40) for c in cameras}
    original_evidence = Reporter.evidence

    def costly_evidence(self: Reporter, event: Any, item: Any, score: float | None = None) -> Any:
        burn(0.03)  # the CPU a 1080p picture costs
        return original_evidence(self, event, item, score)

    monkeypatch.setattr(Reporter, "evidence", costly_evidence)
    detector = FakeDetector(delay_s=0.02)  # frames of eight files wait for it: detection is behind
    daemon = Daemon(config, detector=detector, source_factory=lambda c: sources[c.id])
    assert daemon.run() == 0
    assert sorted(r["camera"] for r in reports(tmp_path)) == cameras
    assert daemon.metrics.value("streetwatch_events_paused_seconds_total") > 0.1
