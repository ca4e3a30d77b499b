"""The daemon's YAML configuration: strict (unknown keys rejected); errors name file, line and field."""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from contract.device_config import (
    DEFAULT_ANCHOR,
    MAX_DWELL_S,
    UNKNOWN_OBJECT,
    Anchor,
    MinConfidence,
    StaticChangeConfig,
)
from contract.fields import PIPELINE_TYPE_PATTERN, EventCode
from contract.schedule import Schedule, ScheduleError
from detector.yaml_lines import LocatedYaml, YamlSyntaxError, load_located_yaml

if TYPE_CHECKING:
    from detector.session import SessionSettings

log = logging.getLogger(__name__)

# "" and file: a file path; v4l2:// is the long form of /dev/videoN (see pipeline.sources.source_kind).
CAMERA_SCHEMES = frozenset({"", "file", "rtsp", "rtsps", "http", "https", "v4l2"})


def _is_file_url(url: str) -> bool:
    scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    return scheme in ("", "file") and not url.startswith("/dev/video")


class ConfigError(ValueError):
    """Invalid configuration; the message lists every problem as ``file:line: field: message``."""


def check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r} (expected an IANA name like Asia/Shanghai)") from exc
    return name


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ClassMapping(_Strict):
    """A model class's violation type and the event code its cases are filed under."""

    violation: str = Field(min_length=1, max_length=64, pattern=PIPELINE_TYPE_PATTERN)
    event_code: EventCode | None = Field(
        None, description="e.g. '0506'; default: the built-in code for this class, else the store's default."
    )


# What a static-change zone may report its new objects as (besides the detector's own violation types): the
# violations that are new objects standing still, the ones camera verification checks against the reference.
STATIC_OBJECT_TYPES = frozenset({UNKNOWN_OBJECT, "exposed_garbage", "street_stall"})

# Event codes a COCO class gets without one in the configuration: a bicycle parked on the pavement is a
# non-motor vehicle (0506); motor vehicles take the store's default code of illegal_parking (0505).
DEFAULT_EVENT_CODES: dict[tuple[str, str], str] = {("bicycle", "illegal_parking"): "0506"}


class ProviderConfig(_Strict):
    """One ONNX Runtime execution provider and its options, e.g. ``{name: tensorrt, options: {device_id:
    0, trt_fp16_enable: true, trt_engine_cache_enable: true, trt_engine_cache_path: /var/cache/sw}}``."""

    name: str = Field(
        min_length=1,
        description="cpu, cuda, tensorrt, openvino, or ONNX Runtime's own name (e.g. CUDAExecutionProvider).",
    )
    options: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="Provider options, passed to ONNX Runtime as strings."
    )


class DetectorConfig(_Strict):
    model: Path = Field(description="A model card (.yaml) or any Ultralytics/YOLOX ONNX file.")
    provider: Literal["cpu", "cuda", "tensorrt", "openvino"] = "cpu"
    providers: list[ProviderConfig] = Field(
        default_factory=list,
        description="Execution providers with options, best first; when set, it replaces 'provider'.",
    )
    provider_fallback: bool = Field(
        True,
        description="A listed provider that is missing or fails: skip it with a warning and end on CPU "
        "(true), or refuse to start (false).",
    )
    classes: dict[str, str | ClassMapping] = Field(
        min_length=1,
        description="Model class name -> violation type, or -> {violation, event_code}.",
    )
    confidence: float | None = Field(None, ge=0, le=1)
    iou: float | None = Field(None, gt=0, le=1)
    max_detections: int | None = Field(None, ge=1)
    threads: int | None = Field(None, ge=1, description="Older spelling of intra_op_threads.")
    intra_op_threads: int | None = Field(
        None, ge=1, description="ONNX Runtime intra-op threads (unset: one per core)."
    )
    inter_op_threads: int | None = Field(None, ge=1, description="ONNX Runtime inter-op threads.")
    allow_spinning: bool = Field(
        False,
        description="Let ONNX Runtime's threads spin-wait between runs (session.intra_op.allow_spinning); "
        "off: they sleep, and the decode threads get that CPU (see benchmarks/README.md, Detector).",
    )
    execution_mode: Literal["sequential", "parallel"] = "sequential"
    batch_size: int = Field(
        1,
        ge=1,
        le=64,
        description="Most frames (from several cameras) per inference call. 1 on CPUs: batching gave no "
        "throughput there and more CPU per frame (benchmarks/README.md, Detector); 8-32 on a GPU.",
    )

    @model_validator(mode="after")
    def _one_thread_setting(self) -> DetectorConfig:
        if self.threads is not None and self.intra_op_threads not in (None, self.threads):
            raise ValueError("threads and intra_op_threads disagree; set only intra_op_threads")
        return self

    def session_settings(self) -> SessionSettings:
        """What the detector's ONNX Runtime session is built with."""
        from detector.session import PROVIDER_CHAINS, ProviderSpec, SessionSettings

        listed = self.providers or [ProviderConfig(name=name) for name in PROVIDER_CHAINS[self.provider]]
        return SessionSettings(
            intra_op_threads=self.intra_op_threads or self.threads,
            inter_op_threads=self.inter_op_threads,
            allow_spinning=self.allow_spinning,
            execution_mode=self.execution_mode,
            providers=tuple(ProviderSpec(p.name, dict(p.options)) for p in listed),
            fallback=self.provider_fallback,
        )

    @property
    def cpu_only(self) -> bool:
        """Whether the session runs on ONNX Runtime's CPU provider alone."""
        return runs_on_cpu_only([p.name for p in self.providers] or [self.provider])

    @property
    def violation_of(self) -> dict[str, str]:
        """Model class name -> violation type."""
        return {
            name: rule.violation if isinstance(rule, ClassMapping) else rule
            for name, rule in self.classes.items()
        }

    @property
    def event_codes(self) -> dict[str, str]:
        """Model class name -> event code, for the classes that have one (configured or built in)."""
        codes = {}
        for name, violation in self.violation_of.items():
            rule = self.classes[name]
            code = rule.event_code if isinstance(rule, ClassMapping) else None
            code = code or DEFAULT_EVENT_CODES.get((name, violation))
            if code is not None:
                codes[name] = code
        return codes


class StoreConfig(_Strict):
    url: str = Field(pattern=r"^https?://", description="Case store base URL.")
    device_key_file: Path = Field(description="File holding this box's device key (never the key itself).")
    outbox: Path = Field(
        Path("data/outbox.sqlite"), description="Durable queue of reports not yet delivered."
    )
    timeout_s: float = Field(10.0, gt=0)
    retry_max_s: float = Field(300.0, gt=0, description="Longest wait between delivery attempts.")
    retry_base_s: float = Field(
        2.0, gt=0, description="First wait after a failed delivery; doubles up to retry_max_s."
    )
    keep_delivered_h: float = Field(
        168.0,
        gt=0,
        description="Delivered or refused outbox rows and their evidence files are kept this long.",
    )
    health_report_s: float = Field(
        60.0, ge=0, description="Report camera health to the store this often (PUT .../health); 0 = never."
    )
    shadow_period_s: float = Field(
        600.0,
        gt=0,
        description="A shadow model's comparison with the live one is summed and uploaded this often.",
    )
    zone_sync_s: float = Field(
        30.0,
        ge=0,
        description="Poll the store for this box's zones this often (ETag, 304 when unchanged) and apply "
        "changes without a restart; 0 = use only the zones in this file.",
    )
    zone_cache: Path | None = Field(
        None,
        description="Where the last good zones from the store are kept, for a start while the store is "
        "unreachable (default: zones.json beside the outbox).",
    )
    snapshot_s: float = Field(
        60.0,
        ge=0,
        description="Look at each camera's picture this often and upload its latest frame (JPEG, people "
        "blurred) for the zone editor when it changed (camera moved, scene cut), and on start; 0 = never.",
    )
    snapshot_unchanged_s: float = Field(
        600.0,
        ge=0,
        description="Upload a camera's frame this long after the last one even when the picture has not "
        "changed (the zone editor shows its time); at or below snapshot_s: every snapshot_s.",
    )

    @property
    def zone_cache_path(self) -> Path:
        return self.zone_cache or self.outbox.parent / "zones.json"


class KeyframeSampling(_Strict):
    mode: Literal["keyframes"]
    max_interval_s: float = Field(
        10.0,
        gt=0,
        description="Keyframes further apart than this (a long GOP): decode every frame and sample at "
        "fallback_fps instead.",
    )
    fallback_fps: float = Field(
        1.0, gt=0, le=60, description="Sample rate for a long GOP, or when every frame is a keyframe (MJPEG)."
    )


class FpsSampling(_Strict):
    mode: Literal["fps"]
    fps: float = Field(gt=0, le=60)


class PatrolSampling(_Strict):
    """Patrol (轮巡): the daemon visits the camera every ``every_s`` (connect, take the first keyframe or the
    snapshot, disconnect) instead of holding its stream open; see :mod:`pipeline.patrol`."""

    mode: Literal["patrol"]
    every_s: float = Field(60.0, ge=1, le=86400, description="Visit the camera this often (seconds).")
    gap_tolerance_s: float | None = Field(
        None,
        gt=0,
        description="A staying object survives this long between two sightings (dwell across visits); "
        "default 2.5 x every_s, so one missed visit does not reset a stay.",
    )

    @field_validator("gap_tolerance_s")
    @classmethod
    def _longer_than_a_turn(cls, value: float | None, info: ValidationInfo) -> float | None:
        every = info.data.get("every_s")
        if value is not None and every is not None and value <= every:
            raise ValueError(
                f"gap_tolerance_s ({value:g}) must exceed every_s ({every:g}): every stay would reset "
                "between two visits"
            )
        return value

    @property
    def gap_tolerance(self) -> float:
        """Seconds a track may go unseen on this camera (see ``gap_tolerance_s``)."""
        return self.gap_tolerance_s if self.gap_tolerance_s is not None else PATROL_GAP_TURNS * self.every_s


PATROL_GAP_TURNS = 2.5  # default gap tolerance of a patrol camera, in turns: one missed visit is tolerated

Sampling = Annotated[KeyframeSampling | FpsSampling | PatrolSampling, Field(discriminator="mode")]


class RuleConfig(_Strict):
    dwell_s: float = Field(
        ge=1, le=MAX_DWELL_S, description="Seconds an object must stay, stationary, to confirm."
    )
    schedule: str | None = Field(None, description="When the rule applies, e.g. 'mon-fri 07:00-08:30'.")
    min_confidence: MinConfidence = None

    @field_validator("schedule")
    @classmethod
    def _parse_schedule(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                Schedule.parse(value)
            except ScheduleError as exc:
                raise ValueError(str(exc)) from exc
        return value

    @property
    def parsed_schedule(self) -> Schedule:
        return Schedule.parse(self.schedule) if self.schedule else Schedule.always()


Point = tuple[Annotated[float, Field(ge=0, le=1)], Annotated[float, Field(ge=0, le=1)]]


class ZoneConfig(_Strict):
    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    place: str = Field(
        min_length=1, max_length=64, description="Responsibility key (grid code / road section)."
    )
    polygon: list[Point] = Field(min_length=3, description="Normalised [x, y] corners (0..1).")
    rules: dict[str, RuleConfig] = Field(
        default_factory=dict, description="Violation type -> rule (may be empty with static_change)."
    )
    anchor: Anchor = DEFAULT_ANCHOR
    timezone: str | None = Field(
        None, description="Where this zone's schedules are read; default: the camera's time zone."
    )
    static_change: StaticChangeConfig | None = Field(
        None,
        description="Model-free detection of new objects that appear and stay: {dwell_s, report_as, "
        "min_area}; reported as detections of class unknown_object.",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        return None if value is None else check_timezone(value)

    @model_validator(mode="after")
    def _judges_something(self) -> ZoneConfig:
        if not self.rules and self.static_change is None:
            raise ValueError("a zone needs rules, static_change or both: this one would judge nothing")
        return self

    @property
    def effective_rules(self) -> dict[str, RuleConfig]:
        """The rules the engine applies: ``rules`` plus static change's implicit rule for ``report_as``
        (an explicit rule for that type keeps its own settings)."""
        if self.static_change is None or self.static_change.report_as in self.rules:
            return dict(self.rules)
        implicit = RuleConfig(dwell_s=self.static_change.dwell_s)
        return {**self.rules, self.static_change.report_as: implicit}


class RedactionConfig(_Strict):
    """How pictures are made private on the box, before anything leaves it (evidence, crops, "after")."""

    mode: Literal["outside_violation", "persons_only"] = Field(
        "outside_violation",
        description="outside_violation: everything outside the violation boxes (grown by margin) and the "
        "zone is blurred strongly and people inside are pixelated, so a person the detector misses is "
        "still unrecognisable unless they stand in the zone or by the object; the picture shows less of "
        "the street around the violation. persons_only: only the people found (at "
        "evidence.person_confidence) are pixelated; the whole scene stays sharp, but anyone not found "
        "stays visible.",
    )
    margin: float = Field(
        0.25,
        ge=0,
        le=2,
        description="outside_violation: violation boxes are kept sharp with this share of their width and "
        "height added on each side (context around the object).",
    )
    outside_blur: float = Field(
        0.04,
        gt=0,
        le=0.25,
        description="outside_violation: strength of the blur outside the kept region, as a Gaussian sigma "
        "in shares of the frame's shorter side (0.04 of 576 px = 23 px: a person becomes a smudge, roads "
        "and vehicles stay recognisable).",
    )
    person_margin: float = Field(
        0.15, ge=0, le=1, description="People's boxes are pixelated with this share added on each side."
    )
    blur_plates_in_violation: bool = Field(
        False,
        description="Also pixelate the number-plate band of the violating vehicles' own boxes (lower 45 % "
        "of the box, middle 80 % of its width: where a front or rear plate sits seen from a street camera; "
        "a heuristic, no plate model). Off by default: the plate is often what the case needs.",
    )
    keep_unredacted: bool = Field(
        False,
        description="Also write an unredacted copy of each full-frame picture under "
        "<evidence.dir>/unredacted/<camera>/, on this box only: never queued or uploaded, deleted after "
        "evidence.unredacted_keep_h.",
    )


class ClipsConfig(_Strict):
    """Evidence clips (off by default): the camera's own compressed video around an incident, remuxed into
    an MP4 without re-encoding. Persons cannot be blurred in such a clip, so it is opt-in per camera and
    the store shows it only to the roles that may see unredacted video (shift leader, dispatcher, admin)."""

    enabled: bool = Field(False, description="Keep a packet buffer and upload a clip with each case.")
    pre_s: float = Field(5.0, ge=0, le=60, description="Seconds before first sight the clip starts.")
    post_s: float = Field(5.0, ge=0, le=60, description="Seconds after confirmation the clip ends.")
    max_s: float = Field(
        60.0, gt=0, le=300, description="Longest clip; a longer window keeps its end (the confirmation)."
    )
    buffer_mb: float = Field(
        64.0,
        gt=0,
        le=1024,
        description="Memory the camera's packet buffer may use (it also holds max_s "
        "+ a margin of seconds, whichever is less).",
    )


class CameraConfig(_Strict):
    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    url: str = Field(min_length=1, description="File path, rtsp://, http(s):// or /dev/videoN.")
    detect_url: str | None = Field(
        None,
        description="The camera's substream (子码流, e.g. 640x360): detection runs on it, and ``url`` (the "
        "main stream) is only demuxed, its latest keyframe decoded when an event needs full-resolution "
        "evidence or a snapshot. Default: detect on ``url``.",
    )
    sample: Sampling = KeyframeSampling(mode="keyframes")
    zones: list[ZoneConfig] = Field(min_length=1)
    timezone: str = Field("Asia/Shanghai", description="Where schedules are read.")
    realtime: bool = Field(False, description="Files: pace frames at their real rate, like a live camera.")
    loop: bool = Field(False, description="Files: start again at the end.")
    rtsp_transport: Literal["tcp", "udp"] = "tcp"
    start_time: AwareDatetime | None = Field(
        None, description="Files: stream time of the first frame (default: the wall clock when it is read)."
    )
    zone_roi: bool = Field(
        False,
        description="Zone-ROI inference: run the model on the bounding crop of this camera's zones (plus "
        "a margin of 5% of the frame) scaled to the model's input size, boxes mapped back: objects appear "
        "larger and what lies outside the crop is not detected (refused with redaction mode persons_only, "
        "which would leave people outside the crop unblurred).",
    )
    zone_roi_scale: Literal["auto", "native", "fill"] = Field(
        "auto",
        description="Zone-ROI: how large the crop reaches the model. native: at the stream's own pixels, "
        "never enlarged (objects the size they are without zone_roi); a model of dynamic input size then "
        "runs at the crop's size rounded up to its stride, so inference costs in proportion to the crop's "
        "area. fill: enlarged to fill the model's input (small, far objects appear larger; inference costs "
        "what the whole input costs). auto: fill on a fixed-size model (its input costs the same either "
        "way), native on a dynamic one.",
    )
    zone_gating: bool = Field(
        False,
        description="Per-zone change gating: a sample in which no zone region changed (change_threshold of "
        "the zones' thumbnail pixels) since the last inference is given the camera's last detections "
        "instead of running the model, unless an incident on the camera awaits confirmation or a resolved "
        "case is being verified; the model still runs at least every max_skip_s.",
    )
    skip_unchanged: bool = Field(
        True, description="Scene-change skip: no inference on a sample that looks like the last analysed one."
    )
    change_threshold: float = Field(
        0.001,
        gt=0,
        le=1,
        description="Scene-change skip: share of a 160 px wide gray thumbnail's pixels that must change "
        "(by more than 20 gray levels) for a sample to be analysed.",
    )
    max_skip_s: float = Field(
        5.0, gt=0, description="Scene-change skip: analyse at least one sample per this many stream seconds."
    )
    timeout_s: float = Field(
        10.0, gt=0, description="Give up opening a stream, or waiting for its next packet, after this long."
    )
    reconnect_min_s: float = Field(1.0, gt=0, description="First wait before reconnecting; doubles (jitter).")
    reconnect_max_s: float = Field(60.0, gt=0, description="Longest wait between reconnection attempts.")
    failed_after: int = Field(
        3, ge=1, description="Failed attempts in a row before the camera counts as failed (it keeps trying)."
    )
    ffmpeg_options: dict[str, str] = Field(
        default_factory=dict,
        description="Extra FFmpeg input options, e.g. {video_size: 1280x720, input_format: mjpeg} for V4L2.",
    )
    redaction: RedactionConfig | None = Field(
        None,
        description="Privacy for this camera: the fields set here override evidence.redaction (e.g. "
        "{mode: persons_only} for a camera whose wider view the cases need).",
    )
    clips: ClipsConfig = Field(
        ClipsConfig(),
        description="Evidence clips, e.g. {enabled: true, pre_s: 5, post_s: 5}: UNREDACTED video (see "
        "ClipsConfig); off by default.",
    )

    @field_validator("url", "detect_url")
    @classmethod
    def _known_scheme(cls, value: str | None) -> str | None:
        if value is None:
            return value
        scheme = urlsplit(value).scheme.lower() if "://" in value else ""
        if scheme not in CAMERA_SCHEMES:
            raise ValueError(
                f"unsupported URL scheme {scheme!r}: expected a file path, rtsp://, rtsps://, http://, "
                "https:// or /dev/videoN"
            )
        return value

    @field_validator("detect_url")
    @classmethod
    def _substream_like_main(cls, value: str | None, info: ValidationInfo) -> str | None:
        main = info.data.get("url")
        if value is None or main is None:
            return value
        if value == main:
            raise ValueError("detect_url is the same as url: leave it out to detect on the one stream")
        if _is_file_url(value) != _is_file_url(main):
            raise ValueError(
                "detect_url and url must both be files or both be streams (two streams of one camera)"
            )
        return value

    @field_validator("reconnect_max_s")
    @classmethod
    def _backoff_order(cls, value: float, info: ValidationInfo) -> float:
        low = info.data.get("reconnect_min_s")
        if low is not None and value < low:
            raise ValueError(f"reconnect_max_s ({value}) is below reconnect_min_s ({low})")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return check_timezone(value)

    @field_validator("zones")
    @classmethod
    def _unique_zone_ids(cls, zones: list[ZoneConfig]) -> list[ZoneConfig]:
        # A field validator, not a model validator, so that the error names the ``zones`` line.
        seen: set[str] = set()
        for zone in zones:
            if zone.id in seen:
                raise ValueError(f"zone id {zone.id!r} appears twice on this camera")
            seen.add(zone.id)
        return zones


class EvidenceConfig(_Strict):
    dir: Path = Path("data/evidence")
    blur_persons: bool = Field(
        True,
        description="Privacy: redact pictures as evidence.redaction says (and pixelate people in zone-editor "
        "snapshots); false turns all redaction off, on every camera.",
    )
    jpeg_quality: int = Field(85, ge=30, le=100)
    redaction: RedactionConfig = Field(
        RedactionConfig(), description="Default for every camera; cameras[].redaction overrides fields."
    )
    person_confidence: float = Field(
        0.1,
        gt=0,
        le=1,
        description="People are found for redaction at this confidence, below the detector's working one: "
        "the detector runs at the lower of the two and the rules still see only detections above the "
        "working threshold.",
    )
    unredacted_keep_h: float = Field(
        168.0, gt=0, description="Unredacted local copies (redaction.keep_unredacted) are deleted after this."
    )
    training_frame: bool = Field(
        True,
        description="With each confirmation also upload the frame with nothing drawn on it (evidence kind "
        "'frame'), redacted as the other pictures but with every zone of the camera kept sharp (people in "
        "them pixelated): the picture operators draw missed objects on and that `dataset export-reviewed "
        "--images frame` trains from. About one more JPEG per case.",
    )

    def redaction_for(self, camera: CameraConfig | None) -> RedactionConfig:
        """The camera's redaction: evidence.redaction with the fields the camera sets replaced."""
        if camera is None or camera.redaction is None:
            return self.redaction
        override = camera.redaction
        return self.redaction.model_copy(update={k: getattr(override, k) for k in override.model_fields_set})


class IncidentConfig(_Strict):
    quiet_period_s: float = Field(300.0, gt=0, description="An incident ends after this long unseen.")
    gap_tolerance_s: float = Field(20.0, ge=0, description="Detection gaps shorter than this keep the dwell.")
    stationary_iou: float = Field(0.6, gt=0, le=1, description="IoU with its anchor box for 'not moving'.")
    suppression_iou: float = Field(
        0.5,
        gt=0,
        le=1,
        description="A detection is a remembered false alarm (same camera, zone and type) from this IoU with "
        "its box on.",
    )
    min_seen_ratio: float = Field(
        0.6,
        gt=0,
        le=1,
        description="A staying object is seen in at least this share of its recent analysed frames; "
        "passers-by crossing the same spot now and then are not.",
    )
    first_seen_after_s: float = Field(
        5.0, ge=0, description="Stay before the first-sight event and picture (capped at the rule's dwell)."
    )
    sighting_report_s: float = Field(
        300.0,
        ge=10,
        description="Report a confirmed incident's later sightings to the store at most this often (stream "
        "time); its end is always reported.",
    )


def camera_gap_tolerance(camera: CameraConfig, incidents: IncidentConfig) -> float:
    """Seconds a track of ``camera`` may go unseen: incidents.gap_tolerance_s, or a patrol camera's own
    (longer than its turn, so dwell adds up across visits)."""
    sample = camera.sample
    if isinstance(sample, PatrolSampling):
        return max(sample.gap_tolerance, incidents.gap_tolerance_s)
    return incidents.gap_tolerance_s


class VerificationConfig(_Strict):
    enabled: bool = True
    absent_s: float = Field(120.0, gt=0, description="Zone clear this long after 'resolved' -> verified.")
    poll_interval_s: float = Field(60.0, gt=0)


# auto inference workers stop here: measured on 2 vCPUs only; more single-threaded calls at once than this
# would multiply the detector's memory on a big box for a gain no one has measured
MAX_AUTO_INFERENCE_WORKERS = 4


def usable_cores() -> int:
    """CPUs this process may run on (its affinity, e.g. a container's cpuset), else the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def runs_on_cpu_only(provider_names: list[str]) -> bool:
    """Whether a session with these providers (short or ONNX Runtime names) runs on the CPU provider alone;
    the process's provider override (``STREETWATCH_ORT_PROVIDERS``) wins over them, as in the session."""
    from detector.session import CPU, PROVIDER_NAMES, providers_from_env

    overridden = providers_from_env()
    names = [p.name for p in overridden] if overridden is not None else provider_names
    return all(PROVIDER_NAMES.get(name, name) == CPU for name in names)


def inference_shape(
    workers: int | Literal["auto"], threads: int | None, *, cpu_only: bool
) -> tuple[int, int | None]:
    """Detector calls at once and each call's intra-op threads (None: ONNX Runtime's one per core) for
    ``scheduler.inference_workers`` and ``detector.intra_op_threads`` as configured: ``auto`` is one call
    per core on the CPU provider (fewer when each asks for more threads), one call on an accelerator; with
    several calls and no thread count, each gets its share of the cores."""
    cores = usable_cores()
    if workers != "auto":
        count = workers
    elif cpu_only:
        count = max(1, min(MAX_AUTO_INFERENCE_WORKERS, cores // (threads or 1)))
    else:
        count = 1
    if threads is None and count > 1:
        threads = max(1, cores // count)
    return count, threads


class SchedulerConfig(_Strict):
    """How frames wait for the detector (see pipeline.daemon: queues and drop policy)."""

    frames_per_camera: int = Field(
        1,
        ge=1,
        le=16,
        description="Sampled frames a live camera may have waiting for the detector; a newer frame drops "
        "the oldest (counted in streetwatch_frames_skipped_total{reason='behind'}).",
    )
    drop_before_decode: bool = Field(
        True,
        description="Overload: a live camera whose previous sample still waits for the detector skips its "
        "next keyframe undecoded (keyframe sampling; counted in the camera's health as skipped_busy) "
        "instead of decoding it and dropping a decoded frame. The waiting sample is then analysed, at most "
        "a GOP older than the skipped one; false: the freshest sample always replaces the waiting one.",
    )
    results_queue: int = Field(
        16, ge=1, le=1024, description="Analysed frames waiting for rules; when full, the detector waits."
    )
    inference_workers: Annotated[int, Field(ge=1, le=16)] | Literal["auto"] = Field(
        "auto",
        description="Detector calls running at once, each on its own thread (one model session): 1 runs "
        "them on the scheduler thread. auto: on the CPU provider one call per core (at most "
        f"{MAX_AUTO_INFERENCE_WORKERS}; fewer when detector.intra_op_threads asks for more threads each), "
        "elsewhere 1. With more than one and detector.intra_op_threads unset, each call gets cores / "
        "workers intra-op threads. On the 2-vCPU box two single-threaded calls at once ran 1.4x the "
        "frames of one call on two threads (benchmarks/README.md, Pipeline). A camera has at most one "
        "frame in the detector, so its frames reach the rules in order.",
    )
    event_queue: int = Field(
        1024,
        ge=0,
        le=4096,
        description="Incident events (evidence pictures, outbox writes) waiting for their own thread, in "
        "order, so that many confirmations at once never hold the rules and detection; when this many are "
        "queued, or their frames reach event_queue_mb, the rules wait. 0: written on the rules thread, "
        "each before the next frame.",
    )
    event_queue_mb: float = Field(
        384.0,
        gt=0,
        description="The most memory the queued incident events' frames may hold, in MB: about 3.6 MB each "
        "for a 1080p camera (some 100 events), 0.4-0.7 MB for one that detects on a 640x360 substream and "
        "keeps its main stream's compressed keyframe (550-950). Only a burst of confirmations fills it.",
    )
    event_cpu_share: float = Field(
        0.25,
        gt=0,
        le=1,
        description="While frames wait for the detector, the incident events' thread uses at most this share "
        "of one core: after each event it pauses in proportion to the CPU the event took, so a burst of "
        "confirmations is written from what detection leaves instead of costing every camera a keyframe "
        "(never while the event queue is three quarters full or the daemon stops). 1: never pauses.",
    )
    drain_timeout_s: float = Field(
        30.0, ge=0, description="On shutdown, how long to keep delivering the outbox before exiting."
    )


class PatrolConfig(_Strict):
    """How patrol cameras (``sample: {mode: patrol}``) are visited (:mod:`pipeline.patrol`)."""

    max_concurrent: int = Field(16, ge=1, le=1024, description="Visits in progress at once, all hosts.")
    visit_timeout_s: float = Field(
        10.0,
        gt=0,
        le=300,
        description="A camera that has not given a frame within this long is marked in its health "
        "(reconnecting, then failed) and tried again on its next turn.",
    )
    per_host_limit: int = Field(
        4,
        ge=1,
        le=1024,
        description="Concurrent connections to one upstream host (the video platform's limit on pulls).",
    )


class CameraDefaults(_Strict):
    """What a camera without its own setting takes."""

    sample: Sampling | None = Field(
        None, description="e.g. {mode: patrol, every_s: 60}: every camera without a sample of its own."
    )


class MetricsConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(9108, ge=0, le=65535, description="Prometheus /metrics and /healthz; 0 = off.")


class DaemonConfig(_Strict):
    detector: DetectorConfig
    store: StoreConfig
    cameras: list[CameraConfig] = Field(min_length=1)
    evidence: EvidenceConfig = EvidenceConfig()
    incidents: IncidentConfig = IncidentConfig()
    verification: VerificationConfig = VerificationConfig()
    metrics: MetricsConfig = MetricsConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
    patrol: PatrolConfig = PatrolConfig()
    camera_defaults: CameraDefaults = CameraDefaults()

    @model_validator(mode="before")
    @classmethod
    def _default_sample(cls, data: object) -> object:
        """cameras[] without a ``sample`` take ``camera_defaults.sample`` (validated as their own)."""
        if not isinstance(data, dict):
            return data
        defaults, cameras = data.get("camera_defaults"), data.get("cameras")
        sample = defaults.get("sample") if isinstance(defaults, dict) else None
        if sample is None or not isinstance(cameras, list):
            return data
        filled = [
            {**camera, "sample": sample} if isinstance(camera, dict) and "sample" not in camera else camera
            for camera in cameras
        ]
        return {**data, "cameras": filled}

    @property
    def patrol_cameras(self) -> list[CameraConfig]:
        """The cameras visited in turn (``sample.mode: patrol``)."""
        return [camera for camera in self.cameras if isinstance(camera.sample, PatrolSampling)]

    @field_validator("cameras")
    @classmethod
    def _unique_camera_ids(cls, cameras: list[CameraConfig]) -> list[CameraConfig]:
        # A field validator, not a model validator, so that the error names the ``cameras`` line.
        seen: set[str] = set()
        for camera in cameras:
            if camera.id in seen:
                raise ValueError(f"camera id {camera.id!r} appears twice")
            seen.add(camera.id)
        return cameras

    @model_validator(mode="after")
    def _lean_options_keep_people_private(self) -> DaemonConfig:
        for index, camera in enumerate(self.cameras):
            if self.evidence.redaction_for(camera).mode != "persons_only":
                continue
            if camera.zone_roi:
                raise ValueError(
                    f"cameras.{index}.zone_roi: camera {camera.id} detects only inside its zones' crop, "
                    "but its redaction mode persons_only blurs only the people detected: people outside "
                    "the crop would stay visible (use mode outside_violation, or zone_roi: false)"
                )
            if camera.zone_gating:
                raise ValueError(
                    f"cameras.{index}.zone_gating: camera {camera.id} reuses earlier detections while its "
                    "zones do not change, but its redaction mode persons_only blurs only the people "
                    "detected: people who moved outside the zones would stay visible (use mode "
                    "outside_violation, or zone_gating: false)"
                )
        return self

    def _inference_shape(self) -> tuple[int, int | None]:
        """Detector calls at once and each call's intra-op threads, ``auto`` resolved for this machine."""
        return inference_shape(
            self.scheduler.inference_workers,
            self.detector.intra_op_threads or self.detector.threads,
            cpu_only=self.detector.cpu_only,
        )

    @property
    def inference_workers(self) -> int:
        """``scheduler.inference_workers`` with ``auto`` resolved for this machine (see its description)."""
        return self._inference_shape()[0]

    def session_settings(self) -> SessionSettings:
        """The detector's session settings; with several inference workers and no intra-op thread count
        configured, each call gets its share of the cores instead of ONNX Runtime's one thread per core
        (workers x cores threads would fight over the cores)."""
        _, threads = self._inference_shape()
        return dataclasses.replace(self.detector.session_settings(), intra_op_threads=threads)

    @property
    def reportable_types(self) -> frozenset[str]:
        """Violation types a zone may judge: the detector's, and what a static change may be."""
        return frozenset(self.detector.violation_of.values()) | STATIC_OBJECT_TYPES

    def unused_rules(self) -> list[str]:
        """Zone rules for violation types no detector class maps to: they can never fire."""
        produced = set(self.detector.violation_of.values())
        return [
            f"camera {c.id} zone {z.id}: rule {v!r}"
            for c in self.cameras
            for z in c.zones
            for v in z.rules
            if v not in produced and not (z.static_change and z.static_change.report_as == v)
        ]


def _resolve_model(config: DaemonConfig, located: LocatedYaml) -> DaemonConfig:
    """The model path is read relative to the config file, then to the working directory."""
    model = config.detector.model
    candidates = [model] if model.is_absolute() else [located.path.parent / model, Path.cwd() / model]
    for candidate in candidates:
        if candidate.is_file():
            detector = config.detector.model_copy(update={"model": candidate.resolve()})
            return config.model_copy(update={"detector": detector})
    line = located.line_of(("detector", "model"))
    tried = ", ".join(str(c) for c in candidates)
    raise ConfigError(f"{located.path}:{line}: detector.model: model file not found (tried {tried})")


def _check_sampling_against_gaps(config: DaemonConfig, located: LocatedYaml) -> None:
    """Dwell survives gaps below incidents.gap_tolerance_s: every camera must be analysed more often."""
    tolerance = config.incidents.gap_tolerance_s
    problems = []
    for index, camera in enumerate(config.cameras):
        sample = camera.sample
        if isinstance(sample, PatrolSampling):
            continue  # a patrol camera's gap tolerance is its own (PatrolSampling.gap_tolerance)
        # keyframes: at most max_interval_s between keyframes before the fallback rate takes over.
        interval = 1 / sample.fps if isinstance(sample, FpsSampling) else sample.max_interval_s
        if camera.skip_unchanged:
            interval = max(interval, camera.max_skip_s)
        if interval >= tolerance:
            field = "max_skip_s" if interval == camera.max_skip_s and camera.skip_unchanged else "sample"
            line = located.line_of(("cameras", index, field))
            problems.append(
                f"{located.path}:{line}: cameras.{index}: up to {interval:g} s between analysed frames "
                f"(sample rate, max_skip_s) is not below incidents.gap_tolerance_s = {tolerance:g} s: "
                "every stay would reset between two frames"
            )
    if problems:
        raise ConfigError("\n".join(problems))


def _check_static_change(config: DaemonConfig, located: LocatedYaml) -> None:
    """report_as must be a violation type the rules know (the detector's or a static object's)."""
    known = config.reportable_types
    problems = []
    for c, camera in enumerate(config.cameras):
        for z, zone in enumerate(camera.zones):
            if zone.static_change is not None and zone.static_change.report_as not in known:
                loc = ("cameras", c, "zones", z, "static_change", "report_as")
                problems.append(
                    f"{located.path}:{located.line_of(loc)}: {'.'.join(map(str, loc))}: unknown violation "
                    f"type {zone.static_change.report_as!r} (known: {', '.join(sorted(known))})"
                )
    if problems:
        raise ConfigError("\n".join(problems))


PATROL_SCHEMES = frozenset({"rtsp", "rtsps", "http", "https"})


def _check_patrol(config: DaemonConfig, located: LocatedYaml) -> None:
    """Patrol visits network cameras; a visit must be able to time out before the next turn."""
    problems = []
    timeout = config.patrol.visit_timeout_s
    for index, camera in enumerate(config.cameras):
        sample = camera.sample
        if not isinstance(sample, PatrolSampling):
            continue
        scheme = urlsplit(camera.url).scheme.lower() if "://" in camera.url else ""
        if scheme not in PATROL_SCHEMES:
            line = located.line_of(("cameras", index, "url"))
            problems.append(
                f"{located.path}:{line}: cameras.{index}.url: patrol visits network cameras (rtsp://, "
                f"rtsps://, http:// or https://: a stream or a snapshot URL), not {camera.url!r}"
            )
        if timeout >= sample.every_s:
            line = located.line_of(("cameras", index, "sample"))
            problems.append(
                f"{located.path}:{line}: cameras.{index}.sample: every_s ({sample.every_s:g}) must exceed "
                f"patrol.visit_timeout_s ({timeout:g}): a camera that does not answer would miss its turns"
            )
    if problems:
        raise ConfigError("\n".join(problems))


def load_config(path: Path) -> DaemonConfig:
    """Parse and validate ``path``; raise :class:`ConfigError` listing every problem with its line."""
    try:
        located = load_located_yaml(path)
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: configuration file not found") from exc
    except (YamlSyntaxError, OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(exc)) from exc
    if not isinstance(located.data, dict):
        raise ConfigError(
            f"{path}:1: the configuration must be a YAML mapping (detector, store, cameras, ...)"
        )
    try:
        config = DaemonConfig.model_validate(located.data)
    except ValidationError as exc:
        raise ConfigError(located.describe(exc)) from exc
    _check_sampling_against_gaps(config, located)
    _check_static_change(config, located)
    _check_patrol(config, located)
    config = _resolve_model(config, located)
    for unused in config.unused_rules():
        log.warning("%s: %s has no detector class mapped to it in detector.classes", path, unused)
    return config
