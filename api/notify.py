"""Notifications to units: queued as Delivery rows in the case's transaction, sent by a periodic job.

Three channels: webhook and MQTT (below) and e-mail over SMTP (:mod:`api.mailer`, used by the pushed
reports of :mod:`api.pushed_reports`; an e-mail delivery may have no unit, only an address).

Queueing in the same transaction as the case change means a notification is never lost and never
sent for a change that was rolled back (the outbox pattern). :func:`deliver_pending` then sends the
due rows, at least once:

* **Webhook**: ``POST`` of the JSON message to the unit's ``webhook_url`` with the headers
  ``X-Streetwatch-Event``, ``X-Streetwatch-Delivery`` (the delivery id: receivers de-duplicate on it),
  ``X-Streetwatch-Timestamp`` (Unix seconds) and
  ``X-Streetwatch-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" keyed with the unit's
  webhook_secret>``. A 2xx answer means delivered. Receivers check it with :func:`verify_signature`.
* **MQTT**: publish with QoS 1 to ``{mqtt_topic_prefix}/{unit code}/cases`` (reports:
  ``.../reports``); delivered once the broker's PUBACK arrives.
* **E-mail**: one message per delivery to its ``recipient`` address; delivered once the SMTP server
  accepts it.

A failed attempt is logged on the row (``attempts``, ``last_error``) and retried after an
exponential backoff with jitter (:func:`common.backoff.backoff_s`: 15-30 s first, at most an hour);
after ``delivery_max_attempts`` the row is ``failed`` and waits for an admin's retry
(``POST /api/v1/deliveries/{id}/retry``).

Several workers may run the job at once: a worker claims due rows with one conditional
``UPDATE ... RETURNING`` that moves their ``next_attempt_at`` to a lease time in the future
(``FOR UPDATE SKIP LOCKED`` in its sub-select on PostgreSQL; SQLite serialises writers). Other
workers no longer see the claimed rows as due; if the claiming worker dies, the lease runs out and
the rows are sent again (at least once). The lease time is also the claim token: the result is
recorded only ``WHERE next_attempt_at = <lease>``, so a worker that lost its lease records nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import httpx
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from api.metrics import observe_delivery
from api.models import Case, Delivery, Unit, utcnow
from api.settings import Settings
from common.backoff import backoff_s

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Streetwatch-Signature"
TIMESTAMP_HEADER = "X-Streetwatch-Timestamp"
EVENT_HEADER = "X-Streetwatch-Event"
DELIVERY_HEADER = "X-Streetwatch-Delivery"
SIGNATURE_TOLERANCE_S = 300  # receivers reject signatures older (or newer) than this: replay window

BACKOFF_BASE_S = 30.0  # first retry after 15-30 s
BACKOFF_CAP_S = 3600.0  # never wait more than an hour between attempts
CLAIM_BATCH = 20  # deliveries claimed (and sent over one HTTP client / MQTT connection) at a time
MAX_PER_RUN = 200  # one job run sends at most this many, so a backlog cannot starve the other jobs
ERROR_MAX_CHARS = 500

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
CHANNELS = ("webhook", "mqtt", "email")
# Events that are reports, not case changes: published on the unit's ``reports`` MQTT topic.
REPORT_EVENTS = frozenset({"daily_digest", "weekly_check", "monthly_bulletin"})


def case_event_payload(case: Case, event: str, unit: Unit) -> dict[str, Any]:
    return {
        "event": event,
        "unit": unit.code,
        "case": {
            "id": case.id,
            "status": case.status,
            "violation_code": case.violation_code,
            "place_id": case.place_id,
            "camera": case.camera_code,
            "deadline_at": case.deadline_at.isoformat() if case.deadline_at else None,
            "overdue": case.overdue,
        },
        "sent_at": utcnow().isoformat(),
    }


def enqueue_case_event(
    session: Session, case: Case, unit: Unit, event: str, settings: Settings
) -> list[Delivery]:
    """Queue ``event`` about ``case`` for ``unit`` on each channel the unit has."""
    payload = case_event_payload(case, event, unit)
    deliveries = []
    if unit.webhook_url:
        deliveries.append(
            Delivery(unit_id=unit.id, case_id=case.id, channel="webhook", event=event, payload=payload)
        )
    if unit.mqtt_enabled and settings.mqtt_host:
        deliveries.append(
            Delivery(unit_id=unit.id, case_id=case.id, channel="mqtt", event=event, payload=payload)
        )
    session.add_all(deliveries)
    return deliveries


def enqueue_unit_message(
    session: Session,
    unit: Unit,
    event: str,
    payload: dict[str, Any],
    mail: dict[str, Any],
    settings: Settings,
    *,
    case_id: int | None = None,
) -> list[Delivery]:
    """Queue a report or warning for ``unit``: ``payload`` on its webhook / MQTT, ``mail`` (subject, text,
    html) to its e-mail address when it has one and SMTP is configured."""
    deliveries = []
    if unit.webhook_url:
        deliveries.append(
            Delivery(unit_id=unit.id, case_id=case_id, channel="webhook", event=event, payload=payload)
        )
    if unit.mqtt_enabled and settings.mqtt_host:
        deliveries.append(
            Delivery(unit_id=unit.id, case_id=case_id, channel="mqtt", event=event, payload=payload)
        )
    if unit.email and settings.smtp_host:
        deliveries.append(
            Delivery(
                unit_id=unit.id, case_id=case_id, channel="email", recipient=unit.email, event=event,
                payload={"event": event, **mail},
            )
        )  # fmt: skip
    session.add_all(deliveries)
    return deliveries


def enqueue_email(session: Session, address: str, event: str, mail: dict[str, Any]) -> Delivery:
    """Queue an e-mail to an address that belongs to no unit (a leader)."""
    delivery = Delivery(
        unit_id=None, channel="email", recipient=address, event=event, payload={"event": event, **mail}
    )
    session.add(delivery)
    return delivery


# --- signatures --------------------------------------------------------------------------------------


def _key(secret: str | bytes) -> bytes:
    return secret.encode("utf-8") if isinstance(secret, str) else secret


def sign(secret: str | bytes, timestamp: str | int, body: bytes) -> str:
    """The ``X-Streetwatch-Signature`` value: ``sha256=`` + hex HMAC-SHA256 of ``"<timestamp>.<body>"``."""
    digest = hmac.new(_key(secret), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(
    secret: str | bytes,
    timestamp: str,
    body: bytes,
    header: str,
    *,
    tolerance_s: float = SIGNATURE_TOLERANCE_S,
    now: float | None = None,
) -> bool:
    """For receivers: is this webhook from streetwatch, unaltered and recent?

    ``timestamp`` is the ``X-Streetwatch-Timestamp`` header, ``body`` the raw request body (bytes, as
    received: do not re-serialise the JSON), ``header`` the ``X-Streetwatch-Signature`` header.
    True only if the HMAC matches (compared in constant time) and the timestamp is within
    ``tolerance_s`` of ``now`` (default: the current time), so a captured request cannot be replayed
    later. Within the window, de-duplicate on ``X-Streetwatch-Delivery``: retries resend the same id.

    Example (any web framework)::

        ok = verify_signature(SECRET, request.headers["X-Streetwatch-Timestamp"], await request.body(),
                              request.headers["X-Streetwatch-Signature"])
    """
    try:
        sent_at = int(timestamp)
    except (TypeError, ValueError):
        return False
    current = time.time() if now is None else now
    if abs(current - sent_at) > tolerance_s:
        return False
    if not header.startswith("sha256="):
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), header)


# --- sending -----------------------------------------------------------------------------------------


class DeliveryError(Exception):
    """One attempt failed; the message says why (stored as the delivery's last_error)."""


@dataclass(frozen=True)
class Outgoing:
    """A claimed delivery with what is needed to send it (read before sending, outside any transaction)."""

    id: int
    channel: str
    event: str
    attempts: int
    lease: dt.datetime
    body: bytes
    unit_code: str  # "" for an e-mail to an address without a unit
    webhook_url: str | None
    webhook_secret: str | None
    recipient: str | None = None
    payload: dict[str, Any] | None = None


def message_body(delivery: Delivery) -> bytes:
    """The bytes sent (and signed): the queued payload plus the delivery id, compact UTF-8 JSON."""
    message = {**delivery.payload, "delivery_id": delivery.id}
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")


def mqtt_topic(settings: Settings, unit_code: str, stream: str = "cases") -> str:
    """``{prefix}/{unit}/cases`` for case events, ``{prefix}/{unit}/reports`` for pushed reports."""
    return f"{settings.mqtt_topic_prefix}/{unit_code}/{stream}"


def send_webhook(client: httpx.Client, item: Outgoing) -> None:
    if not item.webhook_url:
        raise DeliveryError(f"unit {item.unit_code} has no webhook_url any more")
    if not item.webhook_secret:
        raise DeliveryError(
            f"unit {item.unit_code} has no webhook_secret: refusing to send an unsigned webhook"
        )
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "streetwatch-notify/1",
        EVENT_HEADER: item.event,
        DELIVERY_HEADER: str(item.id),
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: sign(item.webhook_secret, timestamp, item.body),
    }
    try:
        response = client.post(item.webhook_url, content=item.body, headers=headers)
    except httpx.HTTPError as exc:
        raise DeliveryError(f"webhook POST failed: {type(exc).__name__}: {exc}") from exc
    if not response.is_success:
        excerpt = response.text[:200].strip()
        raise DeliveryError(
            f"webhook answered HTTP {response.status_code}" + (f": {excerpt}" if excerpt else "")
        )


class MqttPublisher:
    """One connection to the broker for a batch; :meth:`publish` waits for the PUBACK (QoS 1)."""

    def __init__(self, settings: Settings) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.settings = settings
        self.timeout_s = settings.webhook_timeout_s
        self.error: str | None = None
        self._connected = threading.Event()
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"streetwatch-notify-{uuid.uuid4().hex[:12]}"
        )
        self._client.on_connect = self._on_connect
        if not settings.mqtt_host:
            self.error = "mqtt_host is not configured (STREETWATCH_MQTT_HOST)"
            return
        try:
            self._client.connect(settings.mqtt_host, settings.mqtt_port, keepalive=30)
        except (OSError, ValueError) as exc:
            self.error = f"cannot connect to MQTT broker {settings.mqtt_host}:{settings.mqtt_port}: {exc}"
            return
        self._client.loop_start()
        if not self._connected.wait(self.timeout_s) and self.error is None:
            self.error = (
                f"MQTT broker {settings.mqtt_host}:{settings.mqtt_port} did not accept the connection"
            )

    def _on_connect(
        self, _client: Any, _userdata: Any, _flags: Any, reason_code: Any, _properties: Any
    ) -> None:
        if reason_code.is_failure:
            self.error = f"MQTT broker refused the connection: {reason_code}"
        else:
            self._connected.set()

    def publish(self, item: Outgoing) -> None:
        if self.error:
            raise DeliveryError(self.error)
        if not item.unit_code or any(c in item.unit_code for c in "/+#"):
            raise DeliveryError(
                f"unit code {item.unit_code!r} cannot be an MQTT topic level (no '/', '+', '#')"
            )
        stream = "reports" if item.event in REPORT_EVENTS else "cases"
        topic = mqtt_topic(self.settings, item.unit_code, stream)
        info = self._client.publish(topic, item.body, qos=1)
        try:
            info.wait_for_publish(self.timeout_s)
            published = info.is_published()
        except (RuntimeError, ValueError) as exc:
            raise DeliveryError(f"MQTT publish to {topic} failed: {exc}") from exc
        if not published:
            raise DeliveryError(f"no PUBACK from the MQTT broker for {topic} within {self.timeout_s:g} s")

    def close(self) -> None:
        if self.error is None or self._connected.is_set():
            self._client.disconnect()
        self._client.loop_stop()


# --- the job -----------------------------------------------------------------------------------------


def claim_due(session: Session, *, now: dt.datetime, lease: dt.datetime, limit: int) -> list[int]:
    """Claim up to ``limit`` due pending deliveries by moving them to ``lease``; their ids."""
    due = (
        select(Delivery.id)
        .where(Delivery.status == PENDING, Delivery.next_attempt_at <= now)
        .order_by(Delivery.next_attempt_at, Delivery.id)
        .limit(limit)
        .with_for_update(skip_locked=True)  # PostgreSQL; SQLite serialises writers and ignores it
    )
    claimed = session.execute(
        update(Delivery)
        .where(Delivery.id.in_(due), Delivery.status == PENDING, Delivery.next_attempt_at <= now)
        .values(next_attempt_at=lease)
        .returning(Delivery.id)
        .execution_options(synchronize_session=False)
    )
    return sorted(claimed.scalars().all())


def _load(session: Session, ids: Sequence[int], lease: dt.datetime) -> list[Outgoing]:
    rows = session.execute(
        select(Delivery, Unit).outerjoin(Unit, Unit.id == Delivery.unit_id).where(Delivery.id.in_(ids))
    ).all()
    return [
        Outgoing(
            id=d.id,
            channel=d.channel,
            event=d.event,
            attempts=d.attempts,
            lease=lease,
            body=message_body(d),
            unit_code=u.code if u else "",
            webhook_url=u.webhook_url if u else None,
            webhook_secret=u.webhook_secret if u else None,
            recipient=d.recipient,
            payload=d.payload if d.channel == "email" else None,
        )
        for d, u in rows
    ]


def record_result(
    session: Session, item: Outgoing, error: str | None, settings: Settings, *, now: dt.datetime
) -> bool:
    """Write one attempt's outcome; False if this worker no longer holds the delivery's lease."""
    attempts = item.attempts + 1
    values: dict[str, Any] = {"attempts": attempts}
    if error is None:
        values.update(status=DELIVERED, delivered_at=now, last_error=None)
    else:
        values["last_error"] = error[:ERROR_MAX_CHARS]
        if attempts >= settings.delivery_max_attempts:
            values["status"] = FAILED
        else:
            values["next_attempt_at"] = now + dt.timedelta(
                seconds=backoff_s(attempts, base_s=BACKOFF_BASE_S, cap_s=BACKOFF_CAP_S)
            )
    observe_delivery(item.channel, values.get("status", "retrying"))  # delivered, failed or retrying
    result = session.execute(
        update(Delivery)
        .where(Delivery.id == item.id, Delivery.status == PENDING, Delivery.next_attempt_at == item.lease)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


def _send_batch(items: list[Outgoing], settings: Settings) -> dict[int, str | None]:
    """Send each claimed delivery; the error message per delivery id (None: delivered)."""
    outcome: dict[int, str | None] = {}
    webhooks = [i for i in items if i.channel == "webhook"]
    mqtt_items = [i for i in items if i.channel == "mqtt"]
    emails = [i for i in items if i.channel == "email"]
    for item in items:
        if item.channel not in CHANNELS:
            outcome[item.id] = f"unknown channel {item.channel!r} ({', '.join(CHANNELS)})"
    if webhooks:
        with httpx.Client(timeout=settings.webhook_timeout_s, follow_redirects=False) as client:
            for item in webhooks:
                outcome[item.id] = _attempt(partial(send_webhook, client, item))
    if mqtt_items:
        publisher = MqttPublisher(settings)
        try:
            for item in mqtt_items:
                outcome[item.id] = _attempt(partial(publisher.publish, item))
        finally:
            publisher.close()
    if emails:
        outcome.update(_send_emails(emails, settings))
    return outcome


def _send_emails(items: list[Outgoing], settings: Settings) -> dict[int, str | None]:
    from api.mailer import MailError, SmtpMailer

    def send(mailer: SmtpMailer, item: Outgoing) -> None:
        try:
            mailer.send(delivery_id=item.id, recipient=item.recipient, payload=item.payload or {})
        except MailError as exc:
            raise DeliveryError(str(exc)) from exc

    mailer = SmtpMailer(settings)
    try:
        return {item.id: _attempt(partial(send, mailer, item)) for item in items}
    finally:
        mailer.close()


def _attempt(send: Callable[[], None]) -> str | None:
    try:
        send()
    except DeliveryError as exc:
        return str(exc)
    except Exception as exc:  # an unexpected failure is logged on the delivery, never lost
        log.exception("delivery attempt failed unexpectedly")
        return f"{type(exc).__name__}: {exc}"
    return None


def deliver_pending(
    sessions: sessionmaker[Session], settings: Settings, *, now: dt.datetime | None = None
) -> int:
    """Send the deliveries that are due (pending, ``next_attempt_at <= now``); the number attempted.

    ``now`` (default: the clock) is the time used for picking, backoff and ``delivered_at``.
    """
    attempted = 0
    while attempted < MAX_PER_RUN:
        moment = now or utcnow()
        lease = moment + dt.timedelta(seconds=CLAIM_BATCH * settings.webhook_timeout_s + 60)
        with sessions.begin() as session:
            ids = claim_due(session, now=moment, lease=lease, limit=min(CLAIM_BATCH, MAX_PER_RUN - attempted))
        if not ids:
            break
        with sessions() as session:
            items = _load(session, ids, lease)
        outcome = _send_batch(items, settings)
        with sessions.begin() as session:
            for item in items:
                if not record_result(session, item, outcome[item.id], settings, now=now or utcnow()):
                    log.warning("delivery %d: lease lost before its result was recorded", item.id)
        attempted += len(items)
    return attempted
