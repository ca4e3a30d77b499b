"""Pushed reports (日督促, 周检查, 月通报) and deadline warnings: queued by the job, sent by the delivery job
to a real local SMTP server (aiosmtpd), a real webhook receiver and the real Mosquitto; two workers
running the job at once send each report exactly once; the clock is injected, never slept on."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import json
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from api.jobs import default_jobs
from api.models import Case, Delivery, Unit, utcnow
from api.notify import deliver_pending
from api.pushed_reports import claim_report, due_reports, run_pushed_reports
from api.settings import Settings
from api.work_calendar import add_working_hours, make_calendar
from tests.api.builders import World, make_world
from tests.api.conftest import Store
from tests.api.test_notify import (
    SECRET,
    Receiver,
    Subscriber,
    free_port,
    mqtt_settings,
    receiver,  # noqa: F401  (the webhook receiver fixture)
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
PASSWORD = "smtp-pa55word-never-logged"


def local(text: str) -> dt.datetime:
    """A Shanghai wall-clock time ("2026-12-02 08:05") as an aware UTC instant."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=SHANGHAI).astimezone(dt.UTC)


# --- a real SMTP server ----------------------------------------------------------------------------------


@dataclass
class Inbox:
    host: str = "127.0.0.1"
    port: int = 0
    messages: list[tuple[list[str], EmailMessage]] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        message = email.message_from_bytes(raw, policy=email.policy.default)
        with self.lock:
            self.messages.append((list(envelope.rcpt_tos), message))  # type: ignore[arg-type]
        return "250 OK"

    def authenticate(
        self, _server: Any, _session: Any, _envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and data.password.decode() == PASSWORD
        self.logins.append(f"{mechanism}:{'ok' if ok else 'refused'}")
        return AuthResult(success=ok, handled=False)  # aiosmtpd answers 535 itself

    def to(self, address: str) -> list[EmailMessage]:
        return [m for rcpts, m in self.messages if address in rcpts]

    def subjects(self) -> list[str]:
        return sorted(str(m["Subject"]) for _, m in self.messages)


def _serve(inbox: Inbox, **options: Any) -> Iterator[Inbox]:
    inbox.port = free_port()
    controller = Controller(inbox, hostname=inbox.host, port=inbox.port, **options)
    controller.start()
    try:
        yield inbox
    finally:
        controller.stop()


@pytest.fixture
def smtp() -> Iterator[Inbox]:
    yield from _serve(Inbox())


@pytest.fixture
def certificate(tmp_path: Path) -> Path:
    """A self-signed certificate for 127.0.0.1 (cert.pem, key.pem in the returned folder)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make the test SMTP server's certificate")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(tmp_path / "key.pem"),
         "-out", str(tmp_path / "cert.pem")],
        check=True, capture_output=True,
    )  # fmt: skip
    return tmp_path


@pytest.fixture
def smtp_with_starttls(certificate: Path) -> Iterator[Inbox]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificate / "cert.pem", certificate / "key.pem")
    yield from _serve(Inbox(), tls_context=context, require_starttls=True)


@pytest.fixture
def smtp_with_login() -> Iterator[Inbox]:
    inbox = Inbox()
    yield from _serve(inbox, authenticator=inbox.authenticate, auth_require_tls=False)


def smtp_settings(store: Store, inbox: Inbox, **changes: Any) -> Settings:
    """The store's settings with SMTP to ``inbox`` (no STARTTLS: the test server has no certificate)."""
    values = {
        "smtp_host": inbox.host, "smtp_port": inbox.port, "smtp_starttls": False,
        "smtp_from": "streetwatch@city.example", **changes,
    }  # fmt: skip
    return Settings.model_validate({**store.settings.model_dump(), **values})


# --- builders --------------------------------------------------------------------------------------------


def set_unit(sessions: sessionmaker[Session], unit_id: int, **values: Any) -> None:
    with sessions.begin() as s:
        unit = s.get_one(Unit, unit_id)
        for name, value in {"mqtt_enabled": False, **values}.items():
            setattr(unit, name, value)


def dispatched(
    sessions: sessionmaker[Session],
    world: World,
    unit_id: int,
    *,
    at: dt.datetime,
    deadline: dt.datetime,
    status: str = "dispatched",
    overdue: bool = False,
) -> int:
    with sessions.begin() as s:
        case = Case(
            violation_code="0102", place_id=world.place_id, unit_id=unit_id, status=status, created_at=at,
            dispatched_at=at, first_dispatched_at=at, deadline_at=deadline, overdue=overdue,
        )  # fmt: skip
        s.add(case)
        s.flush()
        return case.id


def events(store: Store, event: str) -> list[Delivery]:
    with store.sessions() as s:
        return list(s.scalars(select(Delivery).where(Delivery.event == event).order_by(Delivery.id)))


# --- when reports are due ----------------------------------------------------------------------------------

CALENDAR = make_calendar(holidays=[dt.date(2026, 10, 1)])


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        # Wednesday before 08:00: no digest yet; last week's check and last month's bulletin are due.
        ("2026-12-02 07:59", {("weekly", "2026-11-23"), ("monthly", "2026-11")}),
        ("2026-12-02 08:00", {("daily", "2026-12-02"), ("weekly", "2026-11-23"), ("monthly", "2026-11")}),
        # Monday 07:00: the new weekly check is not due yet, the one before still counts.
        ("2026-12-07 07:00", {("weekly", "2026-11-23"), ("monthly", "2026-11")}),
        ("2026-12-07 08:00", {("daily", "2026-12-07"), ("weekly", "2026-11-30"), ("monthly", "2026-11")}),
        # Saturday and a holiday: no digest.
        ("2026-12-05 09:00", {("weekly", "2026-11-23"), ("monthly", "2026-11")}),
        ("2026-10-01 09:00", {("weekly", "2026-09-21"), ("monthly", "2026-09")}),
        # The 1st of January before 08:00: December's bulletin is not due, November's still is.
        ("2027-01-01 07:00", {("weekly", "2026-12-21"), ("monthly", "2026-11")}),
        ("2027-01-04 08:30", {("daily", "2027-01-04"), ("weekly", "2026-12-28"), ("monthly", "2026-12")}),
    ],
)
def test_due_reports_follow_the_local_clock_and_the_calendar(
    now: str, expected: set[tuple[str, str]]
) -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    due = due_reports(CALENDAR, settings, local(now))
    assert {(d.kind, d.key) for d in due} == expected


# --- 日督促 -----------------------------------------------------------------------------------------------


def test_daily_digest_reaches_each_unit_by_email_webhook_and_mqtt(
    store: Store,
    smtp: Inbox,
    receiver: Receiver,  # noqa: F811
    mqtt_broker: tuple[str, int],
) -> None:
    broker = mqtt_settings(store, *mqtt_broker)  # a topic prefix of this test's own
    settings = smtp_settings(store, smtp, mqtt_host=broker.mqtt_host, mqtt_port=broker.mqtt_port,
                             mqtt_topic_prefix=broker.mqtt_topic_prefix)  # fmt: skip
    world = make_world(store.sessions)
    set_unit(store.sessions, world.sanitation_id, email="huanwei@city.example", webhook_url=receiver.url,
             webhook_secret=SECRET)  # fmt: skip
    set_unit(store.sessions, world.traffic_id, mqtt_enabled=True)
    morning = local("2026-12-02 08:05")  # a Wednesday
    late = dispatched(store.sessions, world, world.sanitation_id, at=local("2026-11-30 09:00"),
                      deadline=local("2026-12-01 10:00"), overdue=True)  # fmt: skip
    fresh = dispatched(store.sessions, world, world.sanitation_id, at=local("2026-12-02 08:01"),
                       deadline=local("2026-12-08 16:30"), status="in_progress")  # fmt: skip
    closed = dispatched(
        store.sessions, world, world.sanitation_id, at=morning, deadline=morning, status="closed"
    )
    traffic_case = dispatched(store.sessions, world, world.traffic_id, at=local("2026-12-02 08:02"),
                              deadline=local("2026-12-09 09:00"))  # fmt: skip

    assert run_pushed_reports(store.sessions, settings, now=local("2026-12-02 07:59")) == 0
    subscriber = Subscriber(mqtt_broker, f"{settings.mqtt_topic_prefix}/traffic/reports")
    try:
        assert run_pushed_reports(store.sessions, settings, now=morning) == 2  # sanitation, traffic
        assert run_pushed_reports(store.sessions, settings, now=local("2026-12-02 12:00")) == 0
        assert deliver_pending(store.sessions, settings) == 3  # e-mail + webhook, MQTT
        assert subscriber.received.wait(10)
    finally:
        subscriber.close()

    (message,) = smtp.to("huanwei@city.example")
    assert message["Subject"] == "【日督促】环卫所 2026-12-02：在办 2 件，其中超期 1 件"
    assert message["From"] == "streetwatch@city.example"
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    page = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert f"案件 #{late}" in text and f"案件 #{fresh}" in text and f"#{closed} " not in text
    assert text.index(f"#{late}") < text.index(f"#{fresh}")  # overdue first
    assert "东华门大街 grid 1（110101001001001）" in text
    assert "2026-12-01 10:00" in text and "2026-12-08 16:30" in text  # deadlines in local time
    assert "已超期" in text and "处置中" in text and "时间均为北京时间" in text
    assert f'<td style="border:1px solid #999;padding:2px 6px">案件 #{fresh}</td>' in page

    (hook,) = receiver.requests
    assert hook.signature_ok and hook.headers["X-Streetwatch-Event"] == "daily_digest"
    body = json.loads(hook.body)
    assert (body["unit"], body["open"], body["overdue"]) == ("sanitation", 2, 1)
    assert [c["id"] for c in body["cases"]] == [late, fresh]
    assert body["cases"][1]["deadline_local"] == "2026-12-08 16:30"

    (published,) = subscriber.messages
    digest = json.loads(published.payload)
    assert (digest["event"], digest["unit"], [c["id"] for c in digest["cases"]]) == (
        "daily_digest", "traffic", [traffic_case],
    )  # fmt: skip


# --- 周检查 and 月通报: two workers, once each -------------------------------------------------------


def test_two_workers_send_each_report_exactly_once(store: Store, smtp: Inbox) -> None:
    settings = smtp_settings(
        store, smtp, report_leaders=["boss@city.example", "unit:district"], report_weekly_weekday=2,
        ranking_min_cases=1,
    )  # fmt: skip
    world = make_world(store.sessions)
    set_unit(store.sessions, world.district_id, email="district@city.example")
    set_unit(store.sessions, world.sanitation_id, email="huanwei@city.example")
    set_unit(store.sessions, world.traffic_id, email="traffic@city.example")
    # November: sanitation closed one case on time; traffic's is overdue and still open.
    on_time = dispatched(store.sessions, world, world.sanitation_id, at=local("2026-11-24 09:00"),
                         deadline=local("2026-11-25 09:00"), status="closed")  # fmt: skip
    with store.sessions.begin() as s:
        s.get_one(Case, on_time).closed_at = local("2026-11-24 15:00")
    dispatched(store.sessions, world, world.traffic_id, at=local("2026-11-24 09:00"),
               deadline=local("2026-11-25 09:00"), overdue=True)  # fmt: skip
    # Dispatched Monday 08:30 with 8 working hours: 75% used on Monday at 16:00.
    start = local("2026-11-30 08:30")
    nearly = dispatched(store.sessions, world, world.sanitation_id, at=start,
                        deadline=add_working_hours(start, 8, make_calendar()))  # fmt: skip

    now = local("2026-12-01 08:30")  # Tuesday, the 1st: digest, weekly check and monthly bulletin all due
    counts: list[int] = []
    barrier = threading.Barrier(2)

    def worker() -> None:
        barrier.wait()
        counts.append(run_pushed_reports(store.sessions, settings, now=now))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # 2 digests + 2 weekly + 2 monthly + 1 warning (Tuesday 08:30 is past 75% of Monday's case).
    assert sum(counts) == 7
    assert run_pushed_reports(store.sessions, settings, now=now + dt.timedelta(minutes=1)) == 0
    assert deliver_pending(store.sessions, settings) == 7

    assert smtp.subjects() == sorted(
        [
            "【日督促】环卫所 2026-12-01：在办 1 件，其中超期 0 件",
            "【日督促】交通大队 2026-12-01：在办 1 件，其中超期 1 件",
            f"【时限预警】案件 #{nearly} 已用处置时限 75%，2026-12-01 09:00 到期",
            *["【周检查】2026-11-23 至 2026-11-29：按期结案率 50.0%，当前超期 1 件"] * 2,
            *["【月通报】2026 年 11 月：按期结案率 50.0%，单位排名"] * 2,
        ]
    )
    (bulletin,) = [m for m in smtp.to("boss@city.example") if "月通报" in str(m["Subject"])]
    text = bulletin.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "1 | 环卫所 | 1 | 1 | 100.0%" in text and "2 | 交通大队 | 1 | 0 | 0.0%" in text
    assert len(smtp.to("district@city.example")) == 2
    with store.sessions() as s:
        assert {d.recipient for d in s.scalars(select(Delivery).where(Delivery.unit_id.is_(None)))} == {
            "boss@city.example"
        }


def test_a_claimed_report_is_not_claimed_again_by_a_concurrent_worker(store: Store) -> None:
    now = local("2026-12-02 08:05")

    def claim() -> bool:
        with store.sessions.begin() as session:
            return claim_report(session, "daily", "2026-12-02", "unit:sanitation", now)

    results: list[bool] = []
    with store.sessions.begin() as first:
        assert claim_report(first, "daily", "2026-12-02", "unit:sanitation", now)
        second = threading.Thread(target=lambda: results.append(claim()))
        second.start()
        second.join(0.5)
        assert second.is_alive() and not results  # it waits for the first worker's transaction
    second.join(30)
    assert results == [False]
    with store.sessions.begin() as session:  # the next day is a new report
        assert claim_report(session, "daily", "2026-12-03", "unit:sanitation", now)


# --- 时限预警 -----------------------------------------------------------------------------------------------


def test_deadline_warning_fires_once_when_the_share_is_reached(store: Store, smtp: Inbox) -> None:
    settings = smtp_settings(store, smtp, report_daily_time="23:59")  # keep digests out of the way
    world = make_world(store.sessions)
    set_unit(store.sessions, world.sanitation_id, email="huanwei@city.example")
    start = local("2026-12-02 08:30")  # Wednesday; 8 working hours: Thursday 09:00, 75% on Wednesday 16:00
    deadline = add_working_hours(start, 8, make_calendar())
    assert deadline == local("2026-12-03 09:00")
    case_id = dispatched(store.sessions, world, world.sanitation_id, at=start, deadline=deadline)

    assert run_pushed_reports(store.sessions, settings, now=local("2026-12-02 15:59")) == 0
    assert run_pushed_reports(store.sessions, settings, now=local("2026-12-02 16:00")) == 1
    assert run_pushed_reports(store.sessions, settings, now=local("2026-12-02 16:30")) == 0
    assert run_pushed_reports(store.sessions, settings, now=local("2026-12-03 08:59")) == 0
    assert deliver_pending(store.sessions, settings) == 1
    (message,) = smtp.to("huanwei@city.example")
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert message["Subject"] == f"【时限预警】案件 #{case_id} 已用处置时限 75%，2026-12-03 09:00 到期"
    assert "剩余约 2.0 个工作小时" in text

    # An approved extension moves the deadline: the unit is warned once more at 75% of the new one.
    with store.sessions.begin() as s:
        s.get_one(Case, case_id).deadline_at = local("2026-12-03 17:30")  # 15 working hours: 75% at 13:45
    assert run_pushed_reports(store.sessions, settings, now=local("2026-12-03 13:44")) == 0
    assert run_pushed_reports(store.sessions, settings, now=local("2026-12-03 13:45")) == 1
    assert run_pushed_reports(store.sessions, settings, now=local("2026-12-03 14:30")) == 0
    assert [d.channel for d in events(store, "deadline_warning")] == ["email", "email"]


def test_the_warning_share_is_configurable(store: Store, smtp: Inbox) -> None:
    settings = smtp_settings(store, smtp, report_daily_time="23:59", deadline_warning_share=0.5)
    world = make_world(store.sessions)
    set_unit(store.sessions, world.sanitation_id, email="huanwei@city.example")
    start = local("2026-12-02 08:30")
    dispatched(store.sessions, world, world.sanitation_id, at=start,
               deadline=add_working_hours(start, 8, make_calendar()))  # fmt: skip
    assert run_pushed_reports(store.sessions, settings, now=local("2026-12-02 11:59")) == 0
    assert run_pushed_reports(store.sessions, settings, now=local("2026-12-02 14:00")) == 1  # 4 of 8 hours


# --- SMTP login, failures and configuration errors ---------------------------------------------------------


def test_smtp_login_works_and_the_password_is_never_logged(
    store: Store, smtp_with_login: Inbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    world = make_world(store.sessions)
    set_unit(store.sessions, world.sanitation_id, email="huanwei@city.example")
    dispatched(store.sessions, world, world.sanitation_id, at=local("2026-12-02 08:01"),
               deadline=local("2026-12-08 16:30"))  # fmt: skip
    wrong = smtp_settings(store, smtp_with_login, smtp_user="streetwatch", smtp_password="wrong-" + PASSWORD)
    assert run_pushed_reports(store.sessions, wrong, now=local("2026-12-02 08:05")) == 1
    assert deliver_pending(store.sessions, wrong) == 1
    (row,) = events(store, "daily_digest")
    assert row.status == "pending" and row.last_error is not None
    assert "refused the login of 'streetwatch'" in row.last_error and PASSWORD not in row.last_error

    right = smtp_settings(store, smtp_with_login, smtp_user="streetwatch", smtp_password=PASSWORD)
    with store.sessions.begin() as s:
        s.get_one(Delivery, row.id).next_attempt_at = utcnow() - dt.timedelta(seconds=1)
    assert deliver_pending(store.sessions, right) == 1
    assert len(smtp_with_login.to("huanwei@city.example")) == 1
    assert smtp_with_login.logins[-1].endswith(":ok")
    assert PASSWORD not in caplog.text and PASSWORD not in repr(right)


def test_starttls_checks_the_servers_certificate(
    store: Store, smtp_with_starttls: Inbox, certificate: Path
) -> None:
    world = make_world(store.sessions)
    set_unit(store.sessions, world.sanitation_id, email="huanwei@city.example")
    dispatched(store.sessions, world, world.sanitation_id, at=local("2026-12-02 08:01"),
               deadline=local("2026-12-08 16:30"))  # fmt: skip
    untrusted = smtp_settings(store, smtp_with_starttls, smtp_starttls=True)
    assert run_pushed_reports(store.sessions, untrusted, now=local("2026-12-02 08:05")) == 1
    assert deliver_pending(store.sessions, untrusted) == 1
    (row,) = events(store, "daily_digest")
    assert row.status == "pending" and row.last_error is not None
    assert "SSLCertVerificationError" in row.last_error  # a self-signed certificate is not trusted

    trusted = smtp_settings(
        store, smtp_with_starttls, smtp_starttls=True, smtp_ca_file=certificate / "cert.pem"
    )
    with store.sessions.begin() as s:
        s.get_one(Delivery, row.id).next_attempt_at = utcnow() - dt.timedelta(seconds=1)
    assert deliver_pending(store.sessions, trusted) == 1
    assert len(smtp_with_starttls.to("huanwei@city.example")) == 1
    assert events(store, "daily_digest")[0].status == "delivered"


def test_unreachable_smtp_server_is_logged_on_the_delivery(store: Store) -> None:
    port = free_port()  # nothing listens there
    settings = Settings.model_validate(
        {**store.settings.model_dump(), "smtp_host": "127.0.0.1", "smtp_port": port,
         "smtp_from": "streetwatch@city.example", "report_leaders": ["boss@city.example"]}
    )  # fmt: skip
    make_world(store.sessions)
    assert run_pushed_reports(store.sessions, settings, now=local("2026-12-02 08:05")) == 2  # weekly, monthly
    assert deliver_pending(store.sessions, settings) == 2
    for row in events(store, "weekly_check") + events(store, "monthly_bulletin"):
        assert (row.status, row.attempts, row.recipient) == ("pending", 1, "boss@city.example")
        assert row.last_error is not None
        assert row.last_error.startswith(f"cannot connect to SMTP server 127.0.0.1:{port}")


def test_unknown_leader_unit_is_reported_and_skipped(
    store: Store, smtp: Inbox, caplog: pytest.LogCaptureFixture
) -> None:
    settings = smtp_settings(store, smtp, report_leaders=["unit:nowhere", "boss@city.example"])
    make_world(store.sessions)
    assert run_pushed_reports(store.sessions, settings, now=local("2026-12-02 08:05")) == 2
    assert "report_leaders: no unit with code 'nowhere'" in caplog.text


def test_the_job_runs_with_the_others_unless_turned_off() -> None:
    assert "reports" in [job.name for job in default_jobs(Settings(_env_file=None))]  # type: ignore[call-arg]
    off = Settings(_env_file=None, push_reports=False)  # type: ignore[call-arg]
    assert "reports" not in [job.name for job in default_jobs(off)]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"report_daily_time": "8 am"}, "report_daily_time '8 am': expected a local time HH:MM"),
        ({"report_daily_time": "24:00"}, "report_daily_time '24:00': expected a local time HH:MM"),
        ({"report_leaders": ["boss"]},
         "report_leaders entry 'boss': expected an e-mail address or unit:<unit code>"),
        ({"report_leaders": ["a@b@c.example"]}, "report_leaders entry 'a@b@c.example'"),
        ({"report_leaders": ["boss@city.example"]},
         "report_leaders has e-mail addresses (boss@city.example) but smtp_host is not set"),
        ({"smtp_host": "mail.city.example"}, "smtp_host is set but smtp_from None is not an e-mail address"),
        ({"smtp_host": "mail.city.example", "smtp_from": "sw@city.example", "smtp_password": "x"},
         "an SMTP password is set but smtp_user is not"),
        ({"deadline_warning_share": 1.2}, "deadline_warning_share"),
        ({"report_weekly_weekday": 8}, "report_weekly_weekday"),
        ({"report_monthly_day": 31}, "report_monthly_day"),
    ],
)  # fmt: skip
def test_configuration_errors_are_clear(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as error:
        Settings(_env_file=None, **values)  # type: ignore[call-arg]
    assert message in str(error.value)


def test_unit_email_is_set_through_the_reference_api(client: Any, store: Store) -> None:
    from api.models import Role
    from tests.api.builders import auth, make_operator

    make_world(store.sessions)
    admin = auth(make_operator(store.sessions, Role.ADMIN))
    response = client.patch("/api/v1/units/sanitation", json={"email": "huanwei@city.example"}, headers=admin)
    assert response.status_code == 200, response.text
    assert response.json()["email"] == "huanwei@city.example"
    bad = client.patch("/api/v1/units/sanitation", json={"email": "huanwei at city"}, headers=admin)
    assert bad.status_code == 422 and "is not an e-mail address" in bad.text
    cleared = client.patch("/api/v1/units/sanitation", json={"email": None}, headers=admin)
    assert cleared.json()["email"] is None


def test_unit_email_is_imported_from_a_reference_file(store: Store, tmp_path: Path) -> None:
    from api.actors import Actor
    from api.config_import import ConfigImportError, import_file

    admin = Actor(kind="user", id=None, name="tester")
    good = tmp_path / "city.yaml"
    good.write_text(
        "units:\n  - {code: sanitation, name: 环卫所, email: huanwei@city.example}\n", encoding="utf-8"
    )
    with store.sessions.begin() as session:
        import_file(session, good, admin)
    with store.sessions() as session:
        assert session.scalar(select(Unit.email).where(Unit.code == "sanitation")) == "huanwei@city.example"
    bad = tmp_path / "bad.yaml"
    bad.write_text("units:\n  - {code: sanitation, name: 环卫所, email: huanwei}\n", encoding="utf-8")
    with pytest.raises(ConfigImportError) as error, store.sessions.begin() as session:
        import_file(session, bad, admin)
    assert f"{bad}:2" in str(error.value) and "'huanwei' is not an e-mail address" in str(error.value)
