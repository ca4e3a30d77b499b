"""The pusher: a background thread that delivers the outbox to the case store.

Delivery is at-least-once from here and exactly-once at the store: every report carries the idempotency
key minted once per incident, the store answers a repeated key with the case it already made, and it
keeps one evidence row per (case, image bytes). So an answer lost to a timeout, a crash between sending
and recording, or a restart with a full outbox never makes a second case or a second image.

What each answer means:

- 2xx: done.
- 408, 429, 5xx, a connection error or timeout: try again later with exponential backoff and jitter
  (``Retry-After`` honoured, capped at ``store.retry_max_s``). Never given up: a store down for an hour
  loses nothing. While the store is unreachable the whole pusher waits (one probe per backoff step
  instead of one request per queued item); the first success after an outage makes everything due.
  502/503/504 count as unreachable: the store answers 503 + Retry-After while its database is (a
  PostgreSQL restart), so the boxes wait it out together and are delivering again within seconds.
- An incident's later message whose earlier ones are still queued here waits a short fixed time (not a
  growing backoff: nothing was sent), so it follows its report as soon as the report is through.
- 401: this box's key is wrong or disabled. That is the box's problem, not the report's, so items stay
  pending; the key file is read again before each retry, so fixing the file fixes delivery.
- a 409 whose body says ``"retry": true``: a race the store lost; also tried again later.
- any other 4xx: the store refused this item for good (a bad camera, a case it may not touch, an
  action no longer allowed). Recorded in the outbox with the store's message, not retried. For an image
  only that image is given up.

The device key is read from ``store.device_key_file`` and never logged.
"""

from __future__ import annotations

import logging
import random
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from common.backoff import backoff_s
from contract import paths
from contract.device_cases import DeviceActionBody
from contract.reports import IngestResult, UpdateResult
from pipeline.config import StoreConfig
from pipeline.errors import DeviceKeyError
from pipeline.outbox import Outbox, OutboxImage, OutboxItem

log = logging.getLogger(__name__)

USER_AGENT = "streetwatch-pusher/1"
TRANSIENT_4XX = frozenset({408, 425, 429})
STORE_DOWN_5XX = frozenset({502, 503, 504})
MAX_KEY_BYTES = 4096
PRUNE_EVERY_S = 3600.0

CONTENT_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".mp4": "video/mp4"}


def read_device_key(path: Path) -> str:
    """The device key in ``path`` (surrounding whitespace ignored). DeviceKeyError names the file and
    what is wrong; the key itself never appears in a message."""
    where = f"store.device_key_file {path}"
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise DeviceKeyError(f"{where}: not a regular file")
        if info.st_size > MAX_KEY_BYTES:
            raise DeviceKeyError(f"{where}: {info.st_size} bytes, too large for a device key")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise DeviceKeyError(
            f"{where}: file not found; create it with this box's device key (swd_...) from the case store"
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise DeviceKeyError(f"{where}: cannot be read: {exc.__class__.__name__}") from exc
    key = text.strip()
    if not key:
        raise DeviceKeyError(f"{where}: the file is empty; it must hold this box's device key (swd_...)")
    if any(ch.isspace() for ch in key) or not key.isascii():
        raise DeviceKeyError(f"{where}: expected one device key (swd_...) on one line, found other text")
    if info.st_mode & 0o077:
        log.warning(
            "%s is readable by other users (mode %o); chmod 600 it", where, stat.S_IMODE(info.st_mode)
        )
    return key


class StoreClient:
    """HTTP to the case store as this device (X-Device-Key). Shared by the pusher and verification."""

    def __init__(self, store: StoreConfig, *, transport: httpx.BaseTransport | None = None) -> None:
        self._store = store
        self._transport = transport
        self._key_file = store.device_key_file
        self._key = read_device_key(self._key_file)
        self._lock = threading.Lock()
        self._http = self._connect()

    def _connect(self) -> httpx.Client:
        return httpx.Client(
            base_url=self._store.url.rstrip("/"),
            timeout=self._store.timeout_s,
            transport=self._transport,
            headers={"User-Agent": USER_AGENT, "X-Device-Key": self._key},
        )

    def reload_key(self) -> None:
        """Read the key file again (after a 401: the file may have been fixed). Raises DeviceKeyError."""
        self._key = read_device_key(self._key_file)
        self._http.headers["X-Device-Key"] = self._key

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request; transport errors (httpx.TransportError) propagate. Usable again after close()."""
        with self._lock:
            if self._http.is_closed:
                self._http = self._connect()
            http = self._http
        return http.request(method, path, **kwargs)

    def close(self) -> None:
        self._http.close()


# --- answers -------------------------------------------------------------------------------------------


class _Retry(Exception):
    """Try this item again later."""

    def __init__(self, message: str, *, store_down: bool = False, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.store_down = store_down
        self.retry_after_s = retry_after_s


class _Wait(_Retry):
    """An incident's earlier message is still queued here: nothing was sent, the store said nothing."""


class _Unauthorized(_Retry):
    """401: the device key is wrong or disabled."""


class _Refused(Exception):
    """A 4xx the store will answer the same way every time."""


def describe(response: httpx.Response) -> str:
    """``HTTP 409 conflict: <the store's detail>`` from the store's error body (or the raw text)."""
    detail: Any
    code = ""
    try:
        body = response.json()
        detail = body.get("detail", body) if isinstance(body, dict) else body
        code = str(body.get("code", "")) if isinstance(body, dict) else ""
    except ValueError:
        detail = response.text
    text = detail if isinstance(detail, str) else str(detail)
    return f"HTTP {response.status_code}{' ' + code if code else ''}: {text}"[:1000]


def check(response: httpx.Response) -> httpx.Response:
    """Return a 2xx response; raise _Retry / _Unauthorized / _Refused for the others (module docstring)."""
    status = response.status_code
    if 200 <= status < 300:
        return response
    message = describe(response)
    if status == 401:
        raise _Unauthorized(message)
    if status in TRANSIENT_4XX or status >= 500 or _says_retry(response):
        raise _Retry(message, store_down=status in STORE_DOWN_5XX, retry_after_s=_retry_after(response))
    raise _Refused(message)


def _says_retry(response: httpx.Response) -> bool:
    """The store marks a 409 it expects to clear (a race it lost several times) with ``"retry": true``."""
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("retry") is True


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        return max(float(value), 0.0) if value else None
    except ValueError:  # an HTTP date: not worth parsing, use our own backoff
        return None


# --- the pusher ----------------------------------------------------------------------------------------


@dataclass
class PusherStats:
    delivered: int = 0
    failed: int = 0  # items refused for good
    images_uploaded: int = 0
    images_failed: int = 0
    retries: int = 0
    store_up: bool = True
    last_error: str | None = None
    last_success_at: float | None = None  # unix seconds


class Pusher:
    """Delivers ``outbox`` to the case store in ``store_config.url`` on its own thread.

    ``start()`` / ``stop()`` run the thread; ``drain(timeout_s)`` waits until nothing is pending (or
    delivers inline when the thread is not running). Construction reads the device key: a missing or
    unreadable key file raises :class:`pipeline.errors.DeviceKeyError` before anything runs.
    """

    def __init__(
        self,
        outbox: Outbox,
        store_config: StoreConfig,
        *,
        client: StoreClient | None = None,
        rng: random.Random | None = None,
        idle_poll_s: float = 1.0,
    ) -> None:
        self.outbox = outbox
        self.config = store_config
        self._owns_client = client is None
        self.client = client or StoreClient(store_config)
        self.stats = PusherStats()
        self._rng = rng or random.Random()
        self._idle_poll_s = idle_poll_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._down_failures = 0  # consecutive "store unreachable" answers
        self._paused_until = 0.0  # monotonic: no request before this while the store is unreachable
        self._next_prune = time.monotonic()

    # --- lifecycle ---

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="outbox-pusher", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float | None = None) -> bool:
        """Stop the thread; returns whether it ended within ``timeout_s`` (default: the request timeout
        plus a second, the longest one delivery step can take). The thread is a daemon thread, so a
        stuck request can never keep the process alive."""
        self._stop.set()
        self.outbox.notify()
        thread = self._thread
        if thread is not None:
            thread.join(self.config.timeout_s + 1.0 if timeout_s is None else timeout_s)
            if thread.is_alive():
                log.warning("pusher thread still in a request after stop(); leaving it to end on its own")
                return False
            self._thread = None
        if self._owns_client:
            self.client.close()  # a later start() or drain() opens a new connection
        return True

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def drain(self, timeout_s: float) -> bool:
        """Deliver everything pending, waiting at most ``timeout_s``; True when the outbox has nothing
        pending. Whatever is left stays in the outbox for the next start."""
        deadline = time.monotonic() + timeout_s
        self._paused_until = 0.0
        self.outbox.retry_now()
        if self.running:
            while time.monotonic() < deadline:
                if self.outbox.pending_count() == 0:
                    return True
                self._stop.wait(min(0.05, max(deadline - time.monotonic(), 0.0)))
            return self.outbox.pending_count() == 0
        while time.monotonic() < deadline:
            if not self._step():
                if self.outbox.pending_count() == 0:
                    return True
                time.sleep(min(self._wait_s(), max(deadline - time.monotonic(), 0.0)))
        return self.outbox.pending_count() == 0

    # --- the loop ---

    def _run(self) -> None:
        log.info("pusher started: %d report(s) pending for %s", self.outbox.pending_count(), self.config.url)
        while not self._stop.is_set():
            try:
                worked = self._step()
                self._maybe_prune()
            except Exception:  # the outbox's disk, a bug: never let the thread die silently
                log.exception("pusher step failed; retrying in a second")
                self._stop.wait(1.0)
                continue
            if not worked:
                self.outbox.wait_for_work(self._wait_s())

    def _wait_s(self) -> float:
        """How long to idle: until the store pause ends or the next item is due, at most idle_poll_s."""
        now = time.monotonic()
        if self._paused_until > now:
            return min(self._paused_until - now, self._idle_poll_s)
        due = self.outbox.next_attempt_at()
        if due is None:
            return self._idle_poll_s
        return min(max(due - time.time(), 0.01), self._idle_poll_s)

    def _step(self) -> bool:
        """Deliver one due item; False when there was none (or the store is paused)."""
        if time.monotonic() < self._paused_until:
            return False
        item = self.outbox.due()
        if item is None:
            return False
        try:
            case_id = self._deliver(item)
        except _Retry as retry:
            self._retry(item, retry)
        except _Refused as refused:
            self.outbox.mark_failed(item.id, str(refused))
            self.stats.failed += 1
            self.stats.last_error = str(refused)
            log.warning("case store refused %s %s for good: %s", item.kind, item.key, refused)
        else:
            self._store_answered()
            self.outbox.mark_delivered(item.id)
            self.stats.delivered += 1
            log.info("delivered %s %s (case %d)", item.kind, item.key, case_id)
        return True

    def _retry(self, item: OutboxItem, retry: _Retry) -> None:
        cap, base = self.config.retry_max_s, self.config.retry_base_s
        if isinstance(retry, _Wait):
            # Checked here, not at the store: a short fixed wait, so the update follows within seconds of
            # its report (an exponential one grew to retry_max_s while the report waited out an outage).
            delay = min(base, cap)
        elif isinstance(retry, _Unauthorized):
            self._key_rejected()
            delay = cap
        elif retry.store_down:
            self._down_failures += 1
            delay = backoff_s(self._down_failures, base_s=base, cap_s=cap, rng=self._rng.random)
            self._paused_until = time.monotonic() + delay
            if self.stats.store_up:
                log.warning("case store unreachable (%s); reports wait in the outbox", retry)
            self.stats.store_up = False
        else:
            self._store_answered()
            delay = backoff_s(item.attempts + 1, base_s=base, cap_s=cap, rng=self._rng.random)
        if retry.retry_after_s is not None:
            delay = min(max(delay, retry.retry_after_s), cap)
        self.outbox.retry_later(item.id, delay, str(retry))
        # counted once the outbox holds the error: whoever sees the count finds the item's last_error
        self.stats.retries += 1
        self.stats.last_error = str(retry)
        log.debug("%s %s: retry in %.1f s after %s", item.kind, item.key, delay, retry)

    def _key_rejected(self) -> None:
        log.error(
            "case store rejected this box's device key (401); fix %s — reports stay queued",
            self.config.device_key_file,
        )
        try:
            self.client.reload_key()
        except Exception as exc:  # keep delivering nothing rather than crash the thread
            log.error("%s", exc)

    def _store_answered(self) -> None:
        """The store answered: if it had been unreachable, everything queued is due again now."""
        self.stats.last_success_at = time.time()
        if not self.stats.store_up or self._down_failures:
            log.info("case store reachable again; delivering %d queued item(s)", self.outbox.pending_count())
            self._down_failures = 0
            self._paused_until = 0.0
            self.stats.store_up = True
            self.outbox.retry_now()

    def _maybe_prune(self) -> None:
        if time.monotonic() < self._next_prune:
            return
        self._next_prune = time.monotonic() + PRUNE_EVERY_S
        removed = self.outbox.prune(self.config.keep_delivered_h * 3600.0)
        if removed:
            log.info(
                "outbox: forgot %d delivered or refused item(s) older than %.0f h",
                removed,
                self.config.keep_delivered_h,
            )

    # --- delivering one item ---

    def _deliver(self, item: OutboxItem) -> int:
        """Raises _Retry or _Refused; returns the store's case id when the item is fully delivered."""
        if item.kind == "action":
            if item.case_id is None:
                raise _Refused(f"action {item.key} has no case id")
            self._upload_images(item, item.case_id)
            self._post_action(item, item.case_id)
            return item.case_id
        case_id = item.case_id
        if item.kind == "evidence" and (not item.posted or case_id is None):
            case_id = self._incident_case(item)
            self.outbox.mark_posted(item.id, case_id)
        elif not item.posted or case_id is None:
            case_id = self._post_report(item) if item.kind == "report" else self._post_update(item)
            self.outbox.mark_posted(item.id, case_id)
        self._upload_images(item, case_id)
        return case_id

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return check(self.client.request(method, path, **kwargs))
        except httpx.TransportError as exc:
            raise _Retry(f"{exc.__class__.__name__}: {exc}", store_down=True) from exc

    def _post_report(self, item: OutboxItem) -> int:
        answer = IngestResult.model_validate_json(self._send("POST", paths.CASES, json=item.body).content)
        if answer.duplicate:
            log.info("report %s was already received (case %d)", item.key, answer.case_id)
        return answer.case_id

    def _post_update(self, item: OutboxItem) -> int:
        """An incident's later sighting or end goes after its report and its earlier updates (the store
        knows the incident by the report's key; its timeline stays in order). Anything earlier of the
        incident still queued: wait; its report refused for good: so is the update."""
        incident_key = str(item.body.get("incident_key"))
        report = self.outbox.get(incident_key)
        if self.outbox.pending_before(item.id, incident_key):
            raise _Wait(f"waiting for the earlier messages of incident {incident_key}")
        if report is not None and report.state == "failed":
            raise _Refused(f"the report of incident {incident_key} was refused: {report.last_error}")
        response = self._send("POST", paths.INCIDENT_UPDATES, json=item.body)
        answer = UpdateResult.model_validate_json(response.content)
        if answer.duplicate:
            log.info("update %s was already received (case %d)", item.key, answer.case_id)
        return answer.case_id

    def _incident_case(self, item: OutboxItem) -> int:
        """The case of a later ``evidence`` item: the one its incident's report was answered with, once the
        report and the incident's earlier items are delivered."""
        incident_key = str(item.body.get("incident_key"))
        if self.outbox.pending_before(item.id, incident_key):
            raise _Wait(f"waiting for the earlier messages of incident {incident_key}")
        report = self.outbox.get(incident_key)
        if report is not None and report.state == "failed" and report.case_id is None:
            raise _Refused(f"the report of incident {incident_key} was refused: {report.last_error}")
        if report is None or report.case_id is None:
            raise _Refused(f"the report of incident {incident_key} is not in the outbox: no case to add to")
        return report.case_id

    def _post_action(self, item: OutboxItem, case_id: int) -> None:
        body = DeviceActionBody.model_validate({k: item.body.get(k) for k in ("reason", "note")})
        payload = body.model_dump(exclude_none=True)
        self._send("POST", paths.case_action(case_id, str(item.body["action"])), json=payload or None)

    def _upload_images(self, item: OutboxItem, case_id: int) -> None:
        for image in item.pending_images:
            try:
                self._upload(image, case_id)
            except _Refused as refused:
                self.outbox.mark_image(item.id, image.seq, "failed", str(refused))
                self.stats.images_failed += 1
                log.warning(
                    "case %d refused evidence %s (%s): %s", case_id, image.path.name, image.kind, refused
                )
            else:
                self.outbox.mark_image(item.id, image.seq, "uploaded")
                self.stats.images_uploaded += 1

    def _upload(self, image: OutboxImage, case_id: int) -> None:
        try:
            data = image.path.read_bytes()
        except OSError as exc:
            raise _Refused(f"evidence file {image.path} cannot be read: {exc}") from exc
        content_type = CONTENT_TYPES.get(image.path.suffix.lower(), "image/jpeg")
        form = {"kind": image.kind}
        if image.score is not None:
            form["score"] = f"{image.score:.4f}"
        if image.boxes is not None:
            form["boxes"] = image.boxes
        self._send(
            "POST",
            paths.case_evidence(case_id),
            files={"file": (image.path.name, data, content_type)},
            data=form,
        )
