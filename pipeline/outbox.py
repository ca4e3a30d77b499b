"""The durable outbox: case reports, workflow actions and their evidence images, kept in a local SQLite
database until the case store has accepted them.

The pipeline never waits for the case store: it puts a report here (one short transaction) and goes on;
the pusher (:mod:`pipeline.pusher`) delivers in the background with retries. The database runs in WAL
mode with ``synchronous=FULL``, so a report is on disk once :meth:`Outbox.put` returns and survives a
crash or power loss of the box; delivery state survives daemon restarts.

An *item* is one request to the store plus the images that go with it:

- ``report``: ``POST /api/v1/cases`` with the CaseReport, then its images uploaded to the case the store
  answered with. Keyed by the report's idempotency key, so putting the same incident twice is a no-op and
  the store's own de-duplication makes re-delivery after a lost answer harmless.
- ``update``: a later sighting of a reported incident, or its end (:class:`contract.IncidentUpdate`),
  ``POST /api/v1/cases/incident-updates``, then its images (a better view) to the case the store answered
  with. Keyed by the update's own idempotency key; delivered only after its incident's report was.
- ``action``: a workflow action on a known case (``verify`` / ``rework`` from verification by camera):
  its images first (the "after" picture), then ``POST /api/v1/cases/{id}/actions/{action}``.
- ``evidence``: more evidence of a reported incident that was ready only after its report (the evidence
  clip, :mod:`pipeline.clips`): uploaded to the case the incident's report was answered with, after the
  report and the incident's earlier items. Keyed ``<incident key>:clip``.

Item states: ``pending`` (to deliver; ``next_attempt_at`` says when) -> ``delivered`` or ``failed`` (the
store refused it for good; the reason is kept in ``last_error``). Image states: ``pending`` ->
``uploaded`` or ``failed``. Finished rows are removed by :meth:`Outbox.prune` after a retention time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from contract.device_cases import DeviceAction
from contract.reports import CaseReport, EvidenceKind, IncidentUpdate
from pipeline.errors import OutboxError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 4
ItemKind = Literal["report", "update", "action", "evidence"]
ItemState = Literal["pending", "delivered", "failed"]
ImageState = Literal["pending", "uploaded", "failed"]
EVIDENCE_KINDS = frozenset(kind.value for kind in EvidenceKind)
MAX_ERROR_CHARS = 1000
# An image to queue: (kind, path), (kind, path, score) or (kind, path, score, boxes): the score as defined in
# contract.reports, the boxes (a ``frame``'s detections, contract.reports.FrameBoxes) as their JSON text.
QueuedImage = tuple[str, Path] | tuple[str, Path, float | None] | tuple[str, Path, float | None, str | None]

_ITEMS = """
CREATE TABLE IF NOT EXISTS {name} (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    key             TEXT    NOT NULL UNIQUE,
    kind            TEXT    NOT NULL CHECK (kind IN ('report', 'update', 'action', 'evidence')),
    body            TEXT    NOT NULL,
    case_id         INTEGER,
    posted          INTEGER NOT NULL DEFAULT 0,
    state           TEXT    NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL    NOT NULL,
    created_at      REAL    NOT NULL,
    updated_at      REAL    NOT NULL,
    last_error      TEXT
);
"""
_SCHEMA = (
    _ITEMS.format(name="items")
    + """
CREATE INDEX IF NOT EXISTS items_due ON items (state, next_attempt_at);
CREATE TABLE IF NOT EXISTS images (
    item_id    INTEGER NOT NULL REFERENCES items (id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL,
    kind       TEXT    NOT NULL,
    path       TEXT    NOT NULL,
    sha256     TEXT    NOT NULL,
    state      TEXT    NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'uploaded', 'failed')),
    attempts   INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    score      REAL,
    boxes      TEXT,
    PRIMARY KEY (item_id, seq)
);
CREATE INDEX IF NOT EXISTS images_path ON images (path);
"""
)
# Version 1 -> 2: items may be 'update's (a CHECK constraint: SQLite rebuilds the table, foreign keys off so
# that the images are kept) and images carry the evidence score.
_UPGRADE_1_TO_2 = (
    "PRAGMA foreign_keys=OFF; BEGIN IMMEDIATE;"
    + _ITEMS.format(name="items_v2")
    + """
INSERT INTO items_v2 SELECT * FROM items;
DROP TABLE items;
ALTER TABLE items_v2 RENAME TO items;
CREATE INDEX IF NOT EXISTS items_due ON items (state, next_attempt_at);
ALTER TABLE images ADD COLUMN score REAL;
PRAGMA user_version=2;
COMMIT; PRAGMA foreign_keys=ON;
"""
)

# Version 2 -> 3: items may be 'evidence' (a clip after its report); the same rebuild as 1 -> 2.
_UPGRADE_2_TO_3 = (
    "PRAGMA foreign_keys=OFF; BEGIN IMMEDIATE;"
    + _ITEMS.format(name="items_v3")
    + """
INSERT INTO items_v3 SELECT * FROM items;
DROP TABLE items;
ALTER TABLE items_v3 RENAME TO items;
CREATE INDEX IF NOT EXISTS items_due ON items (state, next_attempt_at);
PRAGMA user_version=3;
COMMIT; PRAGMA foreign_keys=ON;
"""
)

# Version 3 -> 4: images carry the boxes detected in them (a training frame's).
_UPGRADE_3_TO_4 = "BEGIN IMMEDIATE; ALTER TABLE images ADD COLUMN boxes TEXT; PRAGMA user_version=4; COMMIT;"


@dataclass(frozen=True, slots=True)
class OutboxImage:
    """One evidence image of an item: uploaded with ``kind`` (first_seen, confirmation, crop, after)."""

    seq: int
    kind: str
    path: Path
    sha256: str
    state: ImageState
    last_error: str | None
    score: float | None = None
    boxes: str | None = None  # JSON list of contract.reports.Box: what was detected in a training frame


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """A snapshot of one queued request (see the module docstring for kinds and states)."""

    id: int
    key: str
    kind: ItemKind
    body: dict[str, Any]
    case_id: int | None
    posted: bool  # the report or action itself was accepted by the store
    state: ItemState
    attempts: int
    next_attempt_at: float  # unix seconds
    created_at: float
    last_error: str | None
    images: tuple[OutboxImage, ...]

    @property
    def pending_images(self) -> tuple[OutboxImage, ...]:
        return tuple(image for image in self.images if image.state == "pending")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Outbox:
    """The durable queue at ``path`` (created with its folder if missing). Thread-safe: the pipeline puts,
    the pusher takes; one connection guarded by a lock (writes are rare and short)."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self._clock = clock
        self._lock = threading.Lock()
        self._work = threading.Event()
        self._db = self._open()

    # --- opening ---

    def _open(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise OutboxError(f"cannot open the outbox {self.path} (store.outbox): {exc}") from exc
        try:
            mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                log.warning(
                    "outbox %s: journal mode is %s, not WAL (a network file system?)", self.path, mode
                )
            db.execute("PRAGMA synchronous=FULL")  # a put() that returned is on disk, even on power loss
            db.execute("PRAGMA foreign_keys=ON")
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                raise OutboxError(
                    f"the outbox {self.path} has schema version {version}, newer than this streetwatch "
                    f"understands ({SCHEMA_VERSION}): run the newer version or move the file away"
                )
            if version == 1:
                db.executescript(_UPGRADE_1_TO_2)
                log.info("outbox %s: schema upgraded from version 1 to 2", self.path)
                version = 2
            if version == 2:
                db.executescript(_UPGRADE_2_TO_3)
                log.info("outbox %s: schema upgraded from version 2 to 3", self.path)
                version = 3
            if version == 3:
                db.executescript(_UPGRADE_3_TO_4)
                log.info("outbox %s: schema upgraded from version 3 to 4", self.path)
            db.executescript(_SCHEMA)
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.DatabaseError as exc:
            db.close()
            raise OutboxError(
                f"the outbox {self.path} (store.outbox) is not a usable SQLite database: {exc}; "
                "move it away to start with an empty one (its undelivered reports would be lost)"
            ) from exc
        except OutboxError:
            db.close()
            raise
        return db

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction under the lock; OutboxError (naming the file) when SQLite fails."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise OutboxError(f"outbox {self.path}: write failed: {exc}") from exc

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            try:
                cursor = self._db.execute(sql, params)
                cursor.row_factory = sqlite3.Row
                return cursor.fetchall()
            except sqlite3.Error as exc:
                raise OutboxError(f"outbox {self.path}: read failed: {exc}") from exc

    # --- producers ---

    def put(self, report: CaseReport, images: Sequence[QueuedImage] = ()) -> bool:
        """Queue ``report`` and its evidence images; durable when this returns. Idempotent by the report's
        idempotency key: a key already queued (or delivered and not yet pruned) is left as it is and
        False is returned."""
        body = report.model_dump(mode="json")
        return self._put("report", report.idempotency_key, body, None, images)

    def put_update(self, update: IncidentUpdate, images: Sequence[QueuedImage] = ()) -> bool:
        """Queue a later sighting or the end of a reported incident; idempotent by the update's key."""
        body = update.model_dump(mode="json")
        return self._put("update", update.idempotency_key, body, None, images)

    def put_action(
        self,
        *,
        key: str,
        case_id: int,
        action: DeviceAction,
        images: Sequence[QueuedImage] = (),
        reason: str | None = None,
        note: str | None = None,
    ) -> bool:
        """Queue a workflow action on case ``case_id`` (its images are uploaded first). ``key`` makes it
        idempotent: the same key again is a no-op returning False."""
        body = {"action": action, "reason": reason, "note": note}
        return self._put("action", key, body, case_id, images)

    def put_evidence(self, *, incident_key: str, images: Sequence[QueuedImage], suffix: str = "clip") -> bool:
        """Queue evidence of a reported incident that was ready after its report (the clip); uploaded to
        the incident's case once its report is delivered. Idempotent by ``<incident_key>:<suffix>``."""
        body = {"incident_key": incident_key}
        return self._put("evidence", f"{incident_key}:{suffix}", body, None, images)

    def _put(
        self,
        kind: ItemKind,
        key: str,
        body: dict[str, Any],
        case_id: int | None,
        images: Sequence[QueuedImage],
    ) -> bool:
        rows = [
            (
                *self._image_row(seq, image[0], Path(image[1])),
                image[2] if len(image) > 2 else None,
                image[3] if len(image) > 3 else None,
            )
            for seq, image in enumerate(images)
        ]
        now = self._clock()
        with self._write() as db:
            cursor = db.execute(
                "INSERT INTO items (key, kind, body, case_id, next_attempt_at, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING",
                (key, kind, json.dumps(body, ensure_ascii=False), case_id, now, now, now),
            )
            if cursor.rowcount == 0:
                return False
            item_id = cursor.lastrowid
            db.executemany(
                "INSERT INTO images (item_id, seq, kind, path, sha256, state, last_error, score, boxes) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(item_id, *row) for row in rows],
            )
        self._work.set()
        return True

    def _image_row(self, seq: int, kind: str, path: Path) -> tuple[int, str, str, str, str, str | None]:
        if kind not in EVIDENCE_KINDS:
            raise OutboxError(
                f"unknown evidence kind {kind!r} for {path}; expected one of {sorted(EVIDENCE_KINDS)}"
            )
        try:
            return seq, kind, str(path.resolve()), file_sha256(path), "pending", None
        except OSError as exc:  # keep the report: a missing picture must not lose the case
            log.warning("evidence %s (%s) cannot be read, the report goes without it: %s", path, kind, exc)
            return seq, kind, str(path), "", "failed", f"file unreadable when queued: {exc}"[:MAX_ERROR_CHARS]

    # --- the pusher's side ---

    def due(self, now: float | None = None) -> OutboxItem | None:
        """The oldest pending item whose next attempt is due, or None."""
        now = self._clock() if now is None else now
        rows = self._read(
            "SELECT * FROM items WHERE state = 'pending' AND next_attempt_at <= ? "
            "ORDER BY next_attempt_at, id LIMIT 1",
            (now,),
        )
        return self._item(rows[0]) if rows else None

    def next_attempt_at(self) -> float | None:
        """When the earliest pending item becomes due (unix seconds), or None when nothing is pending."""
        rows = self._read("SELECT MIN(next_attempt_at) FROM items WHERE state = 'pending'")
        value = rows[0][0]
        return None if value is None else float(value)

    def get(self, key: str) -> OutboxItem | None:
        rows = self._read("SELECT * FROM items WHERE key = ?", (key,))
        return self._item(rows[0]) if rows else None

    def pending_before(self, item_id: int, incident_key: str) -> bool:
        """Whether an earlier item of the same incident (its report, or an update keyed
        ``<incident>:...``) is still pending: an incident's messages reach the store in order."""
        pattern = incident_key.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + ":%"
        return bool(
            self._read(
                "SELECT 1 FROM items WHERE state = 'pending' AND id < ? "
                "AND (key = ? OR key LIKE ? ESCAPE '\\') LIMIT 1",
                (item_id, incident_key, pattern),
            )
        )

    def contains(self, key: str) -> bool:
        return bool(self._read("SELECT 1 FROM items WHERE key = ?", (key,)))

    def _item(self, row: sqlite3.Row) -> OutboxItem:
        images = self._read("SELECT * FROM images WHERE item_id = ? ORDER BY seq", (row["id"],))
        return OutboxItem(
            id=row["id"],
            key=row["key"],
            kind=row["kind"],
            body=json.loads(row["body"]),
            case_id=row["case_id"],
            posted=bool(row["posted"]),
            state=row["state"],
            attempts=row["attempts"],
            next_attempt_at=row["next_attempt_at"],
            created_at=row["created_at"],
            last_error=row["last_error"],
            images=tuple(
                OutboxImage(
                    seq=image["seq"],
                    kind=image["kind"],
                    path=Path(image["path"]),
                    sha256=image["sha256"],
                    state=image["state"],
                    last_error=image["last_error"],
                    score=image["score"],
                    boxes=image["boxes"],
                )
                for image in images
            ),
        )

    def mark_posted(self, item_id: int, case_id: int) -> None:
        """The store accepted the report or action; for a report, ``case_id`` is the case it landed in."""
        with self._write() as db:
            db.execute(
                "UPDATE items SET posted = 1, case_id = ?, updated_at = ? WHERE id = ?",
                (case_id, self._clock(), item_id),
            )

    def mark_image(self, item_id: int, seq: int, state: ImageState, error: str | None = None) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE images SET state = ?, attempts = attempts + 1, last_error = ? "
                "WHERE item_id = ? AND seq = ?",
                (state, _clip(error), item_id, seq),
            )

    def mark_delivered(self, item_id: int) -> None:
        self._finish(item_id, "delivered", None)

    def mark_failed(self, item_id: int, error: str) -> None:
        """The store refused the item for good (a 4xx that retrying cannot fix): recorded, not retried."""
        self._finish(item_id, "failed", error)

    def _finish(self, item_id: int, state: ItemState, error: str | None) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE items SET state = ?, attempts = attempts + 1, last_error = ?, updated_at = ? "
                "WHERE id = ?",
                (state, _clip(error), self._clock(), item_id),
            )

    def retry_later(self, item_id: int, delay_s: float, error: str) -> None:
        """A failed attempt that may succeed later: count it and schedule the next one."""
        now = self._clock()
        with self._write() as db:
            db.execute(
                "UPDATE items SET attempts = attempts + 1, next_attempt_at = ?, last_error = ?, "
                "updated_at = ? WHERE id = ? AND state = 'pending'",
                (now + delay_s, _clip(error), now, item_id),
            )

    def retry_now(self) -> int:
        """Make every pending item due at once (the store is reachable again, or shutting down)."""
        now = self._clock()
        with self._write() as db:
            cursor = db.execute(
                "UPDATE items SET next_attempt_at = ? WHERE state = 'pending' AND next_attempt_at > ?",
                (now, now),
            )
            changed = cursor.rowcount
        if changed:
            self._work.set()
        return changed

    # --- waking the pusher ---

    def wait_for_work(self, timeout_s: float) -> bool:
        """Block until something was put (or :meth:`notify` was called) or ``timeout_s`` passed."""
        woken = self._work.wait(max(timeout_s, 0.0))
        self._work.clear()
        return woken

    def notify(self) -> None:
        self._work.set()

    # --- inspection and housekeeping ---

    def pending_count(self) -> int:
        return int(self._read("SELECT COUNT(*) FROM items WHERE state = 'pending'")[0][0])

    def counts(self) -> dict[str, int]:
        """Items per state, e.g. ``{"pending": 2, "delivered": 10, "failed": 0}``."""
        found = {
            row[0]: int(row[1]) for row in self._read("SELECT state, COUNT(*) FROM items GROUP BY state")
        }
        return {state: found.get(state, 0) for state in ("pending", "delivered", "failed")}

    def items(self, state: ItemState | None = None, limit: int = 1000) -> list[OutboxItem]:
        """Items (all, or in ``state``), oldest first: for inspection and tests, not the hot path."""
        if state is None:
            rows = self._read("SELECT * FROM items ORDER BY id LIMIT ?", (limit,))
        else:
            rows = self._read("SELECT * FROM items WHERE state = ? ORDER BY id LIMIT ?", (state, limit))
        return [self._item(row) for row in rows]

    def failed(self, limit: int = 100) -> list[OutboxItem]:
        """The latest items the store refused, newest first, with the reason in ``last_error``."""
        rows = self._read(
            "SELECT * FROM items WHERE state = 'failed' ORDER BY updated_at DESC LIMIT ?", (limit,)
        )
        return [self._item(row) for row in rows]

    def prune(self, older_than_s: float, *, delete_files: bool = True) -> int:
        """Forget delivered and failed items finished more than ``older_than_s`` ago, and (by default)
        delete their image files unless a remaining item still needs them. Returns items removed."""
        cutoff = self._clock() - older_than_s
        with self._write() as db:
            paths = [
                row[0]
                for row in db.execute(
                    "SELECT DISTINCT path FROM images WHERE item_id IN "
                    "(SELECT id FROM items WHERE state != 'pending' AND updated_at < ?)",
                    (cutoff,),
                )
            ]
            removed = db.execute(
                "DELETE FROM items WHERE state != 'pending' AND updated_at < ?", (cutoff,)
            ).rowcount
            still_used = (
                {
                    row[0]
                    for row in db.execute(
                        f"SELECT path FROM images WHERE path IN ({','.join('?' * len(paths))})", paths
                    )
                }
                if paths
                else set()
            )
        if delete_files:
            for path in set(paths) - still_used:
                Path(path).unlink(missing_ok=True)
        return removed

    def referenced_paths(self) -> set[Path]:
        """Every image file an item in the outbox refers to."""
        return {Path(row[0]) for row in self._read("SELECT DISTINCT path FROM images")}


def _clip(error: str | None) -> str | None:
    return None if error is None else error[:MAX_ERROR_CHARS]
