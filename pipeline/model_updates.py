"""The store's model rollout on the box: the live model assigned in the device configuration
(:class:`contract.device_config.DeviceModel`) is downloaded, checked, loaded and warmed up on the
``model-update`` thread, then swapped in between two detector batches; frames keep flowing meanwhile.

- Download: into ``<state dir>/models/<sha256>.onnx.part`` in ranged chunks (``Range: bytes=a-b``), so a
  download cut off (store down, box restarted) resumes where the part file ends; the whole file's sha256
  must equal the assignment's before it is renamed to ``<sha256>.onnx``.
- Load: the card the store sent is written beside the file and loaded like any card (the loader checks the
  sha256 again and the output layout); the detector warms up on a dummy frame before it is offered.
- Swap: :class:`SwappableDetector` takes the new detector at the start of its next ``detect_batch``, on the
  scheduler thread: no batch runs half on one model.
- A model whose classes differ from the running one's (e.g. a city's first stall and garbage model), or
  whose card maps classes to violations (``violations``) that the running rules leave unmapped, is
  *staged* instead: downloaded, checked and warmed up as above, then recorded in
  ``<state dir>/models/staged.json``, and the daemon restarts itself (:data:`pipeline.daemon.RESTART_EXIT`,
  which ``streetwatch run`` answers by building the daemon again). Why a restart and not a swap: the class
  list is baked into everything after the detector (the rules' class->violation table and their open
  incidents and stationary tracks, the case reports' event codes, static change's class index, the
  suppressions, the shadow comparison, redaction's person class), and an open incident of a class the new
  model lacks cannot be carried over; rebuilding all of it between batches is a restart in all but name,
  with more ways to leave one part on the old list. The restart keeps the outbox, the zone cache and the
  references on disk, so nothing reported is lost; the new daemon maps the new classes with the
  configuration's ``detector.classes`` where it names them and with the card's ``violations`` otherwise.

Anything that fails leaves the running model in place and is reported in the camera health
(:class:`contract.health.ModelHealth`) until the assignment changes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import numpy as np
import numpy.typing as npt
import yaml

from contract.device_config import DeviceModel
from contract.health import ModelHealth, ModelUpdateState
from detector.card import ModelCard
from detector.detections import Detections
from detector.preprocess import Preprocessor
from pipeline.protocols import DetectorLike
from pipeline.zone_sync import RequestLike

if TYPE_CHECKING:
    from detector.session import SessionSettings
    from pipeline.redaction import PersonSplit

log = logging.getLogger(__name__)

CHUNK_BYTES = 4 * 1024 * 1024
RETRY_S = 30.0  # a failed download (store down) is tried again after this long
IDLE_CHECK_S = 5.0


class ModelUpdateError(Exception):
    """A model could not be made live; the message says what and why."""


class ClassListChanged(ModelUpdateError):
    """The offered model's classes differ from the running one's: it needs the daemon rebuilt."""


STAGED_FILE = "staged.json"


@dataclass(frozen=True)
class StagedModel:
    """A live model with another class list, checked and warmed up, that the next start loads."""

    card: Path
    identity: ModelIdentity
    classes: list[str]
    violations: dict[str, str]  # the card's class -> violation type (may be empty)


def stage_model(folder: Path, card: Path, identity: ModelIdentity, classes: Sequence[str]) -> StagedModel:
    """Record ``card`` as the model the daemon starts with from now on (``folder/staged.json``)."""
    fields = yaml.safe_load(card.read_text(encoding="utf-8")) or {}
    violations = {str(k): str(v) for k, v in (fields.get("violations") or {}).items()}
    staged = StagedModel(card.resolve(), identity, list(classes), violations)
    document = {
        "card": str(staged.card),
        "name": identity.name,
        "version": identity.version,
        "version_id": identity.version_id,
        "classes": staged.classes,
        "violations": violations,
    }
    part = folder / f"{STAGED_FILE}.part"
    part.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    part.replace(folder / STAGED_FILE)
    return staged


def read_staged(folder: Path) -> StagedModel | None:
    """The staged model, or None when there is none (or its card is gone: logged, the YAML's model runs)."""
    path = folder / STAGED_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        card = Path(data["card"])
        identity = ModelIdentity(str(data["name"]), str(data["version"]), data.get("version_id"))
        classes = [str(c) for c in data["classes"]]
        staged = StagedModel(card, identity, classes, dict(data.get("violations") or {}))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.error("%s: unreadable staged model (%s): the configured model runs", path, exc)
        return None
    if not card.is_file():
        log.error("%s: the staged card %s is gone: the configured model runs", path, card)
        return None
    return staged


@dataclass(frozen=True)
class ModelIdentity:
    name: str
    version: str
    version_id: int | None  # the registry's; None: the YAML's model

    @property
    def label(self) -> str:
        return f"{self.name} {self.report_version}".strip()

    @property
    def report_version(self) -> str:
        """As reports carry it (CaseReport.model_version): the registry's id after the card's version."""
        suffix = f" #{self.version_id}" if self.version_id is not None else ""
        return f"{self.version[: 50 - len(suffix)]}{suffix}"


class SwappableDetector:
    """A :class:`pipeline.protocols.DetectorLike` whose model can be replaced while frames flow."""

    def __init__(
        self, detector: DetectorLike, identity: ModelIdentity, *, person_split: PersonSplit | None = None
    ) -> None:
        self._current = detector
        self._identity = identity
        # Where the detector runs lower for redaction, the split keeps the rules at the live model's own
        # threshold: a model swapped in brings its own (its card's confidence and per-class working points).
        self._person_split = person_split
        self._pending: tuple[DetectorLike, ModelIdentity, float | None] | None = None
        self._lock = threading.Lock()
        self.swaps = 0

    @property
    def class_names(self) -> list[str]:
        return self._current.class_names

    @property
    def card(self) -> ModelCard | None:
        return self._current.card

    @property
    def preprocessor(self) -> Preprocessor | None:
        return self._current.preprocessor

    @property
    def identity(self) -> ModelIdentity:
        """The model that analysed the latest batch."""
        return self._identity

    @property
    def confidence(self) -> float:
        return float(getattr(self._current, "confidence", 0.0))

    @confidence.setter
    def confidence(self, value: float) -> None:
        self._current.confidence = value  # type: ignore[attr-defined]

    def offer(self, detector: DetectorLike, identity: ModelIdentity) -> None:
        """Take ``detector`` before the next batch; :class:`ModelUpdateError` when its classes differ."""
        if list(detector.class_names) != list(self._current.class_names):
            raise ClassListChanged(
                f"{identity.label} has classes {detector.class_names}, the running model "
                f"{self._identity.label} has {self._current.class_names}: a different class list needs a "
                "restart of the daemon"
            )
        working: float | None = None
        if self._person_split is not None and hasattr(detector, "confidence"):
            working = float(detector.confidence)  # what the rules see of it: its own thresholds
            detector.confidence = min(working, self._person_split.person_confidence)  # redaction's people
        with self._lock:
            self._pending = (detector, identity, working)

    def detect_batch(
        self, frames: Sequence[npt.NDArray[np.uint8]], max_scale: Sequence[float | None] | None = None
    ) -> list[Detections]:
        with self._lock:
            pending, self._pending = self._pending, None
        if pending is not None:  # between two batches: this one runs wholly on the new model
            self._current, self._identity, working = pending
            if working is not None and self._person_split is not None:
                self._person_split.working_confidence = working
            self.swaps += 1
            log.info("model swapped: %s is live", self._identity.label)
        if max_scale is None:  # stand-in detectors of the tests take frames only
            return self._current.detect_batch(frames)
        return self._current.detect_batch(frames, max_scale=max_scale)


def download(client: RequestLike, model: DeviceModel, folder: Path, *, chunk: int = CHUNK_BYTES) -> Path:
    """The model's file in ``folder``, downloaded (resuming a part file) and sha256-checked."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{model.sha256}.onnx"
    if target.is_file() and _sha256(target) == model.sha256:
        return target
    part = folder / f"{model.sha256}.onnx.part"
    size = part.stat().st_size if part.is_file() else 0
    if size > model.size:
        part.unlink()
        size = 0
    with part.open("ab") as out:
        while size < model.size:
            end = min(size + chunk, model.size) - 1
            response = client.request("GET", model.download_path, headers={"Range": f"bytes={size}-{end}"})
            if response.status_code not in (200, 206):
                raise ModelUpdateError(
                    f"download of model version {model.version_id}: the store answered "
                    f"{response.status_code}: {response.text[:200]}"
                )
            data = response.content
            if response.status_code == 200:  # no range support: the whole file came
                out.seek(0)
                out.truncate()
                size = 0
            elif len(data) != end - size + 1:
                raise ModelUpdateError(
                    f"download of model version {model.version_id}: asked for bytes {size}-{end}, "
                    f"got {len(data)} bytes"
                )
            out.write(data)
            out.flush()
            size += len(data)
    found = _sha256(part)
    if found != model.sha256:
        part.unlink()
        raise ModelUpdateError(
            f"model version {model.version_id}: the downloaded file has sha256 {found}, the store "
            f"assigned {model.sha256}; it is deleted and will be downloaded again"
        )
    part.replace(target)
    return target


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_card(model: DeviceModel, onnx: Path) -> Path:
    """The store's card beside the file, pointing at it (and its sha256: the loader checks it again)."""
    card = {**model.card, "path": onnx.name, "sha256": model.sha256}
    path = onnx.with_suffix(".yaml")
    path.write_text(yaml.safe_dump(card, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def load_detector(
    card: Path, *, provider: str = "cpu", threads: int | None = None, settings: SessionSettings | None = None
) -> DetectorLike:
    """A warmed-up detector (detector.Detector runs a dummy frame when it is built); ``settings``: the
    daemon's session settings (threads, spinning, providers), as the first model got them."""
    from detector.detector import Detector
    from detector.errors import DetectorError

    try:
        return Detector(card, provider=provider, intra_op_threads=threads, settings=settings, warmup=True)
    except (DetectorError, OSError, ValueError, RuntimeError) as exc:
        raise ModelUpdateError(f"{card.stem}: the model does not load or warm up: {exc}") from exc
    except Exception as exc:  # onnxruntime raises its own types for a corrupt graph
        raise ModelUpdateError(f"{card.stem}: the model does not load or warm up: {exc}") from exc


Loader = Callable[[Path], DetectorLike]
OnShadow = Callable[[DetectorLike | None, int | None, float], None]
OnNewClasses = Callable[[StagedModel], None]


class ModelUpdater:
    """The ``model-update`` thread's work: follow the live assignment (:meth:`assign`, from config sync)."""

    def __init__(
        self,
        client: RequestLike,
        folder: Path,
        swapper: SwappableDetector,
        stopping: threading.Event,
        *,
        loader: Loader = load_detector,
        on_shadow: OnShadow | None = None,
        on_new_classes: OnNewClasses | None = None,
        mapped_classes: frozenset[str] | None = None,
    ) -> None:
        # the classes the running rules map (detector.classes): a model whose card maps others is staged
        # like one with another class list (its new classes need new rules)
        self.mapped_classes = mapped_classes
        # a live model with another class list: staged, then this is called (the daemon restarts);
        # None: such a model is refused like one that fails to load
        self.on_new_classes = on_new_classes
        self.on_shadow = on_shadow  # the shadow model, loaded (or None: no shadow), and its share
        self.client = client
        self.folder = folder
        self.swapper = swapper
        self.stopping = stopping
        self.loader = loader
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._target: DeviceModel | None = None
        self._shadow: DeviceModel | None = None
        self._state: ModelUpdateState = "running"
        self._error: str | None = None
        self._failed_sha256: str | None = None  # not retried until the assignment changes
        self._offered_sha256: str | None = None  # handed to the swapper: live from its next batch
        self._shadow_running: tuple[str, float] | None = None  # (sha256, share) handed to on_shadow
        self._shadow_failed: str | None = None
        self._shadow_error: str | None = None  # reported beside the live model's state

    def assign(self, models: Sequence[DeviceModel]) -> None:
        """The models of a changed device configuration (called from the store-sync thread)."""
        live = next((m for m in models if m.role == "live"), None)
        with self._lock:
            self._shadow = next((m for m in models if m.role == "shadow"), None)
            if live is not None and (self._target is None or live.sha256 != self._target.sha256):
                self._failed_sha256 = None
            self._target = live
        self._wake.set()

    def wake(self) -> None:
        """Look at the assignment now (and at ``stopping``)."""
        self._wake.set()

    def health(self) -> ModelHealth:
        identity = self.swapper.identity
        with self._lock:
            target, shadow, state, error = self._target, self._shadow, self._state, self._error
        return ModelHealth(
            live=identity.label[:200],
            live_version_id=identity.version_id,
            state=state,
            target_version_id=target.version_id if target is not None else None,
            shadow_version_id=shadow.version_id if shadow is not None else None,
            error="; ".join(e for e in (error, self._shadow_error) if e)[:500] or None,
        )

    def run(self) -> None:
        while not self.stopping.is_set():
            self._wake.clear()
            retry = self.step()
            self._wake.wait(RETRY_S if retry else IDLE_CHECK_S)

    def step(self) -> bool:
        """Make the live and the shadow target run; True when a transient failure should be retried."""
        retry_live = self.step_live()
        retry_shadow = self.step_shadow()
        return retry_live or retry_shadow

    def step_shadow(self) -> bool:
        if self.on_shadow is None:
            return False
        with self._lock:
            shadow = self._shadow
        if shadow is None:
            if self._shadow_running is not None:
                self.on_shadow(None, None, 0.0)
                self._shadow_running = None
            return False
        wanted = (shadow.sha256, shadow.shadow_share)
        if wanted == self._shadow_running or shadow.sha256 == self._shadow_failed:
            return False
        try:
            path = download(self.client, shadow, self.folder)
        except (httpx.TransportError, ModelUpdateError) as exc:
            self._shadow_error = f"shadow version {shadow.version_id}: download: {exc}"
            log.error("%s", self._shadow_error)
            return True
        try:
            detector = self.loader(write_card(shadow, path))
        except ModelUpdateError as exc:
            self._shadow_failed = shadow.sha256
            self._shadow_error = f"shadow version {shadow.version_id}: {exc}"
            log.error("%s", self._shadow_error)
            return False
        self.on_shadow(detector, shadow.version_id, shadow.shadow_share)
        self._shadow_running = wanted
        self._shadow_error = None
        log.info("shadow model version %d runs on %.0f%% of frames", shadow.version_id, 100 * wanted[1])
        return False

    def step_live(self) -> bool:
        """Make the live target live when it is not; True when a transient failure should be retried."""
        with self._lock:
            target = self._target
            if target is None or target.version_id == self.swapper.identity.version_id:
                self._state, self._error = "running", None
                return False
            if target.sha256 in (self._failed_sha256, self._offered_sha256):
                return False
            self._state = "downloading"
        try:
            path = download(self.client, target, self.folder)
        except (httpx.TransportError, ModelUpdateError) as exc:
            self._fail(target, f"download: {exc}", permanent=False)
            return True
        self._set_state("loading")
        card = write_card(target, path)
        identity = ModelIdentity(target.name[:100], target.version[:50], target.version_id)
        try:
            detector = self.loader(card)
            unmapped = self._newly_mapped(target, detector)
            if unmapped:
                raise ClassListChanged(
                    f"{identity.label} maps classes {', '.join(unmapped)} to violations (its card's "
                    "violations) that the running rules do not map: new rules need a restart of the daemon"
                )
            self.swapper.offer(detector, identity)
        except ClassListChanged as exc:
            if self.on_new_classes is None:
                self._fail(target, str(exc), permanent=True)
                return False
            staged = stage_model(self.folder, card, identity, detector.class_names)
            log.warning("model version %d needs new rules (%s): staged, restarting", target.version_id, exc)
            with self._lock:
                self._state, self._error, self._offered_sha256 = "loading", None, target.sha256
            self.on_new_classes(staged)
            return False
        except ModelUpdateError as exc:
            self._fail(target, str(exc), permanent=True)
            return False
        log.info("model version %d loaded and warmed up: swapping it in", target.version_id)
        with self._lock:
            self._state, self._error, self._offered_sha256 = "running", None, target.sha256
        return False

    def _newly_mapped(self, target: DeviceModel, detector: DetectorLike) -> list[str]:
        """Classes of the model its card maps to a violation and the running rules do not map."""
        if self.mapped_classes is None:
            return []
        violations = target.card.get("violations")
        if not isinstance(violations, dict):
            return []
        return [c for c in detector.class_names if c in violations and c not in self.mapped_classes]

    def _set_state(self, state: ModelUpdateState) -> None:
        with self._lock:
            self._state = state

    def _fail(self, target: DeviceModel, error: str, *, permanent: bool) -> None:
        log.error("model version %d not made live (the running model stays): %s", target.version_id, error)
        with self._lock:
            self._state, self._error = "failed", error
            if permanent:
                self._failed_sha256 = target.sha256


__all__ = [
    "ClassListChanged",
    "ModelIdentity",
    "ModelUpdateError",
    "ModelUpdater",
    "StagedModel",
    "SwappableDetector",
    "download",
    "read_staged",
    "stage_model",
    "write_card",
]
