"""Typed errors of the edge daemon; each message names what is wrong and where."""

from __future__ import annotations


class PipelineError(Exception):
    """Base of every error raised by :mod:`pipeline`."""


# --- delivery: outbox, pusher, evidence, verification (PC) ---


class DeviceKeyError(PipelineError):
    """The device key file (store.device_key_file) is missing, unreadable or empty: a configuration error."""


class OutboxError(PipelineError):
    """The durable outbox cannot be opened or written (path, permissions, a corrupt or foreign file)."""


class EvidenceError(PipelineError):
    """An evidence image cannot be rendered or written under evidence.dir."""


# --- zones, tracking and incidents (PB) ---


class RuleError(PipelineError):
    """The zone and dwell rules were given something they cannot use; the message names camera and zone."""


class ZoneError(RuleError):
    """Zone geometry that cannot be rasterised: too many zones on a camera, or a frame size not positive."""


class RuleConfigError(RuleError):
    """The configuration does not fit the model: a class in detector.classes the model does not have."""


class UnknownCameraError(RuleError):
    """A camera, zone or violation type that is not in the configuration was named."""


class StreamTimeError(RuleError):
    """A stream time without a time zone: stream times must be aware (UTC) datetimes."""


# --- daemon, metrics (PD) ---


class DaemonError(PipelineError):
    """The daemon cannot start or run: a part failed to start, or a stage failed for good."""


class MetricsServerError(DaemonError):
    """The /metrics and /healthz server cannot listen on metrics.host:metrics.port (in use, not allowed)."""


class StageError(DaemonError):
    """A pipeline stage (scheduler, rules, a camera source) raised; the message names the stage."""


# --- camera sources and sampling (PA) ---


class SourceError(PipelineError):
    """A camera source cannot be used; the message names the camera and its URL (credentials hidden)."""

    def __init__(self, camera_id: str, url: str, problem: str) -> None:
        self.camera_id = camera_id
        self.url = url
        self.problem = problem
        super().__init__(f"camera {camera_id} ({url}): {problem}")


class SourceOpenError(SourceError):
    """The stream cannot be opened: unreachable, refused, timed out, not a video, or a missing file."""


class SourceReadError(SourceError):
    """An open stream broke off or stalled for longer than the camera's timeout_s."""


class ZoneSyncError(PipelineError):
    """The case store's zone configuration cannot be used; the message names camera, zone and field."""
