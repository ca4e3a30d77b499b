"""Pushed reports and deadline warnings: a periodic job that queues, through the unit's channels (webhook,
MQTT, e-mail; :mod:`api.notify` sends them):

* **日督促** (``daily_digest``): on each working day of the calendar, from ``report_daily_time`` (local
  time), each active unit with open cases (已派遣 / 处置中) gets the list, overdue cases first;
* **周检查** (``weekly_check``): on ``report_weekly_weekday``, last complete week's figures and the cases
  now overdue, to ``report_leaders``;
* **月通报** (``monthly_bulletin``): on ``report_monthly_day``, last month's figures and the unit ranking
  (红黑榜, :func:`api.stats.build_ranking`), to ``report_leaders``;
* **时限预警** (``deadline_warning``): once a dispatched case has used ``deadline_warning_share`` (75%) of
  its working hours between dispatch and deadline, its unit is warned once. A new deadline (an approved
  extension, a re-dispatch) warns again, once.

A report missed while no server ran (e.g. the weekly check on a Monday the server was down) is sent at the
next run, until the next one of its kind is due.

Several workers may run the job at once. Reports are claimed by a ``report_runs`` row per (kind, period,
recipient), inserted with ``ON CONFLICT DO NOTHING`` in the transaction that queues the deliveries: the
worker whose row went in queues them; another worker's insert waits for that transaction (PostgreSQL's
unique index, SQLite's single writer) and then inserts nothing. Warnings are claimed like overdue marks:
``UPDATE cases SET warned_deadline_at = deadline_at WHERE ... warned_deadline_at differs``.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from dataclasses import dataclass
from typing import Any, Literal, cast

from sqlalchemy import CursorResult, Table, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker

from api.actors import SYSTEM
from api.ingest import begin_write
from api.models import CLOCK_STATUSES, Case, Place, ReportRun, Unit, ViolationType, utcnow
from api.notify import enqueue_email, enqueue_unit_message
from api.report_messages import CaseLine, digest_mail, monthly_mail, warning_mail, weekly_mail
from api.settings import Settings
from api.stats import Period, PeriodPublic, build_ranking, build_report, make_period
from api.work_calendar import WorkCalendar, add_working_hours, load_calendar, working_hours_between

log = logging.getLogger(__name__)

ReportKind = Literal["daily", "weekly", "monthly"]
EVENTS: dict[ReportKind, str] = {
    "daily": "daily_digest",
    "weekly": "weekly_check",
    "monthly": "monthly_bulletin",
}
WARNING_EVENT = "deadline_warning"
WARN_CACHE_SIZE = 1 << 16  # warning moments remembered per process (a few MB): recomputed only for new cases

_RUNS = cast(Table, ReportRun.__table__)
_INSERT_RUN = {
    "sqlite": sqlite_insert(_RUNS).on_conflict_do_nothing().returning(_RUNS.c.id),
    "postgresql": postgresql_insert(_RUNS).on_conflict_do_nothing().returning(_RUNS.c.id),
}


# --- when -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DueReport:
    kind: ReportKind
    period: Period

    @property
    def key(self) -> str:
        """The ``report_runs.period`` of this report: the day, the week's Monday or the month."""
        return (
            self.period.start.strftime("%Y-%m") if self.kind == "monthly" else self.period.start.isoformat()
        )


def _send_time(settings: Settings) -> dt.time:
    hours, minutes = settings.report_daily_time.split(":")
    return dt.time(int(hours), int(minutes))


def due_reports(calendar: WorkCalendar, settings: Settings, now: dt.datetime) -> list[DueReport]:
    """The reports whose latest sending moment (local time, the calendar's zone) is at or before ``now``."""
    tz = calendar.timezone
    local = now.astimezone(tz)
    today, started = local.date(), local.time() >= _send_time(settings)
    due = []
    if started and calendar.is_working_day(today):
        due.append(DueReport("daily", make_period("daily", tz, day=today)))
    # The latest weekly sending day at or before now; it reports the complete ISO week before it.
    weekly_day = today - dt.timedelta(days=(today.isoweekday() - settings.report_weekly_weekday) % 7)
    if weekly_day == today and not started:
        weekly_day -= dt.timedelta(days=7)
    last_sunday = weekly_day - dt.timedelta(days=weekly_day.isoweekday())
    due.append(DueReport("weekly", make_period("weekly", tz, day=last_sunday)))
    # The latest monthly sending day at or before now; it reports the month before it.
    monthly_day = today.replace(day=settings.report_monthly_day)
    if monthly_day > today or (monthly_day == today and not started):
        monthly_day = (monthly_day.replace(day=1) - dt.timedelta(days=1)).replace(
            day=settings.report_monthly_day
        )
    previous_month = monthly_day.replace(day=1) - dt.timedelta(days=1)
    due.append(DueReport("monthly", make_period("monthly", tz, day=previous_month)))
    return due


# --- claiming ---------------------------------------------------------------------------------------------


def claim_report(session: Session, kind: str, period_key: str, recipient: str, now: dt.datetime) -> bool:
    """Insert the (kind, period, recipient) row; False if it was there already (sent by another run)."""
    begin_write(session)
    statement = _INSERT_RUN[session.get_bind().dialect.name]
    values = {"kind": kind, "period": period_key, "recipient": recipient, "created_at": now}
    return session.execute(statement, values).first() is not None


def already_sent(session: Session, due: DueReport) -> set[str]:
    """The recipients this report was sent to: skipped without a write (the claim still decides races)."""
    query = select(ReportRun.recipient).where(ReportRun.kind == due.kind, ReportRun.period == due.key)
    return set(session.scalars(query))


def leader_key(leader: str) -> str:
    """A leader's ``report_runs.recipient``: ``unit:<code>`` or ``email:<address>``."""
    return leader if leader.startswith("unit:") else f"email:{leader}"


def reachable(unit: Unit, settings: Settings) -> bool:
    """Whether the unit has a channel to queue on (a webhook, MQTT with a broker, e-mail with SMTP)."""
    return bool(
        unit.webhook_url or (unit.mqtt_enabled and settings.mqtt_host) or (unit.email and settings.smtp_host)
    )


# --- the cases a report lists -------------------------------------------------------------------------


def place_words(place: Place) -> str:
    return f"{place.name}（{place.key}）" if place.name and place.name != place.key else place.key


def open_cases(
    session: Session, now: dt.datetime, *, unit_id: int | None = None, overdue_only: bool = False
) -> list[CaseLine]:
    """Cases a unit has to handle (已派遣 / 处置中), of one unit or all, by deadline."""
    late = or_(Case.overdue.is_(True), Case.deadline_at < now)
    query = (
        select(Case, Place, ViolationType.name)
        .join(Place, Place.id == Case.place_id)
        .outerjoin(ViolationType, ViolationType.code == Case.violation_code)
        .where(Case.status.in_([s.value for s in CLOCK_STATUSES]))
        .order_by(Case.deadline_at, Case.id)
    )
    if unit_id is not None:
        query = query.where(Case.unit_id == unit_id)
    if overdue_only:
        query = query.where(late)
    return [case_line(case, place, name, now) for case, place, name in session.execute(query)]


def case_line(case: Case, place: Place, violation_name: str | None, now: dt.datetime) -> CaseLine:
    overdue = case.overdue or (case.deadline_at is not None and case.deadline_at < now)
    return CaseLine(
        id=case.id,
        violation=violation_name or case.violation_code,
        place=place_words(place),
        status=case.status,
        deadline_at=case.deadline_at,
        overdue=overdue,
    )


# --- the job ----------------------------------------------------------------------------------------------


def run_pushed_reports(
    sessions: sessionmaker[Session], settings: Settings, *, now: dt.datetime | None = None
) -> int:
    """Queue the warnings and reports that are due; how many messages (per recipient) this run queued."""
    now = now or utcnow()
    with sessions() as session:
        calendar = load_calendar(session)
    queued = send_deadline_warnings(sessions, settings, calendar, now)
    for due in due_reports(calendar, settings, now):
        if due.kind == "daily":
            queued += send_digests(sessions, settings, due, calendar, now)
        else:
            queued += send_leader_report(sessions, settings, due, calendar, now)
    return queued


def send_digests(
    sessions: sessionmaker[Session],
    settings: Settings,
    due: DueReport,
    calendar: WorkCalendar,
    now: dt.datetime,
) -> int:
    with sessions() as session:
        busy = select(Case.unit_id).where(Case.status.in_([s.value for s in CLOCK_STATUSES]))
        units = session.scalars(select(Unit).where(Unit.id.in_(busy), Unit.active.is_(True))).all()
        sent = already_sent(session, due)
        unit_ids = [u.id for u in units if reachable(u, settings) and f"unit:{u.code}" not in sent]
    queued = 0
    for unit_id in unit_ids:
        with sessions.begin() as session:
            unit = session.get_one(Unit, unit_id)
            if not claim_report(session, due.kind, due.key, f"unit:{unit.code}", now):
                continue
            cases = open_cases(session, now, unit_id=unit.id)
            if not cases:  # closed since we looked: nothing to tell today
                continue
            tz = calendar.timezone
            payload = {
                "event": EVENTS["daily"],
                "unit": unit.code,
                "day": due.period.start.isoformat(),
                "timezone": tz.key,
                "open": len(cases),
                "overdue": sum(c.overdue for c in cases),
                "cases": [c.public(tz) for c in cases],
                "sent_at": now.isoformat(),
            }
            mail = digest_mail(unit.name, due.period.start, cases, tz)
            enqueue_unit_message(session, unit, EVENTS["daily"], payload, mail, settings)
            queued += 1
    return queued


def leader_message(
    session: Session, due: DueReport, calendar: WorkCalendar, settings: Settings, now: dt.datetime
) -> tuple[dict[str, Any], dict[str, str]]:
    """The weekly check's or monthly bulletin's JSON payload and e-mail."""
    tz = calendar.timezone
    report = build_report(session, SYSTEM, due.period, now=now)
    payload: dict[str, Any] = {
        "event": EVENTS[due.kind],
        "period": PeriodPublic.of(due.period).model_dump(mode="json"),
        "totals": report.totals.model_dump(mode="json"),
        "sent_at": now.isoformat(),
    }
    if due.kind == "weekly":
        overdue = open_cases(session, now, overdue_only=True)
        payload["overdue_cases"] = [c.public(tz) for c in overdue]
        return payload, weekly_mail(due.period, report.totals, overdue, tz)
    ranking = build_ranking(session, SYSTEM, due.period, min_cases=settings.ranking_min_cases, now=now)
    payload["ranking"] = ranking.model_dump(mode="json")
    return payload, monthly_mail(due.period, report.totals, ranking, tz)


def send_leader_report(
    sessions: sessionmaker[Session],
    settings: Settings,
    due: DueReport,
    calendar: WorkCalendar,
    now: dt.datetime,
) -> int:
    if not settings.report_leaders:
        return 0
    with sessions() as session:
        sent = already_sent(session, due)
    message: tuple[dict[str, Any], dict[str, str]] | None = None
    queued = 0
    for leader in (entry for entry in settings.report_leaders if leader_key(entry) not in sent):
        with sessions.begin() as session:
            unit: Unit | None = None
            if leader.startswith("unit:"):
                unit = session.scalar(select(Unit).where(Unit.code == leader.removeprefix("unit:")))
                if unit is None:
                    log.error("report_leaders: no unit with code %r; %s not sent to it", leader[5:], due.kind)
                    continue
            if not claim_report(session, due.kind, due.key, leader_key(leader), now):
                continue
            message = message or leader_message(session, due, calendar, settings, now)
            payload, mail = message
            event = EVENTS[due.kind]
            if unit is not None:
                enqueue_unit_message(session, unit, event, {**payload, "unit": unit.code}, mail, settings)
            else:
                enqueue_email(session, leader, event, mail)
            queued += 1
    return queued


# --- deadline warnings ------------------------------------------------------------------------------------


def _warnable(now: dt.datetime) -> list[Any]:
    return [
        Case.status.in_([s.value for s in CLOCK_STATUSES]),
        Case.overdue.is_(False),
        Case.unit_id.is_not(None),
        Case.dispatched_at.is_not(None),
        Case.deadline_at > now,
        or_(Case.warned_deadline_at.is_(None), Case.warned_deadline_at != Case.deadline_at),
    ]


@functools.lru_cache(maxsize=WARN_CACHE_SIZE)
def warning_moment(
    dispatched_at: dt.datetime, deadline_at: dt.datetime, share: float, calendar: WorkCalendar
) -> dt.datetime:
    """When ``share`` of the working hours from dispatch to deadline has been used.

    Pure, so cached: each run then costs a lookup per open case, not a walk over its calendar days (the
    calendar is part of the key, so a new holiday is taken into account)."""
    total = working_hours_between(dispatched_at, deadline_at, calendar)
    if total <= 0:
        return dispatched_at
    return add_working_hours(dispatched_at, share * total, calendar)


def send_deadline_warnings(
    sessions: sessionmaker[Session], settings: Settings, calendar: WorkCalendar, now: dt.datetime
) -> int:
    share = settings.deadline_warning_share
    with sessions() as session:
        rows = session.execute(
            select(Case.id, Case.dispatched_at, Case.deadline_at).where(*_warnable(now))
        ).all()
    warned = 0
    for case_id, dispatched_at, deadline_at in rows:
        if dispatched_at is None or deadline_at is None:  # excluded by the query; for the type checker
            continue
        if now >= warning_moment(dispatched_at, deadline_at, share, calendar):
            left = working_hours_between(now, deadline_at, calendar)
            warned += _warn_one(sessions, settings, calendar, now, case_id, deadline_at, left)
    return warned


def _warn_one(
    sessions: sessionmaker[Session],
    settings: Settings,
    calendar: WorkCalendar,
    now: dt.datetime,
    case_id: int,
    deadline_at: dt.datetime,
    hours_left: float,
) -> int:
    with sessions.begin() as session:
        claimed = cast(
            CursorResult[Any],
            session.execute(
                update(Case)
                .where(Case.id == case_id, Case.deadline_at == deadline_at, *_warnable(now))
                .values(warned_deadline_at=deadline_at),
                execution_options={"synchronize_session": False},
            ),
        )
        if claimed.rowcount != 1:
            return 0
        case = session.get_one(Case, case_id)
        unit = session.get_one(Unit, case.unit_id)
        name = session.scalar(select(ViolationType.name).where(ViolationType.code == case.violation_code))
        line = case_line(case, case.place, name, now)
        tz = calendar.timezone
        payload = {
            "event": WARNING_EVENT,
            "unit": unit.code,
            "case": line.public(tz),
            "share": settings.deadline_warning_share,
            "working_hours_left": round(hours_left, 2),
            "sent_at": now.isoformat(),
        }
        mail = warning_mail(unit.name, line, settings.deadline_warning_share, hours_left, tz)
        enqueue_unit_message(session, unit, WARNING_EVENT, payload, mail, settings, case_id=case.id)
        return 1
