"""What the daemon needs from its parts: the real ones live in :mod:`pipeline.sources`, :mod:`detector` and
:mod:`pipeline.incidents`; tests and benchmarks pass stand-ins.

Every member the daemon reads is declared here, so the daemon never probes a part with ``getattr``: a
stand-in implements the whole Protocol (``None`` where a member does not apply, e.g. a detector without a
model card).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np
import numpy.typing as npt

from contract.device_config import StaticChangeConfig
from detector.detections import Detections
from pipeline.config import CameraConfig, ZoneConfig
from pipeline.metrics import HealthLike

if TYPE_CHECKING:
    from pathlib import Path

    from detector.card import ModelCard
    from detector.preprocess import Preprocessor


class FrameLike(Protocol):
    """A sampled frame (``pipeline.sources.SampledFrame``)."""

    @property
    def camera_id(self) -> str: ...
    @property
    def seq(self) -> int: ...
    @property
    def stream_time(self) -> dt.datetime: ...
    @property
    def image(self) -> npt.NDArray[np.uint8]:
        """BGR at the stream's resolution; a real source converts it on first access (costly: use ``hw``)."""

    @property
    def small_box(self) -> tuple[int, int, int, int] | None:
        """Zone-ROI: the (x0, y0, x1, y1) crop of ``image`` that ``small`` shows; None: all of it."""

    @property
    def zones_unchanged(self) -> bool:
        """Zone gating: nothing changed inside the camera's zones since the model last ran on it."""

    @property
    def hw(self) -> tuple[int, int]:
        """(height, width) of ``image``, known without converting it."""

    @property
    def small(self) -> npt.NDArray[np.uint8] | None:
        """The source's copy scaled to the detector's input size; None when it made none."""

    @property
    def decode_s(self) -> float | None:
        """Seconds the source spent decoding and converting this frame; None when it does not measure."""

    @property
    def full(self) -> Callable[[], npt.NDArray[np.uint8] | None] | None:
        """A camera with a substream: decodes the main stream's latest keyframe (None: one stream)."""


class SourceHealthLike(HealthLike, Protocol):
    """A camera source's health (``pipeline.sources.CameraHealth``): what the metrics read, and more."""

    @property
    def skipped_unchanged(self) -> int:
        """Samples the source's scene-change gate skipped so far."""

    @property
    def skipped_busy(self) -> int:
        """Keyframes skipped undecoded while the camera's previous sample still waited (overload)."""


class SourceLike(Protocol):
    """A camera source (``pipeline.sources.CameraSource``)."""

    def start(self) -> None: ...
    def stop(self) -> object: ...
    def latest(self, after_seq: int) -> FrameLike | None: ...
    def next_frame(self, timeout: float) -> FrameLike | None: ...
    @property
    def health(self) -> SourceHealthLike: ...
    @property
    def ended(self) -> bool:
        """Whether a finite source has handed over its last frame."""


class DetectorLike(Protocol):
    """A batched detector (``detector.Detector``)."""

    @property
    def class_names(self) -> list[str]: ...
    @property
    def card(self) -> ModelCard | None:
        """The model card (name, version, input size); None for a stand-in without a model."""

    @property
    def preprocessor(self) -> Preprocessor | None:
        """Letterboxing (the model input size per frame size); None: frames go in as they are."""

    def detect_batch(
        self, frames: Sequence[npt.NDArray[np.uint8]], max_scale: Sequence[float | None] | None = None
    ) -> list[Detections]:
        """Detections per frame; ``max_scale`` (given only for zone-ROI crops shown at their own pixels,
        :func:`pipeline.roi.crop_max_scale`): per frame, the most the detector may enlarge it."""


class EventLike(Protocol):
    """An incident event (``pipeline.incidents.IncidentEvent``)."""

    @property
    def kind(self) -> str: ...
    @property
    def incident_id(self) -> str: ...
    @property
    def camera_id(self) -> str: ...
    @property
    def zone_id(self) -> str: ...
    @property
    def place(self) -> str: ...
    @property
    def violation_type(self) -> str: ...
    @property
    def first_seen_at(self) -> dt.datetime: ...
    @property
    def at(self) -> dt.datetime: ...
    @property
    def confidence(self) -> float: ...
    @property
    def boxes(self) -> Detections: ...
    @property
    def polygon_px(self) -> npt.NDArray[np.int32]: ...
    @property
    def sighting_count(self) -> int: ...
    @property
    def confirmed_at(self) -> dt.datetime | None: ...
    @property
    def last_seen_at(self) -> dt.datetime | None: ...
    @property
    def zones_px(self) -> tuple[npt.NDArray[np.int32], ...]: ...


class RulesLike(Protocol):
    """The zone rules (``pipeline.incidents.RuleEngine``)."""

    def update(
        self, camera_id: str, stream_time: dt.datetime, detections: Detections, frame_hw: tuple[int, int]
    ) -> Sequence[EventLike]: ...
    def present(self, camera_id: str, zone_id: str, violation_type: str) -> bool: ...
    def expire(self, now: dt.datetime) -> Sequence[EventLike]:
        """End incidents whose quiet period ran out by ``now`` (wall clock, for live cameras)."""

    def replace_zones(self, camera_id: str, zones: Sequence[ZoneConfig]) -> Sequence[EventLike]:
        """Run ``camera_id`` with ``zones`` from now on; the ``ended`` events of incidents that lost
        their zone."""


class StaticChangeLike(Protocol):
    """One camera's model-free static-change detector (``pipeline.static_change.StaticChange``): new objects
    that appear in a zone and stay, as ``unknown_object`` detections. Called from the rules thread only."""

    def update(
        self, frame_bgr: npt.NDArray[np.uint8], stream_time: dt.datetime, moving_xyxy: npt.NDArray[np.float32]
    ) -> Detections:
        """The frame's static changes (frame px, class ``unknown_object``); ``moving_xyxy`` (N, 4) frame px:
        people and vehicles, never evidence of a change."""

    def replace_zones(self, zones: Sequence[StaticZone]) -> None: ...
    def set_reference(self, zone_id: str, image_bgr: npt.NDArray[np.uint8]) -> None: ...
    def absorb(self, zone_id: str, box_xyxy_px: npt.NDArray[np.float32]) -> None: ...
    def state(self) -> dict[str, str]:
        """Zone id -> learning | learned | set | relearning."""

    def looks_like_reference(
        self, zone_id: str, box_xyxy_px: npt.NDArray[np.float32], frame_bgr: npt.NDArray[np.uint8]
    ) -> bool: ...


# A static-change zone as the detector takes it: (zone id, normalised polygon, settings).
StaticZone = tuple[str, list[tuple[float, float]], StaticChangeConfig]
StaticChangeFactory = Callable[[str, Sequence[StaticZone], int, "Path | None"], StaticChangeLike]

SourceFactory = Callable[[CameraConfig], SourceLike]
