"""What the daemon's stage threads share: the stop signals and failures, and the results queue between the
scheduler and the rules stage (its record and its end-of-stream sentinel)."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from detector.detections import Detections
from pipeline.protocols import FrameLike

log = logging.getLogger(__name__)

QUEUE_POLL_S = 0.25  # bounded waits on queues; each wake-up re-checks that the other side is alive


@dataclass(slots=True)
class Analysed:
    """A frame the detector has seen, on its way to the rules stage."""

    camera_id: str
    frame: FrameLike
    detections: Detections
    received: float  # time.monotonic() when the scheduler took the frame from its source
    # People found below the rules' threshold (evidence.person_confidence), for redaction only; None: the
    # person-like boxes of ``detections`` (a detector the daemon did not load, e.g. in tests).
    persons_xyxy: npt.NDArray[np.float32] | None = None
    # Zone gating: the model did not run on this frame; ``detections`` are the camera's last ones, carried
    # forward because nothing changed inside its zones (snapshots skip such frames).
    carried: bool = False


END = object()  # end-of-stream sentinel on the results queue


class StageControl:
    """How the stages learn that they should end, and where a failed stage says so."""

    def __init__(self) -> None:
        self.stop_requested = threading.Event()  # run() should return (stop(), a signal, a failure)
        self.stopping = threading.Event()  # the scheduler should finish its batch and end
        self.abandon = threading.Event()  # give up waiting: a stage is stuck or a second signal came
        self.streams_ended = threading.Event()  # every camera is a finite file that has ended
        self._failures: list[str] = []
        self._lock = threading.Lock()

    @property
    def failures(self) -> list[str]:
        with self._lock:
            return list(self._failures)

    def add_failure(self, message: str) -> None:
        with self._lock:
            self._failures.append(message)

    def fail(self, stage: str, exc: BaseException) -> None:
        """A stage thread died: record why and stop the daemon."""
        self.add_failure(f"{stage}: {exc.__class__.__name__}: {exc}")
        log.error("stage %s failed, stopping the daemon", stage, exc_info=exc)
        self.stop_requested.set()
