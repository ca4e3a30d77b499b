"""Notifications: signed webhooks to a real local HTTP server, MQTT through a real Mosquitto,
retries with backoff, the failed state, the delivery log and the unit channel settings."""

from __future__ import annotations

import datetime as dt
import json
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from api.models import Case, Delivery, Role, Unit, utcnow
from api.notify import (
    BACKOFF_BASE_S,
    BACKOFF_CAP_S,
    deliver_pending,
    enqueue_case_event,
    sign,
    verify_signature,
)
from api.settings import Settings
from common.backoff import backoff_s
from tests.api.builders import World, auth, make_operator, make_world
from tests.api.conftest import Store

SECRET = "s3cret-webhook-key-0123456789"


# --- a real webhook receiver -------------------------------------------------------------------------


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    signature_ok: bool


@dataclass
class Receiver:
    """An HTTP server in a thread that checks signatures and answers 500 to the first ``fail`` posts."""

    url: str = ""
    secret: str = SECRET
    fail: int = 0
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, headers: dict[str, str], body: bytes) -> int:
        ok = verify_signature(
            self.secret,
            headers.get("X-Streetwatch-Timestamp", ""),
            body,
            headers.get("X-Streetwatch-Signature", ""),
        )
        with self.lock:
            self.requests.append(Received(headers, body, ok))
            if self.fail > 0:
                self.fail -= 1
                return 500
        return 204 if ok else 401


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            status = state.handle(dict(self.headers.items()), body)
            self.send_response(status)
            payload = b"receiver says no" if status >= 400 else b""
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/streetwatch"
    yield state
    server.shutdown()
    server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# --- builders ----------------------------------------------------------------------------------------


def make_case(sessions: sessionmaker[Session], world: World, unit_id: int) -> int:
    with sessions.begin() as s:
        now = utcnow()
        case = Case(
            violation_code="0102", place_id=world.place_id, unit_id=unit_id, status="dispatched",
            created_at=now, dispatched_at=now, deadline_at=now + dt.timedelta(hours=4),
        )  # fmt: skip
        s.add(case)
        s.flush()
        return case.id


def notify(store: Store, case_id: int, unit_id: int, event: str = "dispatched") -> list[int]:
    """Queue ``event`` for the unit the way the workflow does; the new delivery ids."""
    with store.sessions.begin() as s:
        case, unit = s.get_one(Case, case_id), s.get_one(Unit, unit_id)
        deliveries = enqueue_case_event(s, case, unit, event, store.settings)
        s.flush()
        return [d.id for d in deliveries]


def delivery(store: Store, delivery_id: int) -> Delivery:
    with store.sessions() as s:
        return s.get_one(Delivery, delivery_id)


def set_webhook(client: TestClient, admin: str, unit: str, url: str, secret: str = SECRET) -> Any:
    body = {"webhook_url": url, "webhook_secret": secret, "mqtt_enabled": False}
    response = client.put(f"/api/v1/units/{unit}/channels", json=body, headers=auth(admin))
    assert response.status_code == 200, response.text
    return response.json()


# --- signatures and backoff --------------------------------------------------------------------------


def test_verify_signature() -> None:
    body = b'{"event":"dispatched"}'
    now = 1_717_400_000
    good = sign(SECRET, str(now), body)
    assert good.startswith("sha256=") and len(good) == 7 + 64
    # fmt: off
    table = [
        # secret         timestamp     body          header                        ok
        (SECRET,         str(now),     body,         good,                         True),
        (SECRET,         str(now),     body + b" ",  good,                         False),  # altered body
        ("other-secret", str(now),     body,         good,                         False),
        (SECRET,         str(now + 1), body,         good,                         False),  # altered time
        (SECRET,         str(now),     body,         good.removeprefix("sha256="), False),
        (SECRET,         str(now),     body,         good.upper(),                 False),
        (SECRET,         "yesterday",  body,         good,                         False),
    ]
    # fmt: on
    for secret, timestamp, data, header, ok in table:
        assert verify_signature(secret, timestamp, data, header, now=now + 10) is ok, (
            secret,
            timestamp,
            header,
        )
    # The replay window: a valid signature is refused once it is older (or newer) than the tolerance.
    assert verify_signature(SECRET, str(now), body, good, now=now + 300)
    assert not verify_signature(SECRET, str(now), body, good, now=now + 301)
    assert not verify_signature(SECRET, str(now), body, good, now=now - 301)
    assert verify_signature(SECRET, str(now), body, good, now=now + 3000, tolerance_s=3600)


@pytest.mark.parametrize(
    ("attempts", "low", "high"),
    [(1, 15, 30), (2, 30, 60), (3, 60, 120), (7, 960, 1920), (8, 1800, 3600), (20, 1800, 3600)],
)
def test_backoff_is_exponential_with_jitter_and_capped(attempts: int, low: float, high: float) -> None:
    def delay(rng: Callable[[], float] = random.random) -> float:
        return backoff_s(attempts, base_s=BACKOFF_BASE_S, cap_s=BACKOFF_CAP_S, rng=rng)

    assert delay(lambda: 0.0) == low
    assert delay(lambda: 1.0) == high
    assert low <= delay() <= high


# --- webhooks ----------------------------------------------------------------------------------------


def test_webhook_is_signed_and_logged(client: TestClient, store: Store, receiver: Receiver) -> None:
    world = make_world(store.sessions)
    admin = make_operator(store.sessions, Role.ADMIN)
    channels = set_webhook(client, admin, "sanitation", receiver.url)
    assert channels == {
        "unit": "sanitation", "webhook_url": receiver.url, "webhook_secret_set": True, "mqtt_enabled": False,
        "mqtt_topic": "streetwatch/units/sanitation/cases", "mqtt_broker_configured": False,
    }  # fmt: skip
    case_id = make_case(store.sessions, world, world.sanitation_id)
    (delivery_id,) = notify(store, case_id, world.sanitation_id)

    assert deliver_pending(store.sessions, store.settings) == 1
    (request,) = receiver.requests
    assert request.signature_ok
    assert request.headers["X-Streetwatch-Event"] == "dispatched"
    assert request.headers["X-Streetwatch-Delivery"] == str(delivery_id)
    assert abs(int(request.headers["X-Streetwatch-Timestamp"]) - time.time()) < 60
    assert request.headers["X-Streetwatch-Signature"] == sign(
        SECRET, request.headers["X-Streetwatch-Timestamp"], request.body
    )
    message = json.loads(request.body)
    assert (message["event"], message["unit"], message["delivery_id"]) == (
        "dispatched",
        "sanitation",
        delivery_id,
    )
    assert message["case"]["id"] == case_id
    assert deliver_pending(store.sessions, store.settings) == 0  # delivered once, not again

    dispatcher = make_operator(store.sessions, Role.DISPATCHER)
    log = client.get("/api/v1/deliveries", params={"case": case_id}, headers=auth(dispatcher))
    assert log.status_code == 200
    assert log.json()["count"] == 1
    (row,) = log.json()["data"]
    assert (row["id"], row["unit"], row["channel"], row["status"], row["attempts"], row["last_error"]) == (
        delivery_id, "sanitation", "webhook", "delivered", 1, None,
    )  # fmt: skip
    assert row["delivered_at"] is not None
    for response in (log, client.get("/api/v1/units/sanitation/channels", headers=auth(admin))):
        assert SECRET not in response.text


def test_failed_attempts_back_off_then_succeed(store: Store, receiver: Receiver) -> None:
    world = make_world(store.sessions)
    with store.sessions.begin() as s:
        unit = s.get_one(Unit, world.sanitation_id)
        unit.webhook_url, unit.webhook_secret = receiver.url, SECRET
    receiver.fail = 2
    (delivery_id,) = notify(store, make_case(store.sessions, world, world.sanitation_id), world.sanitation_id)

    now = utcnow()
    expected_waits = [(15, 30), (30, 60)]
    for attempt, (low, high) in enumerate(expected_waits, start=1):
        assert deliver_pending(store.sessions, store.settings, now=now) == 1
        row = delivery(store, delivery_id)
        assert (row.status, row.attempts) == ("pending", attempt)
        assert row.last_error == "webhook answered HTTP 500: receiver says no"
        assert low <= (row.next_attempt_at - now).total_seconds() <= high
        assert deliver_pending(store.sessions, store.settings, now=now) == 0  # not due before its backoff
        now = row.next_attempt_at
    assert deliver_pending(store.sessions, store.settings, now=now) == 1
    row = delivery(store, delivery_id)
    assert (row.status, row.attempts, row.last_error, row.delivered_at) == ("delivered", 3, None, now)
    assert len(receiver.requests) == 3
    assert {r.headers["X-Streetwatch-Delivery"] for r in receiver.requests} == {str(delivery_id)}
    assert all(r.signature_ok for r in receiver.requests)


def test_failed_after_max_attempts_then_retried_by_an_admin(
    client: TestClient, store: Store, receiver: Receiver
) -> None:
    store.settings.delivery_max_attempts = 3
    world = make_world(store.sessions)
    admin, dispatcher = (
        make_operator(store.sessions, Role.ADMIN),
        make_operator(store.sessions, Role.DISPATCHER),
    )
    set_webhook(client, admin, "traffic", receiver.url)
    receiver.fail = 99
    case_id = make_case(store.sessions, world, world.traffic_id)
    (delivery_id,) = notify(store, case_id, world.traffic_id)
    now = utcnow()
    for _ in range(3):
        assert deliver_pending(store.sessions, store.settings, now=now) == 1
        now = delivery(store, delivery_id).next_attempt_at
    row = delivery(store, delivery_id)
    assert (row.status, row.attempts) == ("failed", 3)
    assert deliver_pending(store.sessions, store.settings, now=now + dt.timedelta(days=1)) == 0

    log = client.get(
        "/api/v1/deliveries", params={"status": "failed", "unit": "traffic"}, headers=auth(dispatcher)
    )
    (row_public,) = log.json()["data"]
    assert (row_public["id"], row_public["attempts"]) == (delivery_id, 3)
    assert row_public["last_error"] == "webhook answered HTTP 500: receiver says no"

    retry = f"/api/v1/deliveries/{delivery_id}/retry"
    assert client.post(retry, headers=auth(dispatcher)).status_code == 403
    assert client.post("/api/v1/deliveries/999999/retry", headers=auth(admin)).status_code == 404
    response = client.post(retry, headers=auth(admin))
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["attempts"]) == ("pending", 3)
    receiver.fail = 0
    assert deliver_pending(store.sessions, store.settings) == 1
    assert (delivery(store, delivery_id).status, delivery(store, delivery_id).attempts) == ("delivered", 4)
    again = client.post(retry, headers=auth(admin))
    assert again.status_code == 409
    assert "already delivered" in again.json()["detail"]


@pytest.mark.parametrize(
    ("channels", "error"),
    [
        (
            {"webhook_url": "http://127.0.0.1:{port}/down", "webhook_secret": SECRET},
            "webhook POST failed: ConnectError",
        ),
        (
            {"webhook_url": "http://127.0.0.1:{port}/x", "webhook_secret": None},
            "refusing to send an unsigned webhook",
        ),
    ],
)
def test_webhook_errors_are_logged(store: Store, channels: dict[str, Any], error: str) -> None:
    world = make_world(store.sessions)
    with store.sessions.begin() as s:
        unit = s.get_one(Unit, world.sanitation_id)
        unit.webhook_url = channels["webhook_url"].format(port=free_port())
        unit.webhook_secret = channels["webhook_secret"]
    (delivery_id,) = notify(store, make_case(store.sessions, world, world.sanitation_id), world.sanitation_id)
    assert deliver_pending(store.sessions, store.settings) == 1
    row = delivery(store, delivery_id)
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.last_error is not None and error in row.last_error


def test_concurrent_senders_deliver_each_notification_once(store: Store, receiver: Receiver) -> None:
    world = make_world(store.sessions)
    with store.sessions.begin() as s:
        unit = s.get_one(Unit, world.sanitation_id)
        unit.webhook_url, unit.webhook_secret = receiver.url, SECRET
    case_id = make_case(store.sessions, world, world.sanitation_id)
    ids = [i for n in range(30) for i in notify(store, case_id, world.sanitation_id, f"event-{n}")]
    counts: list[int] = []
    workers = [threading.Thread(target=lambda: counts.append(deliver_pending(store.sessions, store.settings)))
               for _ in range(3)]  # fmt: skip
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert sum(counts) == 30
    sent = sorted(int(r.headers["X-Streetwatch-Delivery"]) for r in receiver.requests)
    assert sent == sorted(ids)
    with store.sessions() as s:
        assert set(s.scalars(select(Delivery.status))) == {"delivered"}


# --- MQTT --------------------------------------------------------------------------------------------


class Subscriber:
    """A paho client subscribed to one topic on the broker; collects the messages."""

    def __init__(self, broker: tuple[str, int], topic: str) -> None:
        self.messages: list[mqtt.MQTTMessage] = []
        self.subscribed = threading.Event()
        self.received = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-sub-{uuid.uuid4().hex[:8]}")
        self.client.on_connect = lambda c, _u, _f, _rc, _p: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(*broker)
        self.client.loop_start()
        assert self.subscribed.wait(10), f"could not subscribe to {topic} on {broker}"

    def _on_message(self, _client: Any, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        self.messages.append(message)
        self.received.set()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def mqtt_settings(store: Store, host: str, port: int) -> Settings:
    prefix = f"streetwatch-test-{uuid.uuid4().hex[:8]}/units"  # a topic of our own: other tests may publish
    changes = {"mqtt_host": host, "mqtt_port": port, "mqtt_topic_prefix": prefix}
    return store.settings.model_copy(update=changes)


def test_mqtt_message_reaches_the_units_topic(
    client: TestClient, store: Store, mqtt_broker: tuple[str, int]
) -> None:
    settings = mqtt_settings(store, *mqtt_broker)
    world = make_world(store.sessions)
    case_id = make_case(store.sessions, world, world.traffic_id)
    subscriber = Subscriber(mqtt_broker, f"{settings.mqtt_topic_prefix}/traffic/cases")
    try:
        store.settings = settings
        (delivery_id,) = notify(store, case_id, world.traffic_id, "overdue")
        assert deliver_pending(store.sessions, settings) == 1
        assert subscriber.received.wait(10)
    finally:
        subscriber.close()
    (message,) = subscriber.messages
    assert message.topic == f"{settings.mqtt_topic_prefix}/traffic/cases"
    assert message.qos == 1
    body = json.loads(message.payload)
    assert (body["event"], body["unit"], body["case"]["id"], body["delivery_id"]) == (
        "overdue", "traffic", case_id, delivery_id,
    )  # fmt: skip
    row = delivery(store, delivery_id)
    assert (row.channel, row.status, row.attempts) == ("mqtt", "delivered", 1)

    admin = make_operator(store.sessions, Role.ADMIN)
    log = client.get("/api/v1/deliveries", params={"unit": "traffic"}, headers=auth(admin)).json()
    assert [(d["channel"], d["status"]) for d in log["data"]] == [("mqtt", "delivered")]


def test_mqtt_broker_down_is_logged_and_retried(store: Store) -> None:
    port = free_port()  # nothing listens there
    settings = mqtt_settings(store, "127.0.0.1", port)
    store.settings = settings
    world = make_world(store.sessions)
    (delivery_id,) = notify(store, make_case(store.sessions, world, world.traffic_id), world.traffic_id)
    assert deliver_pending(store.sessions, settings) == 1
    row = delivery(store, delivery_id)
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.last_error is not None and row.last_error.startswith(
        f"cannot connect to MQTT broker 127.0.0.1:{port}"
    )


# --- channels and the log API ------------------------------------------------------------------------


def test_channel_settings(client: TestClient, store: Store) -> None:
    make_world(store.sessions)
    admin = make_operator(store.sessions, Role.ADMIN)
    path = "/api/v1/units/sanitation/channels"
    url = "https://hooks.example.org/sw"
    # fmt: off
    table = [
        # body                                            status  422: detail; 200: webhook_secret_set
        ({"webhook_url": url},                              422, "no webhook_secret"),
        ({"webhook_url": "ftp://x.org/sw", "webhook_secret": SECRET}, 422, "webhook_url: URL scheme"),
        ({"webhook_url": url, "webhook_secret": "short"},   422, "webhook_secret: String should have"),
        ({"webhook_url": url, "webhook_secrets": SECRET},   422, "webhook_secrets: Extra inputs are not"),
        ({"webhook_url": url, "webhook_secret": SECRET},    200, True),
        ({"mqtt_enabled": False},                           200, True),  # URL and secret kept
        ({"webhook_url": None},                             200, True),  # secret kept
        ({"webhook_secret": None},                          200, False),
    ]
    # fmt: on
    for body, status, expected in table:
        response = client.put(path, json=body, headers=auth(admin))
        assert response.status_code == status, (body, response.text)
        assert SECRET not in response.text
        if status == 422 and expected:
            assert expected in response.json()["detail"]
        if status == 200:
            assert response.json()["webhook_secret_set"] is expected
    final = client.get(path, headers=auth(admin)).json()
    assert (final["webhook_url"], final["webhook_secret_set"], final["mqtt_enabled"]) == (None, False, False)
    with store.sessions() as s:
        assert s.scalars(select(Unit.mqtt_enabled).where(Unit.code == "sanitation")).one() is False

    dispatcher = make_operator(store.sessions, Role.DISPATCHER)
    assert client.put(path, json={"mqtt_enabled": True}, headers=auth(dispatcher)).status_code == 403
    assert client.get(path, headers=auth(dispatcher)).status_code == 403
    assert client.put("/api/v1/units/nope/channels", json={}, headers=auth(admin)).status_code == 404


def test_delivery_log_filters_pages_and_roles(client: TestClient, store: Store) -> None:
    world = make_world(store.sessions)
    with store.sessions.begin() as s:
        for unit_id in (world.sanitation_id, world.traffic_id):
            unit = s.get_one(Unit, unit_id)
            unit.webhook_url, unit.webhook_secret = "http://127.0.0.1:9/never", SECRET
    first = make_case(store.sessions, world, world.sanitation_id)
    second = make_case(store.sessions, world, world.traffic_id)
    for event in ("dispatched", "overdue", "reminder"):
        notify(store, first, world.sanitation_id, event)
    notify(store, second, world.traffic_id)
    notify(store, first, world.district_id)  # the district has no channel: nothing queued
    admin = make_operator(store.sessions, Role.ADMIN)

    def log(**params: Any) -> Any:
        response = client.get("/api/v1/deliveries", params=params, headers=auth(admin))
        assert response.status_code == 200, response.text
        return response.json()

    assert log()["count"] == 4
    assert [d["event"] for d in log(unit="sanitation")["data"]] == ["reminder", "overdue", "dispatched"]
    assert log(case=second)["count"] == 1
    assert log(status="pending", channel="webhook")["count"] == 4
    assert log(status="delivered")["count"] == 0
    page = log(limit=2, offset=1)
    assert (page["count"], len(page["data"])) == (4, 2)
    assert client.get("/api/v1/deliveries", params={"status": "lost"}, headers=auth(admin)).status_code == 422
    assert client.get("/api/v1/deliveries", params={"unit": "nope"}, headers=auth(admin)).status_code == 404
    for role in (Role.VIEWER, Role.SHIFT_LEADER):
        assert (
            client.get("/api/v1/deliveries", headers=auth(make_operator(store.sessions, role))).status_code
            == 403
        )
    handler = make_operator(store.sessions, Role.UNIT_HANDLER, unit_id=world.sanitation_id)
    assert client.get("/api/v1/deliveries", headers=auth(handler)).status_code == 403
    assert client.get("/api/v1/deliveries").status_code == 401
