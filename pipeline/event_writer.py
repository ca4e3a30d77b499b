"""Incident events' evidence and outbox writes on a thread of their own, in the order they happened.

Writing one case's evidence costs the rules thread a few hundred milliseconds on a 2-vCPU box (decoding the
main stream's 1080p keyframe, redacting, JPEG encoding, the outbox commit). When many cameras confirm at
once (the same dwell running out on every camera of a street, a restart), the rules thread used to write
them one after another while the results queue filled and the scheduler, then every camera, waited:
measured in the pipeline benchmark, 64 simultaneous confirmations cost every camera a keyframe. With the
writer, the rules go on with the next frames while the pictures are written; the writer takes the jobs
strictly in order (a case is in the outbox before its updates and its end), and the rules thread waits
only when ``capacity`` jobs are queued (each holds its frame, so the bound is also a memory bound).

While detection is behind (``behind()``: frames wait for the detector), the writer yields the CPU to it: after
each job it pauses so that it uses at most ``cpu_share`` of one core (a job that took 40 ms of CPU is
followed by 120 ms of pause at 0.25). A burst of confirmations is then written over a few seconds from the
CPU detection leaves, instead of taking the box for a second or two while every camera's next keyframe
waits. The pause never makes the rules wait: from three quarters of a full queue on, and when the daemon
stops, the writer runs flat out.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

from pipeline.stages import QUEUE_POLL_S, StageControl

log = logging.getLogger(__name__)

Job = Callable[[], object]  # what it returns is ignored
MAX_PAUSE_S = 2.0  # one pause at most this long (a slow job must not hold the next case for long)
_STOP = object()


class EventWriter:
    """One thread running submitted jobs in order. Before :meth:`start` and after :meth:`finish` (and when
    never started), jobs run on the caller's thread at once (construction, the daemon's own shutdown steps,
    ``scheduler.event_queue: 0``).

    ``on_idle`` runs on the writer's thread after each job and while no job comes (evidence clips and the
    outbox retries that must stay on the thread that writes); ``on_error`` is told of a failed job (the next
    ones still run). ``behind`` and ``cpu_share``: the pause after a job while detection is behind (see the
    module docstring; None or a share of 1: never); ``on_pause`` is told each pause's seconds."""

    def __init__(
        self,
        capacity: int,
        control: StageControl,
        *,
        on_idle: Callable[[], None],
        on_error: Callable[[], None],
        behind: Callable[[], bool] | None = None,
        cpu_share: float = 1.0,
        on_pause: Callable[[float], None] | None = None,
    ) -> None:
        if not 0 < cpu_share <= 1:
            raise ValueError(f"the event writer's cpu_share must be in (0, 1], not {cpu_share}")
        self.capacity = capacity
        self.control = control
        self.on_idle = on_idle
        self.on_error = on_error
        self.behind = behind
        self.cpu_share = cpu_share
        self.on_pause = on_pause  # told the seconds of each pause (the daemon's metrics)
        self._finishing = threading.Event()
        self._jobs: queue.Queue[object] = queue.Queue(maxsize=max(capacity, 1))
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def queued(self) -> int:
        return self._jobs.qsize()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="events", daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> bool:
        """Queue ``job`` (waiting while ``capacity`` are queued), or run it now when no thread runs.
        False: the daemon is giving up (``abandon``) and the job was dropped."""
        if not self.running:
            job()
            return True
        while True:
            try:
                self._jobs.put(job, timeout=QUEUE_POLL_S)
                return True
            except queue.Full:
                if self.control.abandon.is_set() or not self.running:
                    log.warning("event writer: a job was dropped (the daemon is giving up)")
                    return False

    def finish(self, *, drain: bool) -> None:
        """Stop the thread: after every queued job when ``drain`` (a normal stop: nothing detected is lost),
        else after the job in hand (abandon)."""
        thread = self._thread
        if thread is None or not thread.is_alive():
            return
        self._finishing.set()  # no more pauses: what is queued is written flat out
        if not drain:
            self._drop_queued()
        while thread.is_alive():
            try:
                self._jobs.put(_STOP, timeout=QUEUE_POLL_S)
                break
            except queue.Full:
                if self.control.abandon.is_set():
                    self._drop_queued()
        thread.join()

    def _drop_queued(self) -> None:
        dropped = 0
        while True:
            try:
                self._jobs.get_nowait()
            except queue.Empty:
                break
            dropped += 1
        if dropped:
            log.warning("event writer: %d queued job(s) dropped (the daemon is giving up)", dropped)

    def _run(self) -> None:
        try:
            while True:
                try:
                    job = self._jobs.get(timeout=QUEUE_POLL_S)
                except queue.Empty:
                    self._idle()
                    continue
                if job is _STOP:
                    return
                started = time.thread_time()
                try:
                    job()  # type: ignore[operator]  # a Job: _STOP was handled above
                except Exception:
                    self.on_error()
                    log.exception("an incident event could not be written")
                self._idle()
                self._yield_to_detection(time.thread_time() - started)
        except BaseException as exc:
            self.control.fail("events", exc)

    def _yield_to_detection(self, spent_s: float) -> None:
        """Pause so that the job's ``spent_s`` of CPU is at most ``cpu_share`` of one core, while detection
        is behind and the queue is less than three quarters full."""
        behind = self.behind
        if behind is None or self.cpu_share >= 1 or spent_s <= 0 or self._finishing.is_set():
            return
        if self._jobs.qsize() * 4 >= self.capacity * 3 or not behind():
            return
        pause = min(spent_s * (1 / self.cpu_share - 1), MAX_PAUSE_S)
        started = time.monotonic()
        self._finishing.wait(pause)
        if self.on_pause is not None:
            self.on_pause(time.monotonic() - started)

    def _idle(self) -> None:
        try:
            self.on_idle()
        except Exception:
            log.exception("event writer: idle work failed")
