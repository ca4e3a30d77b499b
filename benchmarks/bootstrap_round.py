"""The measured bootstrap round (issue 11, part 3): from a parking-only model to a city's own stall and
garbage model with no human in the loop but a simulated operator who answers from the clips' ground truth.

    PYTHONPATH=. .venv/bin/python -m benchmarks.bootstrap_round --out runs/bootstrap \\
        --clips 64 --unseen 8 --clip-s 120 --unseen-s 240 --demo-s 240 --epochs 500 --imgsz 320 \\
        --batch 16 --images frame --val-share 0.2 --piles 3

The five steps, each timed:

1. render: ``--clips`` generated street clips for the round and ``--unseen`` more for the evaluation
   (demo.scripted_actors with other looks and spots, and other streets and traffic; seeds 1000+ and
   2000+, disjoint from the demo's 7 and from the scene generator's test split; ``--piles`` of rubbish in
   each round's clip, one in the unseen ones), and the demo clip (seed 7);
2. before: the real daemon (in-process, as ``streetwatch run`` builds it) against a real store
   (``streetwatch api serve`` on SQLite, set up with the CLI as scripts/demo.sh does) on every clip, with the
   starting model (default: the demo ONNX with only its vehicle classes mapped in ``detector.classes``:
   the daemon has no stall or garbage class) and static change on the pavement zone;
3. operator: through the store's HTTP API, as the console would: cases of the round's clips that match an
   incident are confirmed (``file``), ``unknown_object`` cases re-coded to the incident's type first
   (``recode``), cases that match none voided as ``false_positive``; where a confirmed case's box misses
   its object (IoU <= 0.5: a static change boxes only what changed inside the zone) the object's box is
   drawn on its undrawn frame (``redraw``); missed incidents get a box drawn on a
   case's evidence image (``POST /cases/{id}/labels``) for ``--draw-share`` of them when the store has
   that route;
4. train: ``export-reviewed`` (``--images``: the undrawn frames by default), Ultralytics training from
   scratch for ``--epochs`` (or time-boxed by ``--train-hours``; offline; on every core),
   ``streetwatch evaluate`` (AP50) of both models on ground-truth frames of the unseen clips, ``models
   publish`` with the card's class -> violation map, assigned as shadow, then promoted;
5. after: the same daemon configuration on the unseen clips and the demo clip: the store's new live model
   has another class list, so the daemon stages it and restarts onto it (pipeline.model_updates).

It prints one table: per class (stall, garbage, parking) event-level precision and recall on the unseen
clips and on the demo clip, and AP50 on the unseen clips' frames, before and after; the operator
decisions the round consumed; the wall time of each step. Then what the new model finds on
``../shared/data/photos/garbage-amsterdam``. Writes ``OUT/result.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import yaml

from datasets.augmentation import DEFAULT_HUE_SHIFT
from datasets.scenes import CLASS_ID, CLASSES, demo
from datasets.scenes.score import CaseEvent, Incident, Timeline, case_events, load_timeline, score
from datasets.scenes.video import CLASS_TO_VIOLATION, DemoScene, _zone_config, daemon_config, render_demo
from detector.boxes import box_iou_batch

log = logging.getLogger("bootstrap")

REPO = Path(__file__).resolve().parents[1]
DEVICE = "bootstrap-box"
START_CARD = REPO / "models" / "streetwatch-demo-n.yaml"
ARCHITECTURE = REPO / "datasets" / "scenes" / "streetwatch-demo.yaml"
GARBAGE_PHOTOS = REPO.parent / "shared" / "data" / "photos" / "garbage-amsterdam"
VEHICLES = ("car", "truck", "bus", "motorcycle")
START_CLASSES = {name: "illegal_parking" for name in VEHICLES}  # no stall, no garbage
KINDS = {"stall": "street_stall", "garbage": "exposed_garbage", "parking": "illegal_parking"}
TRAIN_SEED, UNSEEN_SEED, DEMO_SEED = 1000, 2000, 7
UNSEEN_INDEX, DEMO_INDEX = 1000, 9999  # clips' place keys: the round's own clips count from 0
TOLERANCE_S = 10.0
RESTART_PICKUP_S = 180.0


@dataclass
class Clip:
    name: str  # its camera's code in the store, before the phase prefix
    index: int  # its places' keys (one per zone and phase: cases of two clips never merge)
    seed: int
    look: int
    folder: Path
    timeline: Timeline
    duration_s: float
    piles: int = 1  # piles of rubbish (demo.scripted_actors): more in the round's clips than the unseen ones


@dataclass
class Round:
    out: Path
    store_url: str
    password: str
    key_file: Path
    env: dict[str, str]  # the store's CLI environment (its data dir)
    steps: dict[str, float] = field(default_factory=dict)
    decisions: dict[str, int] = field(default_factory=dict)


@contextmanager
def step(state: Round, name: str) -> Iterator[None]:
    began = time.monotonic()
    print(f"== {name}", flush=True)
    try:
        yield
    finally:
        state.steps[name] = state.steps.get(name, 0.0) + time.monotonic() - began


# --- the store ------------------------------------------------------------------------------------------


def cli(*args: str, env: dict[str, str], stdout: Any = None) -> None:
    subprocess.run([sys.executable, "-m", "streetwatch", *args], check=True, env=env, stdout=stdout)


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def case_store(out: Path) -> Iterator[Round]:
    """A fresh SQLite store served by ``streetwatch api serve``: an admin operator, the round's device, the
    demo city's reference data."""
    data = out / "store"
    env = {**os.environ, "STREETWATCH_DATA_DIR": str(data), "STREETWATCH_RUN_JOBS": "false"}
    password = secrets.token_urlsafe(12)
    cli("api", "migrate", env=env, stdout=subprocess.DEVNULL)
    cli("api", "create-user", "operator", "--role", "admin", env={**env, "STREETWATCH_PASSWORD": password})
    key_file = out / "device.key"
    with key_file.open("w", encoding="utf-8") as handle:
        cli("api", "create-device", DEVICE, env=env, stdout=handle)
    key_file.chmod(0o600)
    cli("api", "import-config", str(REPO / "configs" / "reference" / "demo-city.yaml"), env=env)
    port = free_port()
    log_file = (out / "store.log").open("w", encoding="utf-8")
    server = subprocess.Popen(
        [sys.executable, "-m", "streetwatch", "api", "serve", "--port", str(port)],
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None:
                raise RuntimeError(f"the store exited with {server.returncode}: see {out / 'store.log'}")
            time.sleep(0.2)
        else:
            raise RuntimeError(f"the store did not answer on {url}: see {out / 'store.log'}")
        yield Round(out, url, password, key_file, env)
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
        log_file.close()


class Api:
    """The store's HTTP API as the operator (an admin) uses it."""

    def __init__(self, state: Round) -> None:
        self.client = httpx.Client(base_url=state.store_url, timeout=60)
        login = self.client.post(
            "/api/v1/auth/login", json={"username": "operator", "password": state.password}
        )
        login.raise_for_status()
        self.token = str(login.json()["access_token"])
        self.client.headers["Authorization"] = f"Bearer {self.token}"
        types = self.get("/api/v1/violation-types", limit=500)["data"]
        self.type_of = {t["code"]: t["pipeline_type"] for t in types}
        self.code_of: dict[str, str] = {}
        for t in types:  # the first active code of each pipeline type (what the daemon reports by default)
            if t.get("active", True):
                self.code_of.setdefault(t["pipeline_type"], t["code"])

    def get(self, path: str, **params: Any) -> Any:
        response = self.client.get(path, params=params)
        response.raise_for_status()
        return response.json()

    def post(self, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        return self.client.post(path, json=body)

    def cases(self, camera: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        while True:
            page = self.get("/api/v1/cases", limit=200, offset=len(rows))
            rows.extend(page["data"])
            if not page["data"] or len(rows) >= page["count"]:
                return [row for row in rows if row.get("camera_code") == camera]

    def close(self) -> None:
        self.client.close()


# --- clips, configurations, daemon runs -----------------------------------------------------------------


def render(
    state: Round,
    name: str,
    index: int,
    seed: int,
    duration_s: float,
    *,
    look: int | None = None,
    piles: int = 1,
) -> Clip:
    """One clip: the demo's script with this seed's street and traffic and (unless ``look`` is given, 0 for
    the demo's) this seed's looks of the scripted actors, with ``piles`` of rubbish."""
    look = seed if look is None else look
    folder = state.out / "clips" / name
    files = render_demo(
        folder,
        seed,
        model=START_CARD,
        store_url=state.store_url,
        duration_s=duration_s,
        look=look,
        piles=piles,
    )
    return Clip(name, index, seed, look, folder, load_timeline(files.timeline), duration_s, piles)


def place_key(phase: str, clip: Clip, zone: int) -> str:
    """A place of its own for each zone of each clip and phase (the demo city's street, 310101...)."""
    return f"31010100{1 if phase == 'before' else 2}{clip.index:04d}{zone:02d}"


def zones(phase: str, clip: Clip) -> list[dict[str, Any]]:
    """before: the pavement judged by static change only (no stall or garbage class yet); after: by the
    model's stall and garbage classes (static change stays on the far pavement)."""
    found = []
    for index, zone in enumerate(demo.ZONES):
        config = _zone_config(zone)
        config["place"] = place_key(phase, clip, index)
        if zone.id == "pavement" and phase == "before":
            config.pop("rules")
            config["static_change"] = {
                "dwell_s": demo.DWELL_S,
                "report_as": "unknown_object",
                "min_area": demo.STATIC_MIN_AREA,
            }
        found.append(config)
    return found


def camera_code(phase: str, clip: Clip) -> str:
    return f"{phase[0]}-{clip.name}"


def register(state: Round, phase: str, clips: list[Clip]) -> None:
    """The phase's cameras and zones in the store (``streetwatch api import-config``)."""
    places = [
        {"key": place_key(phase, clip, index), "name": f"{clip.name} {zone.id} ({phase})", "kind": "grid"}
        | {"owner": "demo-squad", "lat": 31.2305, "lon": 121.4739}
        for clip in clips
        for index, zone in enumerate(demo.ZONES)
    ]
    document = {
        "version": 1,
        "places": places,
        "cameras": [
            {
                "code": camera_code(phase, clip),
                "name": f"{clip.name} ({phase})",
                "device": DEVICE,
                "zones": [{"code": z.pop("id"), **z} for z in zones(phase, clip)],
            }
            for clip in clips
        ],
    }
    path = state.out / f"store-{phase}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False, allow_unicode=True), encoding="utf-8")
    cli("api", "import-config", str(path), env=state.env, stdout=subprocess.DEVNULL)


def write_config(state: Round, phase: str, clip: Clip, *, paced: bool = False) -> Path:
    """The daemon configuration: one per phase's box (state dir ``OUT/edge-<phase>``), this clip's camera."""
    config = daemon_config(
        video=(clip.folder / "demo.mp4").resolve(),
        model=START_CARD,
        store_url=state.store_url,
        device_key_file=state.key_file.resolve(),
        work_dir=(state.out / f"edge-{phase}").resolve(),
    )
    config["detector"]["classes"] = dict(START_CLASSES)  # type: ignore[index]
    config["store"]["zone_sync_s"] = 0.5  # type: ignore[index]
    camera = config["cameras"][0]  # type: ignore[index]
    camera["id"] = camera_code(phase, clip)
    camera["zones"] = zones(phase, clip)
    if paced:
        camera["realtime"] = True
    path = clip.folder / f"daemon-{phase}{'-paced' if paced else ''}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False, width=110), encoding="utf-8")
    return path


def run_daemon(path: Path, *, until_restart: bool = False) -> int:
    """The daemon as ``streetwatch run`` builds it, until its file ends; a restart onto a staged model is
    followed (``until_restart``: stop there and return RESTART_EXIT instead)."""
    from pipeline.cli import check_config
    from pipeline.daemon import RESTART_EXIT, Daemon

    while True:
        daemon = Daemon(check_config(path))
        code = run_bounded(daemon, RESTART_PICKUP_S) if until_restart else daemon.run()
        if until_restart or code != RESTART_EXIT:
            return code


def run_bounded(daemon: Any, limit_s: float) -> int:
    """``daemon.run()`` for at most ``limit_s`` (a paced clip that never picks up the model stops there)."""
    result: list[int] = []
    runner = threading.Thread(target=lambda: result.append(daemon.run()), daemon=True)
    runner.start()
    runner.join(limit_s)
    if runner.is_alive():
        daemon.stop()
        runner.join(60)
        raise RuntimeError(f"the daemon did not take the promoted model within {limit_s:.0f} s")
    return result[0]


# --- the simulated operator -----------------------------------------------------------------------------


def truth(clip: Clip, case: CaseEvent) -> Incident | None:
    """The incident the case shows: same zone, the case's first sighting and confirmation within it
    (widened by the tolerance); of several, the one that started nearest the first sighting."""
    eligible = [
        i
        for i in clip.timeline.incidents
        if i.zone == case.zone
        and i.start_s - TOLERANCE_S <= case.first_seen_s <= i.end_s + TOLERANCE_S
        and i.start_s - TOLERANCE_S <= case.confirmed_s <= i.end_s + TOLERANCE_S
    ]
    return min(eligible, key=lambda i: abs(i.start_s - case.first_seen_s)) if eligible else None


def act(api: Api, state: Round, case_id: int, action: str, body: dict[str, Any] | None = None) -> bool:
    response = api.post(f"/api/v1/cases/{case_id}/actions/{action}", body or {})
    if response.status_code >= 400:
        log.warning("case %d: %s answered %d: %s", case_id, action, response.status_code, response.text[:200])
        return False
    state.decisions[action] = state.decisions.get(action, 0) + 1
    return True


def review(api: Api, state: Round, clips: list[Clip], draw_share: float) -> None:
    """Every case of the round's clips decided from the ground truth, as an operator would in the console."""
    missed: list[tuple[Clip, Incident]] = []
    for clip in clips:
        rows = api.cases(camera_code("before", clip))
        events = {e.case_id: e for e in case_events(rows, api.type_of, clip.timeline.start_time)}
        found: set[Incident] = set()
        for row in rows:
            event = events.get(int(row["id"]))
            if event is None or row["status"] != "pending_review":
                continue
            incident = truth(clip, event)
            if incident is None:
                act(api, state, event.case_id, "void", {"reason": "false_positive"})
                continue
            if incident.violation_type == "unknown_object":
                continue  # dumped furniture: no type of this round's for it; left to classify
            found.add(incident)
            if event.violation_type != incident.violation_type:
                code = api.code_of[incident.violation_type]
                if not act(api, state, event.case_id, "recode", {"violation_code": code}):
                    continue
            if act(api, state, event.case_id, "file"):
                redraw(api, state, clip, event, incident)
        missed += [(clip, i) for i in clip.timeline.incidents if i not in found and i.zone != "far-pavement"]
    draw_missed(api, state, missed[: round(draw_share * len(missed))])


def draw_missed(api: Api, state: Round, missed: list[tuple[Clip, Incident]]) -> None:
    """A box drawn on every case picture of the same clip that shows the missed object (the picture's time
    within the incident), as an operator who reviews each of those cases draws what the detector missed
    (``POST /api/v1/cases/{id}/labels``): a picture showing it without a box would teach that it is
    background. Every object of the incident on the picture gets its box (several piles of one dumping).
    Each box counts as a decision; skipped where the store lacks the route."""
    for clip, incident in missed:
        rows = api.cases(camera_code("before", clip))
        for event in case_events(rows, api.type_of, clip.timeline.start_time):
            shown = event.confirmed_s  # the undrawn frame and the confirmation picture: the confirming frame
            if not incident.start_s <= shown <= incident.end_s:
                continue
            boxes = ground_truth_boxes(clip, incident, shown)
            if not boxes:
                continue
            detail = api.get(f"/api/v1/cases/{event.case_id}")
            # the undrawn frame, as the console offers it first (an older store: the confirmation picture)
            pictures = sorted(
                (e for e in detail.get("evidence", []) if e.get("kind") in ("frame", "confirmation")),
                key=lambda e: e.get("kind") != "frame",
            )
            if not pictures:
                continue
            for box in boxes:
                body = {
                    "evidence_id": pictures[0]["id"],
                    "box": box,
                    "event_code": api.code_of[incident.violation_type],
                }
                response = api.post(f"/api/v1/cases/{event.case_id}/labels", body)
                if response.status_code in (404, 405) and "labels" not in response.text:
                    log.warning(
                        "the store has no labels route yet: %d missed object(s) not drawn", len(missed)
                    )
                    return
                if response.status_code < 400:
                    state.decisions["label"] = state.decisions.get("label", 0) + 1


OBJECT_CLASS = {"street_stall": "stall", "exposed_garbage": "garbage"}
SAME_OBJECT_IOU = 0.5  # a reported box this close to the object needs no correction


def redraw(api: Api, state: Round, clip: Clip, event: CaseEvent, incident: Incident) -> None:
    """Where the case's box misses the object (a static change boxes only what changed inside the zone: a
    stall's table, not its umbrella), the operator draws the object's box on the undrawn frame, as the
    drawing page offers; the export takes it for the reported box (datasets.reviewed.corrected). Every
    object of the incident the reported boxes miss is drawn (several piles of one dumping)."""
    boxes = ground_truth_boxes(clip, incident, event.confirmed_s)
    if not boxes:
        return
    detail = api.get(f"/api/v1/cases/{event.case_id}")
    frames = [e for e in detail.get("evidence", []) if e.get("kind") == "frame"]
    reported = [b["xyxy"] for s in detail.get("sightings", []) for b in s.get("boxes") or []]
    if not frames:
        return
    width, height = frames[0]["width"], frames[0]["height"]
    for box in boxes:
        truth_px = np.array([box[0] * width, box[1] * height, box[2] * width, box[3] * height])
        if reported and box_iou_batch(np.array(reported, np.float64), truth_px).max() > SAME_OBJECT_IOU:
            continue
        code = api.code_of[incident.violation_type]
        body = {"evidence_id": frames[0]["id"], "box": box, "event_code": code}
        if api.post(f"/api/v1/cases/{event.case_id}/labels", body).status_code < 400:
            state.decisions["redraw"] = state.decisions.get("redraw", 0) + 1


def ground_truth_boxes(clip: Clip, incident: Incident, t: float) -> list[list[float]]:
    """The incident's objects at ``t`` (the labelled objects of its class: one stall, one or more piles),
    largest first, each normalised [x1, y1, x2, y2]."""
    _, labels = DemoScene(clip.seed, clip.duration_s, look=clip.look, piles=clip.piles).frame(t)
    wanted = OBJECT_CLASS.get(incident.violation_type)
    boxes = sorted(
        (label.xyxy for label in labels if label.name == wanted),
        key=lambda b: -(b[2] - b[0]) * (b[3] - b[1]),
    )
    return [
        [x0 / demo.WIDTH, y0 / demo.HEIGHT, x1 / demo.WIDTH, y1 / demo.HEIGHT] for x0, y0, x1, y1 in boxes
    ]


# --- training, evaluation, publishing -------------------------------------------------------------------


def export_reviewed(state: Round, images: str, val_share: float) -> Path:
    """``streetwatch dataset export-reviewed`` (``images``: crop or frame; split by incident, ``val_share``
    of the incidents held out for validation) from the store's data dir."""
    from api.db import make_engine, make_session_factory
    from api.settings import Settings
    from datasets.reviewed import ImageSource
    from datasets.reviewed import export_reviewed as export

    settings = Settings(data_dir=state.out / "store", _env_file=None)
    engine = make_engine(settings)
    try:
        with make_session_factory(engine)() as session:
            # no test split: the unseen clips are the round's test; a validation share picks the weights
            path, report = export(
                session,
                settings.evidence_dir,
                state.out / "reviewed",
                source=ImageSource(images),
                fractions=(1.0 - val_share, val_share, 0.0),
            )
    finally:
        engine.dispose()
    from datasets.reviewed import default_mapping

    print(report.table(default_mapping().classes))
    spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    # a tiny round may hold no incident out, or every one: the other split's images stand in
    if not any((path.parent / spec["train"]).glob("*.jpg")):
        spec["train"] = spec["val"]
    for split in ("val", "test"):
        if not any((path.parent / spec[split]).glob("*.jpg")):
            spec[split] = spec["train"]
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def train(state: Round, data: Path, args: argparse.Namespace) -> tuple[Path, str, dict[str, float]]:
    """From scratch (the starting model's weights are not in the repository), for --epochs or time-boxed;
    the card gets the class -> violation map the daemon needs to take it without configuration."""
    from datasets.train import train as run_training

    extra: dict[str, Any] = {"pretrained": False, "amp": False, "patience": 1000, "close_mosaic": 2}
    if args.train_hours:
        extra["time"] = args.train_hours
    os.environ.setdefault("YOLO_OFFLINE", "1")
    result = run_training(
        str(ARCHITECTURE),
        data,
        epochs=args.epochs,
        imgsz=args.imgsz,
        batch=args.batch,
        project=state.out / "runs",
        name="city",
        workers=0,
        out_dir=state.out / "models",
        export_name="streetwatch-city",
        overwrite=True,
        hue_shift=args.hue_shift,
        extra=extra,
    )
    assert result.card is not None
    print("working confidence per class (validation F2 peak):", result.working_points or "none")
    print(f"trained on {result.threads} torch threads: {result.command}")
    card = yaml.safe_load(result.card.read_text(encoding="utf-8"))
    card["violations"] = {**CLASS_TO_VIOLATION}
    card["version"] = "bootstrap-1"
    result.card.write_text(yaml.safe_dump(card, sort_keys=False, width=110), encoding="utf-8")
    return result.card, result.command, result.working_points


def ground_truth_frames(state: Round, clips: list[Clip], every_s: float) -> tuple[Path, Path]:
    """Frames of the unseen clips with every drawn object labelled (a YOLO dataset, split test), and the
    same frames redacted as the daemon's training frames are (:func:`as_training_frame`): a model trained
    on reviewed frames learns from pictures blurred outside the zones, and the daemon shows it sharp
    ones; the two AP50s side by side measure what that costs."""
    from datasets.scenes.generate import yolo_lines

    roots = (state.out / "truth", state.out / "truth-redacted")
    for root in roots:
        (root / "images" / "test").mkdir(parents=True, exist_ok=True)
        (root / "labels" / "test").mkdir(parents=True, exist_ok=True)
    for clip in clips:
        scene = DemoScene(clip.seed, clip.duration_s, look=clip.look)
        for t in np.arange(every_s / 2, clip.duration_s, every_s):
            image, found = scene.frame(float(t))
            name = f"{clip.name}-{t:07.1f}"
            kept = [label for label in found if label.name in CLASS_ID]
            lines = "".join(f"{line}\n" for line in yolo_lines(kept, demo.WIDTH, demo.HEIGHT))
            persons = [label.xyxy for label in found if label.name == "person"]
            for root, picture in zip(roots, (image, as_training_frame(image, persons)), strict=True):
                cv2.imwrite(str(root / "images" / "test" / f"{name}.jpg"), np.asarray(picture))
                (root / "labels" / "test" / f"{name}.txt").write_text(lines, encoding="utf-8")
    paths = []
    for root in roots:
        spec = {
            "path": str(root.resolve()),
            "train": "images/test",
            "val": "images/test",
            "test": "images/test",
        }
        spec["names"] = dict(enumerate(CLASSES))  # type: ignore[assignment]
        (root / "dataset.yaml").write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
        paths.append(root / "dataset.yaml")
    return paths[0], paths[1]


def as_training_frame(image: Any, persons_xyxy: list[tuple[int, int, int, int]]) -> Any:
    """``image`` redacted as the daemon redacts a training frame (evidence kind ``frame``) under the
    default policy: blurred outside every zone of the camera, people pixelated (no violation box: the
    zones alone are kept sharp)."""
    from detector.detections import Detections
    from pipeline import redaction
    from pipeline.config import RedactionConfig

    polygons = [
        np.array(zone.polygon(demo.CAMERA), np.float32) * (demo.WIDTH, demo.HEIGHT) for zone in demo.ZONES
    ]
    return redaction.redact(
        np.asarray(image),
        RedactionConfig(),
        persons_xyxy=np.array(persons_xyxy, np.float32).reshape(-1, 4),
        violation=Detections.empty(),
        class_names=[],
        polygon_px=polygons[0],
        also_keep_px=polygons[1:],
    )


def ap50(card: Path, data: Path, mapped: set[str]) -> dict[str, float | None]:
    """AP50 per kind; None for a kind none of whose classes the daemon maps (the model cannot report it)."""
    from datasets.evaluate import evaluate

    result = evaluate(card, data, split="test")
    per = {result.class_names[c.class_id]: c for c in result.per_class}
    figures: dict[str, float | None] = {}
    for kind, names in (("stall", ["stall"]), ("garbage", ["garbage"]), ("parking", list(VEHICLES))):
        present = [per[n].ap50 for n in names if n in per and per[n].labels > 0 and n in mapped]
        figures[kind] = float(np.mean(present)) if present else None
    return figures


def publish_and_promote(api: Api, state: Round, card: Path, command: str, figures: dict[str, Any]) -> int:
    from detector.publish import publish

    version = publish(
        api.client, api.token, card, dataset=str(state.out / "reviewed"), training_command=command,
        evaluation={f"ap50_{k}": v for k, v in figures.items() if v is not None},
    )  # fmt: skip
    version_id = int(version["id"])
    body = {"role": "shadow", "devices": [DEVICE], "shadow_share": 0.1}
    api.post(f"/api/v1/models/{version_id}/assignments", body).raise_for_status()
    api.post(f"/api/v1/models/{version_id}/promote", {"devices": [DEVICE]}).raise_for_status()
    return version_id


# --- scoring and the table ------------------------------------------------------------------------------


def event_scores(api: Api, phase: str, clips: list[Clip]) -> dict[str, tuple[int, int, int]]:
    """Per kind: (matches, missed incidents, false cases) summed over the clips."""
    totals = {kind: (0, 0, 0) for kind in KINDS}
    for clip in clips:
        events = case_events(api.cases(camera_code(phase, clip)), api.type_of, clip.timeline.start_time)
        for kind, violation in KINDS.items():
            result = score(
                [i for i in clip.timeline.incidents if i.violation_type == violation],
                [e for e in events if e.violation_type == violation],
                TOLERANCE_S,
            )
            m, n, f = totals[kind]
            totals[kind] = (m + len(result.matches), n + len(result.missed), f + len(result.false_cases))
    return totals


def pr(counts: tuple[int, int, int]) -> str:
    matches, missed, false = counts
    p = matches / (matches + false) if matches + false else float("nan")
    r = matches / (matches + missed) if matches + missed else float("nan")
    return f"{p:.2f}/{r:.2f}"


def fmt(value: float | None) -> str:
    return "  n/a" if value is None else f"{value:5.3f}"


def table(result: dict[str, Any]) -> str:
    rows = [
        f"{'class':<9}{'unseen P/R before':>18}{'after':>11}{'demo P/R before':>17}{'after':>11}"
        f"{'AP50 before':>13}{'after':>8}{'redacted':>10}"
    ]
    for kind in KINDS:
        rows.append(
            f"{kind:<9}{pr(result['unseen_before'][kind]):>18}{pr(result['unseen_after'][kind]):>11}"
            f"{pr(result['demo_before'][kind]):>17}{pr(result['demo_after'][kind]):>11}"
            f"{fmt(result['ap50_before'][kind]):>13}{fmt(result['ap50_after'][kind]):>8}"
            f"{fmt(result['ap50_after_redacted'][kind]):>10}"
        )
    decisions = result["decisions"]
    rows.append(
        f"operator decisions consumed: {sum(decisions.values())} ("
        + ", ".join(f"{k} {v}" for k, v in sorted(decisions.items()))
        + ")"
    )
    rows.append("wall time: " + ", ".join(f"{k} {v:.0f} s" for k, v in result["steps"].items()))
    rows.append(f"round total: {sum(result['steps'].values()) / 60:.1f} min")
    rows.append(
        "AP50 redacted: the new model on the same frames redacted as its training frames were (blurred "
        "outside the zones, people pixelated); its gap to 'after' is what learning from redacted frames "
        "costs on the sharp frames the daemon sees"
    )
    return "\n".join(rows)


def garbage_photos(card: Path, folder: Path) -> str:
    """What the new model finds on real garbage photos, each class at its working confidence (no target: the
    round's scenes are drawn)."""
    from detector.detector import Detector

    photos = sorted(p for p in folder.glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not photos:
        return f"garbage photos: none in {folder}"
    from pipeline.incidents import class_confidence_table

    detector = Detector(card)
    # each class at its working confidence, as a zone rule without min_confidence takes it
    working = class_confidence_table(detector.class_names, detector.card.thresholds.classes)
    counts: dict[str, int] = {}
    garbage_boxes: list[int] = []  # per photo: many small boxes are noise, one or two on a pile a finding
    for photo in photos:
        image = cv2.imread(str(photo))
        if image is None:
            continue
        found = detector.detect_batch([image.astype(np.uint8, copy=False)])[0]
        kept = found.confidence >= working[found.class_id]
        names = [detector.class_names[int(c)] for c in found.class_id[kept]]
        garbage_boxes.append(names.count("garbage"))
        for name in set(names):
            counts[name] = counts.get(name, 0) + 1
    shown = ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])) or "nothing"
    with_garbage = [n for n in garbage_boxes if n]
    spread = f" ({min(with_garbage)}-{max(with_garbage)} boxes each)" if with_garbage else ""
    return (
        f"garbage photos ({folder.name}): {len(with_garbage)}/{len(photos)} with a garbage box{spread}; "
        f"photos with each class: {shown}; look at the boxes before reading this as garbage found"
    )


# --- the round ------------------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True, help="New folder for everything the round writes.")
    parser.add_argument("--clips", type=int, default=64, help="Generated clips the operator reviews.")
    parser.add_argument("--unseen", type=int, default=8, help="Generated clips for the evaluation.")
    parser.add_argument("--clip-s", type=float, default=120.0, help="Length of each round's clip.")
    parser.add_argument(
        "--unseen-s",
        type=float,
        default=240.0,
        help="Length of each unseen clip. Clips of 120 s keep the stall, the bags, the first car and the "
        "furniture; 240 s also the truck.",
    )
    parser.add_argument("--demo-s", type=float, default=240.0, help="Length of the demo clip.")
    parser.add_argument(
        "--piles",
        type=int,
        default=3,
        help="Piles of rubbish dumped together in each round's clip (bags, a heap, litter; as many as fit on "
        "the pavement): one incident, more examples of it. The unseen and demo clips keep one pile of bags.",
    )
    parser.add_argument(
        "--train-hours",
        type=float,
        default=0.0,
        help="Training time box in hours (Ultralytics then fits its epochs to it); 0, the default: --epochs. "
        "A time box makes the model depend on how busy the box is (391 and 496 epochs in the same 0.6 h).",
    )
    parser.add_argument("--epochs", type=int, default=500, help="Training epochs (with --train-hours 0).")
    parser.add_argument(
        "--hue-shift",
        type=float,
        default=DEFAULT_HUE_SHIFT,
        help="Training's largest hue rotation (share of the colour circle; streetwatch train --hue-shift). "
        "0.5 (every colour) found the demo's stall but lost garbage: benchmarks/README.md, Bootstrap round.",
    )
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument(
        "--images", choices=("crop", "frame"), default="frame", help="export-reviewed --images."
    )
    parser.add_argument(
        "--val-share",
        type=float,
        default=0.2,
        help="Share of the reviewed incidents held out to validate: it picks the weights and each class's "
        "working confidence (F2 peak), so a dozen frames make those points move.",
    )
    parser.add_argument(
        "--draw-share",
        type=float,
        default=1.0,
        help="Share of the missed objects the operator boxes (on every case picture that shows them).",
    )
    parser.add_argument("--truth-every-s", type=float, default=10.0, help="Ground-truth frame spacing.")
    parser.add_argument("--photos", type=Path, default=GARBAGE_PHOTOS)
    return parser.parse_args(argv)


def bootstrap_round(args: argparse.Namespace) -> dict[str, Any]:
    if args.out.exists() and any(args.out.iterdir()):
        raise SystemExit(f"error: {args.out}: not empty (the round needs a new folder)")
    if args.clips < 1 or args.unseen < 1 or min(args.clip_s, args.unseen_s, args.demo_s) < 80:
        raise SystemExit(
            "error: --clips and --unseen must be >= 1, --clip-s, --unseen-s and --demo-s >= 80 seconds"
        )
    if args.piles < 1:
        raise SystemExit(f"error: --piles {args.piles}: must be at least 1")
    if not 0.0 < args.val_share < 1.0:
        raise SystemExit(f"error: --val-share {args.val_share}: must be between 0 and 1")
    args.out.mkdir(parents=True, exist_ok=True)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    with case_store(args.out.resolve()) as state:
        with step(state, "render"):
            own = [
                render(state, f"r{i}", i, TRAIN_SEED + i, args.clip_s, piles=args.piles)
                for i in range(args.clips)
            ]
            unseen = [
                render(state, f"u{i}", UNSEEN_INDEX + i, UNSEEN_SEED + i, args.unseen_s)
                for i in range(args.unseen)
            ]
            demo_clip = render(state, "demo", DEMO_INDEX, DEMO_SEED, args.demo_s, look=0)
            truth_data, truth_redacted = ground_truth_frames(state, unseen, args.truth_every_s)
        with step(state, "before"):
            register(state, "before", [*own, *unseen, demo_clip])
            for clip in [*own, *unseen, demo_clip]:
                run_daemon(write_config(state, "before", clip))
        api = Api(state)
        try:
            with step(state, "operator"):
                review(api, state, own, args.draw_share)
            with step(state, "train"):
                data = export_reviewed(state, args.images, args.val_share)
                card, command, working_points = train(state, data, args)
                before_ap = ap50(START_CARD, truth_data, set(START_CLASSES))
                after_ap = ap50(card, truth_data, set(CLASS_TO_VIOLATION))
                after_ap_redacted = ap50(card, truth_redacted, set(CLASS_TO_VIOLATION))
                version_id = publish_and_promote(api, state, card, command, after_ap)
                print(f"published and promoted {card.name} as version {version_id}")
            with step(state, "after"):
                register(state, "after", [*unseen, demo_clip])
                from pipeline.daemon import RESTART_EXIT

                pickup = run_daemon(write_config(state, "after", unseen[0], paced=True), until_restart=True)
                if pickup != RESTART_EXIT:
                    raise RuntimeError(f"the daemon did not restart onto the promoted model (exit {pickup})")
                for clip in [*unseen, demo_clip]:
                    run_daemon(write_config(state, "after", clip))
            result: dict[str, Any] = {
                "unseen_before": event_scores(api, "before", unseen),
                "unseen_after": event_scores(api, "after", unseen),
                "demo_before": event_scores(api, "before", [demo_clip]),
                "demo_after": event_scores(api, "after", [demo_clip]),
                "ap50_before": before_ap,
                "ap50_after": after_ap,
                "ap50_after_redacted": after_ap_redacted,
                "decisions": dict(state.decisions),
                "steps": dict(state.steps),
                "model": str(card),
                "working_points": working_points,
                "version_id": version_id,
                "command": "python -m benchmarks.bootstrap_round " + " ".join(sys.argv[1:]),
            }
        finally:
            api.close()
    print(table(result))
    result["garbage_photos"] = garbage_photos(card, args.photos)
    print(result["garbage_photos"])
    (args.out / "result.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    bootstrap_round(parse_args(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    main()
