"""Incident events' evidence and outbox writes on a thread of their own, in the order they happened.

Writing one case's evidence costs the rules thread a few hundred milliseconds on a 2-vCPU box (decoding the
main stream's 1080p keyframe, redacting, JPEG encoding, the outbox commit). When many cameras confirm at
once (the same dwell running out on every camera of a street, a restart), the rules thread used to write
them one after another while the results queue filled and the scheduler, then every camera, waited:
measured in the pipeline benchmark, 64 simultaneous confirmations cost every camera a keyframe. With the
writer, the rules go on with the next frames while the pictures are written; the writer takes the jobs
strictly in order (a case is in the outbox before its updates and its end), and the rules thread waits
only when ``capacity`` jobs are queued (each holds its frame, so the bound is also a memory bound).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

from pipeline.stages import QUEUE_POLL_S, StageControl

log = logging.getLogger(__name__)

Job = Callable[[], object]  # what it returns is ignored
_STOP = object()


class EventWriter:
    """One thread running submitted jobs in order. Before :meth:`start` and after :meth:`finish` (and when
    never started), jobs run on the caller's thread at once (construction, the daemon's own shutdown steps,
    ``scheduler.event_queue: 0``).

    ``on_idle`` runs on the writer's thread after each job and while no job comes (evidence clips and the
    outbox retries that must stay on the thread that writes); ``on_error`` is told of a failed job (the next
    ones still run)."""

    def __init__(
        self,
        capacity: int,
        control: StageControl,
        *,
        on_idle: Callable[[], None],
        on_error: Callable[[], None],
    ) -> None:
        self.capacity = capacity
        self.control = control
        self.on_idle = on_idle
        self.on_error = on_error
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
                try:
                    job()  # type: ignore[operator]  # a Job: _STOP was handled above
                except Exception:
                    self.on_error()
                    log.exception("an incident event could not be written")
                self._idle()
        except BaseException as exc:
            self.control.fail("events", exc)

    def _idle(self) -> None:
        try:
            self.on_idle()
        except Exception:
            log.exception("event writer: idle work failed")
