"""Incident events' evidence and outbox writes on a thread of their own, in the order they happened.

Writing one case's evidence costs the rules thread a few hundred milliseconds on a 2-vCPU box (decoding the
main stream's 1080p keyframe, redacting, JPEG encoding, the outbox commit). When many cameras confirm at
once (the same dwell running out on every camera of a street, a restart), the rules thread used to write
them one after another while the results queue filled and the scheduler, then every camera, waited:
measured in the pipeline benchmark, 64 simultaneous confirmations cost every camera a keyframe. With the
writer, the rules go on with the next frames while the pictures are written; the writer takes the jobs
strictly in order (a case is in the outbox before its updates and its end), and the rules thread waits
only when ``capacity`` jobs are queued or the frames they hold reach ``capacity_bytes`` (a burst of
confirmations on substream cameras, 0.4-0.7 MB each, queues many more than on 1080p ones, ~3.6 MB each).

While detection is behind (``behind()``: frames wait for the detector), the writer yields the CPU to it: after
each job it pauses so that it uses at most ``cpu_share`` of one core (a job that took 40 ms of CPU is
followed by 120 ms of pause at 0.25). A burst of confirmations is then written over a few seconds from the
CPU detection leaves, instead of taking the box for a second or two while every camera's next keyframe
waits. The pause never makes the rules wait: from three quarters of a full queue on (by count or by
bytes), and when the daemon stops, the writer runs flat out.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
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
    module docstring; None or a share of 1: never); ``on_pause`` is told each pause's seconds.
    ``capacity_bytes``: the most the queued jobs may hold (each says what it holds when submitted; one job
    larger than that still goes in alone); None: no bound but the count."""

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
        capacity_bytes: int | None = None,
    ) -> None:
        if not 0 < cpu_share <= 1:
            raise ValueError(f"the event writer's cpu_share must be in (0, 1], not {cpu_share}")
        self.capacity = capacity  # 0: never started (the jobs run on the caller's thread)
        self.capacity_bytes = capacity_bytes
        self.control = control
        self.on_idle = on_idle
        self.on_error = on_error
        self.behind = behind
        self.cpu_share = cpu_share
        self.on_pause = on_pause  # told the seconds of each pause (the daemon's metrics)
        self._finishing = threading.Event()
        self._jobs: deque[tuple[object, int]] = deque()  # (job or _STOP, bytes it holds); guarded by _changed
        self._bytes = 0
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def queued(self) -> int:
        with self._changed:
            return len(self._jobs)

    @property
    def queued_bytes(self) -> int:
        """What the queued jobs hold, as they said when submitted."""
        with self._changed:
            return self._bytes

    def _fill(self) -> float:
        """How full the queue is, by count or by bytes, whichever is fuller (1: full). Holds _changed."""
        fill = len(self._jobs) / max(self.capacity, 1)
        if self.capacity_bytes is not None and self.capacity_bytes > 0:
            fill = max(fill, self._bytes / self.capacity_bytes)
        return fill

    def _room_for(self, nbytes: int) -> bool:
        """Whether a job holding ``nbytes`` may be queued now. Holds _changed."""
        if not self._jobs:
            return True  # alone, any job goes in: a bound below one job's size must not stop the rules
        if len(self._jobs) >= max(self.capacity, 1):
            return False
        return self.capacity_bytes is None or self._bytes + nbytes <= self.capacity_bytes

    def _put(self, item: object, nbytes: int, *, timeout: float) -> bool:
        with self._changed:
            if not self._room_for(nbytes):
                self._changed.wait(timeout)
                if not self._room_for(nbytes):
                    return False
            self._jobs.append((item, nbytes))
            self._bytes += nbytes
            self._changed.notify_all()
            return True

    def _get(self, timeout: float) -> tuple[bool, object]:
        """(True, the next job) or (False, None) when none came within ``timeout``."""
        with self._changed:
            if not self._jobs:
                self._changed.wait(timeout)
                if not self._jobs:
                    return False, None
            item, nbytes = self._jobs.popleft()
            self._bytes -= nbytes
            self._changed.notify_all()
            return True, item

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="events", daemon=True)
        self._thread.start()

    def submit(self, job: Job, nbytes: int = 0) -> bool:
        """Queue ``job``, which holds ``nbytes`` of memory until it has run (waiting while the queue is full),
        or run it now when no thread runs. False: the daemon is giving up (``abandon``) and the job was
        dropped."""
        if not self.running:
            job()
            return True
        while not self._put(job, nbytes, timeout=QUEUE_POLL_S):
            if self.control.abandon.is_set() or not self.running:
                log.warning("event writer: a job was dropped (the daemon is giving up)")
                return False
        return True

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
            if self._put(_STOP, 0, timeout=QUEUE_POLL_S):
                break
            if self.control.abandon.is_set():
                self._drop_queued()
        thread.join()

    def _drop_queued(self) -> None:
        with self._changed:
            dropped = len(self._jobs)
            self._jobs.clear()
            self._bytes = 0
            self._changed.notify_all()
        if dropped:
            log.warning("event writer: %d queued job(s) dropped (the daemon is giving up)", dropped)

    def _run(self) -> None:
        try:
            while True:
                got, job = self._get(QUEUE_POLL_S)
                if not got:
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
        with self._changed:
            nearly_full = self._fill() >= 0.75
        if nearly_full or not behind():
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
