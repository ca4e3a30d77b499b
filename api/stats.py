"""Statistics: counts, the rates city platforms are scored on, and the unit ranking (红黑榜).

Every figure is computed in SQL (``GROUP BY`` with conditional sums), so a report costs a fixed
number of queries whatever the number of cases. Periods are whole days in the working calendar's
time zone (``CalendarSettings.timezone``, Asia/Shanghai by default).

Where the figures come from: the daily summary (:mod:`api.daily_stats`, rows per local day kept at
every case change), added up over the period's days: a month is some 10,000 rows instead of the
~850,000 cases it touches. Only due and closed_on_time of today and later days depend on "now" and are
counted from the cases whose deadline falls on those days (the module docstring of
:mod:`api.daily_stats` says which figure comes from where). When the summary's time zone is not the
period's, every figure is read straight from the cases (``direct_unit_tallies`` and the ``summary=False``
branches; the tests' oracle): the day boundaries are computed in Python with the zone database (so
zones with daylight saving work too) and the cases are bucketed by comparing timestamps with them (a
``CASE`` over the boundaries), which works the same on SQLite and PostgreSQL.

Which cases each figure counts (all times within the period ``[start, end)``):

- created, by status / violation / place, recurrences: cases created in the period;
- filed, voided_after_filing: filed in the period; of those, voided later (作废 after 立案);
- dispatched: first dispatched in the period and not voided; of those, resolved_on_time (resolved
  no later than the deadline), reworked (rework_count > 0), returned (return_count > 0);
- due: deadline in the period, not voided, and the deadline has passed or the case is closed (a
  deadline still ahead is not yet due); of those, closed_on_time (closed no later than the deadline);
- closed: closed in the period.

Rates: 按期结案率 on_time_closure = closed_on_time / due; 按时处置率 on_time_handling =
resolved_on_time / dispatched; 返工率 rework = reworked / dispatched; 准确立案率 accurate_filing =
(filed - voided_after_filing) / filed; 准确派遣率 accurate_dispatch = (dispatched - returned) /
dispatched. A rate with a zero denominator is null. Mean time to dispatch is created -> dispatched
over the dispatched cases, mean time to close created -> closed over the closed cases, in hours.

"Dispatched" means the first dispatch (``first_dispatched_at``, falling back to ``dispatched_at``
where it is not set): re-dispatch after a return or a rework restarts the unit's clock
(``dispatched_at``, ``deadline_at``) but is not a new dispatch for the statistics. Resolution and
deadline are the latest ones: a reworked case is on time if its last resolution met its last deadline.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field
from sqlalchemy import (
    ColumnElement,
    Float,
    Integer,
    Select,
    and_,
    case,
    func,
    literal,
    or_,
    select,
    true,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from api.actors import Actor
from api.daily_stats import summary_timezone
from api.errors import Forbidden, InvalidInput, NotFound
from api.models import (
    DAILY_COUNTS,
    NO_UNIT,
    CalendarSettings,
    Case,
    CaseStatus,
    DailyPlaceStats,
    DailyStats,
    Place,
    Role,
    Unit,
    ViolationType,
    utcnow,
)

DEFAULT_TIMEZONE = "Asia/Shanghai"
MAX_PERIOD_DAYS = 366
PeriodKind = Literal["daily", "weekly", "monthly", "custom"]


# --- periods -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """Whole days ``start`` .. ``end`` (both inclusive) in the calendar time zone ``tz``."""

    kind: PeriodKind
    start: dt.date
    end: dt.date
    tz: ZoneInfo

    @property
    def days(self) -> list[dt.date]:
        return [self.start + dt.timedelta(days=i) for i in range((self.end - self.start).days + 1)]

    def midnight_utc(self, day: dt.date) -> dt.datetime:
        return dt.datetime.combine(day, dt.time(0), tzinfo=self.tz).astimezone(dt.UTC)

    @property
    def boundaries_utc(self) -> list[dt.datetime]:
        """Local midnights from ``start`` to the day after ``end``, in UTC: len(days) + 1 instants."""
        return [self.midnight_utc(day) for day in [*self.days, self.end + dt.timedelta(days=1)]]

    @property
    def start_at(self) -> dt.datetime:
        return self.midnight_utc(self.start)

    @property
    def end_at(self) -> dt.datetime:
        """Exclusive end: the local midnight after the last day."""
        return self.midnight_utc(self.end + dt.timedelta(days=1))


def make_period(
    kind: PeriodKind,
    tz: ZoneInfo,
    *,
    day: dt.date | None = None,
    start: dt.date | None = None,
    end: dt.date | None = None,
    now: dt.datetime | None = None,
) -> Period:
    """daily: ``day``; weekly: the ISO week (Mon-Sun) holding ``day``; monthly: its month; custom:
    ``start`` .. ``end``. ``day`` defaults to today in ``tz``."""
    if kind == "custom":
        if start is None or end is None:
            raise InvalidInput("a custom period needs both 'from' and 'to' (dates, inclusive)")
        if end < start:
            raise InvalidInput(f"'to' ({end}) is before 'from' ({start})")
        if (end - start).days + 1 > MAX_PERIOD_DAYS:
            raise InvalidInput(f"a period is at most {MAX_PERIOD_DAYS} days; {start}..{end} is longer")
        return Period("custom", start, end, tz)
    if start is not None or end is not None:
        raise InvalidInput("'from' and 'to' go with period=custom; use 'date' for daily, weekly and monthly")
    day = day or (now or utcnow()).astimezone(tz).date()
    if kind == "daily":
        return Period(kind, day, day, tz)
    if kind == "weekly":
        monday = day - dt.timedelta(days=day.isoweekday() - 1)
        return Period(kind, monday, monday + dt.timedelta(days=6), tz)
    if kind == "monthly":
        first = day.replace(day=1)
        following = (first + dt.timedelta(days=32)).replace(day=1)
        return Period(kind, first, following - dt.timedelta(days=1), tz)
    raise InvalidInput(f"unknown period '{kind}'; one of daily, weekly, monthly, custom")


def calendar_timezone(session: Session) -> ZoneInfo:
    """The working calendar's zone (the CalendarSettings row), Asia/Shanghai when there is none."""
    name = session.scalar(select(CalendarSettings.timezone).order_by(CalendarSettings.id).limit(1))
    try:
        return ZoneInfo(name or DEFAULT_TIMEZONE)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidInput(f"the working calendar's time zone '{name}' is not a known IANA zone") from exc


# --- portable SQL ------------------------------------------------------------------------------------


class seconds_between(FunctionElement[float]):  # a SQL function, so named like one
    """``seconds_between(end, start)``: seconds from ``start`` to ``end`` on SQLite and PostgreSQL."""

    type = Float()
    name = "seconds_between"
    inherit_cache = True


@compiles(seconds_between, "sqlite")
def _seconds_between_sqlite(element: seconds_between, compiler: SQLCompiler, **kw: Any) -> str:
    end, start = (compiler.process(c, **kw) for c in element.clauses)
    return f"((julianday({end}) - julianday({start})) * 86400.0)"


@compiles(seconds_between, "postgresql")
def _seconds_between_postgresql(element: seconds_between, compiler: SQLCompiler, **kw: Any) -> str:
    end, start = (compiler.process(c, **kw) for c in element.clauses)
    return f"EXTRACT(EPOCH FROM ({end} - {start}))"


def first_dispatch() -> ColumnElement[dt.datetime]:
    """When the case was first dispatched (older rows may only have ``dispatched_at``)."""
    return func.coalesce(Case.first_dispatched_at, Case.dispatched_at)


def within(column: Any, period: Period) -> ColumnElement[bool]:
    return and_(column >= period.start_at, column < period.end_at)


def count_if(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def day_index(column: Any, period: Period) -> ColumnElement[int]:
    """Which day of ``period`` (0-based) a timestamp inside the period falls on, as a CASE."""
    inner = period.boundaries_utc[1:-1]
    if not inner:
        return literal(0, Integer)
    return case(*[(column < boundary, i) for i, boundary in enumerate(inner)], else_=len(inner))


# --- scope -------------------------------------------------------------------------------------------


def scope_unit(session: Session, actor: Actor, unit_code: str | None) -> Unit | None:
    """The unit whose figures ``actor`` asked for (None: all). Unit handlers get only their own."""
    if actor.is_device:
        raise Forbidden("devices may not read statistics; operators (viewer and up) may")
    if actor.kind == "user" and actor.role is Role.UNIT_HANDLER:
        own = session.get(Unit, actor.unit_id) if actor.unit_id is not None else None
        if own is None:
            raise Forbidden(f"unit handler '{actor.name}' has no unit and so has no figures")
        if unit_code is not None and unit_code != own.code:
            raise Forbidden(
                f"unit handlers see only their own unit's figures ('{own.code}'), not '{unit_code}'"
            )
        return own
    if unit_code is None:
        return None
    unit = session.scalar(select(Unit).where(Unit.code == unit_code))
    if unit is None:
        raise NotFound(f"no unit with code '{unit_code}'")
    return unit


def _scope_clause(unit: Unit | None) -> ColumnElement[bool]:
    return true() if unit is None else Case.unit_id == unit.id


# --- the scorecard (one row per unit) ------------------------------------------------------------------


@dataclass
class Tally:
    """Counts and duration sums for one unit (or a total); rates are derived from these."""

    created: int = 0
    filed: int = 0
    voided_after_filing: int = 0
    dispatched: int = 0
    resolved_on_time: int = 0
    reworked: int = 0
    returned: int = 0
    due: int = 0
    closed_on_time: int = 0
    closed: int = 0
    recurrences: int = 0
    dispatch_seconds: float = 0.0
    close_seconds: float = 0.0

    def __add__(self, other: Tally) -> Tally:
        return Tally(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})


def _rate(numerator: int, denominator: int) -> float | None:
    return None if denominator == 0 else round(numerator / denominator, 4)


def _mean_hours(seconds: float, count: int) -> float | None:
    return None if count == 0 else round(seconds / count / 3600, 4)


class Figures(BaseModel):
    created: int = Field(description="Cases created in the period.")
    filed: int = Field(description="Cases filed (立案) in the period.")
    voided_after_filing: int = Field(description="Of the filed cases, those voided later.")
    dispatched: int = Field(description="Cases dispatched (派遣) in the period, not voided.")
    resolved_on_time: int = Field(description="Of the dispatched cases, resolved by the deadline.")
    reworked: int = Field(description="Of the dispatched cases, those sent back for rework (返工).")
    returned: int = Field(description="Of the dispatched cases, those returned by the unit (回退).")
    due: int = Field(description="Cases with a deadline in the period that has passed (or that are closed).")
    closed_on_time: int = Field(description="Of the due cases, closed by the deadline.")
    closed: int = Field(description="Cases closed (结案) in the period.")
    recurrences: int = Field(description="Cases created in the period that recur a closed case (复发).")
    on_time_closure_rate: float | None = Field(description="按期结案率 = closed_on_time / due.")
    on_time_handling_rate: float | None = Field(description="按时处置率 = resolved_on_time / dispatched.")
    rework_rate: float | None = Field(description="返工率 = reworked / dispatched.")
    accurate_filing_rate: float | None = Field(
        description="准确立案率 = (filed - voided_after_filing) / filed."
    )
    accurate_dispatch_rate: float | None = Field(
        description="准确派遣率 = (dispatched - returned) / dispatched."
    )
    mean_hours_to_dispatch: float | None = Field(
        description="Mean created -> dispatched of dispatched cases."
    )
    mean_hours_to_close: float | None = Field(description="Mean created -> closed of closed cases.")

    @classmethod
    def of(cls, t: Tally) -> Figures:
        return cls(
            created=t.created,
            filed=t.filed,
            voided_after_filing=t.voided_after_filing,
            dispatched=t.dispatched,
            resolved_on_time=t.resolved_on_time,
            reworked=t.reworked,
            returned=t.returned,
            due=t.due,
            closed_on_time=t.closed_on_time,
            closed=t.closed,
            recurrences=t.recurrences,
            on_time_closure_rate=_rate(t.closed_on_time, t.due),
            on_time_handling_rate=_rate(t.resolved_on_time, t.dispatched),
            rework_rate=_rate(t.reworked, t.dispatched),
            accurate_filing_rate=_rate(t.filed - t.voided_after_filing, t.filed),
            accurate_dispatch_rate=_rate(t.dispatched - t.returned, t.dispatched),
            mean_hours_to_dispatch=_mean_hours(t.dispatch_seconds, t.dispatched),
            mean_hours_to_close=_mean_hours(t.close_seconds, t.closed),
        )


class UnitFigures(Figures):
    unit: str | None = Field(description="Unit code; null for cases not assigned to any unit.")
    unit_name: str | None


def uses_summary(session: Session, period: Period) -> bool:
    """Whether the daily summary (:mod:`api.daily_stats`) holds the period's days: its time zone is the
    period's. Otherwise (a zone changed outside the API, a period in another zone) the cases are read."""
    return summary_timezone(session) == period.tz.key


def unit_tallies(
    session: Session, period: Period, unit: Unit | None, now: dt.datetime, *, summary: bool | None = None
) -> dict[int | None, Tally]:
    """A Tally per unit id (None: unassigned cases) for the cases that touch the period: from the daily
    summary (``summary``: default, when it holds the period's days), else straight from the cases."""
    if summary if summary is not None else uses_summary(session, period):
        return _summary_tallies(session, period, unit, now)
    return direct_unit_tallies(session, period, unit, now)


def _live_from(period: Period, now: dt.datetime) -> dt.date | None:
    """The first day of ``period`` whose due figures depend on ``now`` (today or later); None if none."""
    first = max(period.start, now.astimezone(period.tz).date())
    return first if first <= period.end else None


def _summary_tallies(
    session: Session, period: Period, unit: Unit | None, now: dt.datetime
) -> dict[int | None, Tally]:
    """Two queries at most: the summary's rows of the period per unit, and for today and later days the
    due and closed-on-time cases counted from the cases whose deadline falls on them."""
    live_from = _live_from(period, now)
    settled = true() if live_from is None else DailyStats.day < live_from
    sums = {name: func.sum(getattr(DailyStats, name)) for name in DAILY_COUNTS}
    sums["due"] = func.sum(case((settled, DailyStats.due), else_=0))
    sums["closed_on_time"] = func.sum(case((settled, DailyStats.closed_on_time), else_=0))
    d = DailyStats
    touches = func.sum(d.created + d.filed + d.dispatches + d.deadlines + d.closed)
    query = (
        select(DailyStats.unit_id, touches.label("touches"), *[c.label(n) for n, c in sums.items()])
        .where(DailyStats.day.between(period.start, period.end), _summary_scope(DailyStats, unit))
        .group_by(DailyStats.unit_id)
    )
    tallies: dict[int | None, Tally] = {}
    for row in session.execute(query).mappings():
        if not row["touches"]:
            continue
        tallies[None if row["unit_id"] == NO_UNIT else row["unit_id"]] = Tally(
            **{name: int(row[name] or 0) for name in _TALLY_COUNTS},
            dispatch_seconds=int(row["dispatch_us"] or 0) / 1e6,
            close_seconds=int(row["close_us"] or 0) / 1e6,
        )
    if live_from is not None:
        for unit_id, due, on_time in _live_due(session, period, unit, now, live_from):
            tally = tallies.setdefault(unit_id, Tally())  # listed already: its deadlines touch the period
            tally.due += int(due)
            tally.closed_on_time += int(on_time)
    return tallies


def _live_due(
    session: Session, period: Period, unit: Unit | None, now: dt.datetime, live_from: dt.date
) -> Sequence[Any]:
    """Due and closed-on-time per unit of the cases whose deadline is on ``live_from`` or later in the
    period: the figures that depend on ``now`` (an index range on ``deadline_at`` reads just those cases)."""
    due = and_(
        Case.status != CaseStatus.VOIDED.value,
        or_(Case.deadline_at <= now, Case.closed_at.is_not(None)),
    )
    query = (
        select(
            Case.unit_id,
            count_if(due),
            count_if(and_(due, Case.closed_at <= Case.deadline_at)),
        )
        .where(
            Case.deadline_at >= period.midnight_utc(live_from),
            Case.deadline_at < period.end_at,
            _scope_clause(unit),
        )
        .group_by(Case.unit_id)
    )
    return session.execute(query).all()


SummaryTable = type[DailyStats] | type[DailyPlaceStats]


def _summary_scope(table: SummaryTable, unit: Unit | None) -> ColumnElement[bool]:
    return true() if unit is None else table.unit_id == unit.id


_TALLY_COUNTS = (
    "created", "filed", "voided_after_filing", "dispatched", "resolved_on_time", "reworked", "returned",
    "due", "closed_on_time", "closed", "recurrences",
)  # fmt: skip


def direct_unit_tallies(
    session: Session, period: Period, unit: Unit | None, now: dt.datetime
) -> dict[int | None, Tally]:
    """One query over the cases: a Tally per unit id (None: unassigned cases) for the cases that touch
    the period (every one of them is read: the summary's fallback, and the tests' oracle)."""
    not_voided = Case.status != CaseStatus.VOIDED.value
    created = within(Case.created_at, period)
    filed = within(Case.filed_at, period)
    dispatched = and_(within(first_dispatch(), period), not_voided)
    due = and_(
        within(Case.deadline_at, period),
        not_voided,
        or_(Case.deadline_at <= now, Case.closed_at.is_not(None)),
    )
    closed = within(Case.closed_at, period)
    columns = {
        "created": count_if(created),
        "filed": count_if(filed),
        "voided_after_filing": count_if(and_(filed, Case.voided_at.is_not(None))),
        "dispatched": count_if(dispatched),
        "resolved_on_time": count_if(and_(dispatched, Case.resolved_at <= Case.deadline_at)),
        "reworked": count_if(and_(dispatched, Case.rework_count > 0)),
        "returned": count_if(and_(dispatched, Case.return_count > 0)),
        "due": count_if(due),
        "closed_on_time": count_if(and_(due, Case.closed_at <= Case.deadline_at)),
        "closed": count_if(closed),
        "recurrences": count_if(and_(created, Case.recurrence_of_id.is_not(None))),
        "dispatch_seconds": func.sum(case((dispatched, seconds_between(first_dispatch(), Case.created_at)))),
        "close_seconds": func.sum(case((closed, seconds_between(Case.closed_at, Case.created_at)))),
    }
    touches = or_(created, filed, within(first_dispatch(), period), within(Case.deadline_at, period), closed)
    query = (
        select(Case.unit_id, *[c.label(name) for name, c in columns.items()])
        .where(touches, _scope_clause(unit))
        .group_by(Case.unit_id)
    )
    tallies: dict[int | None, Tally] = {}
    for row in session.execute(query).mappings():
        counts = {
            name: int(row[name]) for name in columns if name not in ("dispatch_seconds", "close_seconds")
        }
        tallies[row["unit_id"]] = Tally(
            **counts,
            dispatch_seconds=float(row["dispatch_seconds"] or 0),  # PostgreSQL: Decimal; SQLite: float
            close_seconds=float(row["close_seconds"] or 0),
        )
    return tallies


# --- the report ----------------------------------------------------------------------------------------


class PeriodPublic(BaseModel):
    kind: PeriodKind
    start: dt.date = Field(description="First day (calendar time zone).")
    end: dt.date = Field(description="Last day, inclusive.")
    timezone: str
    start_at: dt.datetime = Field(description="The period's start as an instant (UTC).")
    end_at: dt.datetime = Field(description="The instant after the period (exclusive end, UTC).")

    @classmethod
    def of(cls, p: Period) -> PeriodPublic:
        return cls(
            kind=p.kind, start=p.start, end=p.end, timezone=p.tz.key, start_at=p.start_at, end_at=p.end_at
        )


class StatusCount(BaseModel):
    status: str
    count: int


class ViolationCount(BaseModel):
    violation_code: str
    name: str | None
    count: int


class PlaceCount(BaseModel):
    place: str = Field(description="Place key (grid code / road section).")
    place_name: str
    count: int = Field(description="Cases created in the period.")
    recurrences: int = Field(description="Of those, recurrences of a closed case (复发).")


class DayCount(BaseModel):
    day: dt.date = Field(description="The local day (calendar time zone).")
    created: int
    dispatched: int = Field(description="Dispatched that day and not voided (as in the totals).")
    closed: int


class Report(BaseModel):
    period: PeriodPublic
    unit: str | None = Field(description="The unit the figures are limited to; null for all units.")
    totals: Figures
    by_unit: list[UnitFigures]
    by_status: list[StatusCount]
    by_violation: list[ViolationCount]
    by_place: list[PlaceCount]
    recurrence_by_place: list[PlaceCount] = Field(description="Places with recurrences, most first.")
    by_day: list[DayCount]


def _units_by_id(session: Session) -> dict[int, Unit]:
    return {u.id: u for u in session.scalars(select(Unit))}


def _unit_figures(tallies: dict[int | None, Tally], units: dict[int, Unit]) -> list[UnitFigures]:
    def sort_key(item: tuple[int | None, Tally]) -> tuple[int, str]:
        unit = units.get(item[0]) if item[0] is not None else None
        return (1, "") if unit is None else (0, unit.code)

    rows = []
    for unit_id, tally in sorted(tallies.items(), key=sort_key):
        unit = units.get(unit_id) if unit_id is not None else None
        rows.append(
            UnitFigures(
                unit=unit.code if unit else None,
                unit_name=unit.name if unit else None,
                **Figures.of(tally).model_dump(),
            )
        )
    return rows


def _summary_created(
    period: Period, unit: Unit | None, column: Any, table: SummaryTable = DailyStats
) -> Select[Any]:
    """Cases created in the period per ``column`` of the summary (groups with none left out)."""
    return (
        select(column, func.sum(table.created).label("n"), func.sum(table.recurrences).label("recurrences"))
        .where(table.day.between(period.start, period.end), _summary_scope(table, unit))
        .group_by(column)
        .having(func.sum(table.created) > 0)
    )


def _by_status(session: Session, period: Period, unit: Unit | None, summary: bool) -> list[StatusCount]:
    if summary:
        query = _summary_created(period, unit, DailyStats.status).with_only_columns(
            DailyStats.status, func.sum(DailyStats.created)
        )
    else:
        query = (
            select(Case.status, func.count())
            .where(within(Case.created_at, period), _scope_clause(unit))
            .group_by(Case.status)
        )
    rows = [StatusCount(status=s, count=int(n)) for s, n in session.execute(query)]
    return sorted(rows, key=lambda r: (-r.count, r.status))


def _by_violation(session: Session, period: Period, unit: Unit | None, summary: bool) -> list[ViolationCount]:
    # group the cases alone, then name the few groups: joining first joins every case of the month
    counts = (
        _summary_created(period, unit, DailyStats.violation_code.label("violation_code")).subquery()
        if summary
        else select(Case.violation_code, func.count().label("n"))
        .where(within(Case.created_at, period), _scope_clause(unit))
        .group_by(Case.violation_code)
        .subquery()
    )
    query = select(counts.c.violation_code, ViolationType.name, counts.c.n).outerjoin(
        ViolationType, ViolationType.code == counts.c.violation_code
    )
    rows = [
        ViolationCount(violation_code=c, name=name, count=int(n)) for c, name, n in session.execute(query)
    ]
    return sorted(rows, key=lambda r: (-r.count, r.violation_code))


def _by_place(session: Session, period: Period, unit: Unit | None, summary: bool) -> list[PlaceCount]:
    counts = (
        _summary_created(period, unit, DailyPlaceStats.place_id.label("place_id"), DailyPlaceStats).subquery()
        if summary
        else select(
            Case.place_id,
            func.count().label("n"),
            count_if(Case.recurrence_of_id.is_not(None)).label("recurrences"),
        )
        .where(within(Case.created_at, period), _scope_clause(unit))
        .group_by(Case.place_id)
        .subquery()
    )
    query = select(Place.key, Place.name, counts.c.n, counts.c.recurrences).join(
        counts, counts.c.place_id == Place.id
    )
    rows = [
        PlaceCount(place=key, place_name=name, count=int(n), recurrences=int(r))
        for key, name, n, r in session.execute(query)
    ]
    return sorted(rows, key=lambda r: (-r.count, r.place))


def _per_day(
    session: Session, period: Period, unit: Unit | None, column: Any, *conditions: ColumnElement[bool]
) -> list[int]:
    """Cases per day of the period by ``column`` (a timestamp), one GROUP BY over the day index."""
    bucket = (
        select(day_index(column, period).label("day"))
        .where(within(column, period), _scope_clause(unit), *conditions)
        .subquery()
    )
    counts = [0] * len(period.days)
    for index, n in session.execute(select(bucket.c.day, func.count()).group_by(bucket.c.day)):
        counts[int(index)] = n
    return counts


def _by_day(session: Session, period: Period, unit: Unit | None, summary: bool) -> list[DayCount]:
    if summary:
        query = (
            select(
                DailyStats.day,
                func.sum(DailyStats.created),
                func.sum(DailyStats.dispatched),
                func.sum(DailyStats.closed),
            )
            .where(DailyStats.day.between(period.start, period.end), _summary_scope(DailyStats, unit))
            .group_by(DailyStats.day)
        )
        sums = {day: (int(c), int(d), int(x)) for day, c, d, x in session.execute(query)}
        return [
            DayCount(day=day, created=c, dispatched=d, closed=x)
            for day in period.days
            for c, d, x in [sums.get(day, (0, 0, 0))]
        ]
    created = _per_day(session, period, unit, Case.created_at)
    dispatched = _per_day(session, period, unit, first_dispatch(), Case.status != CaseStatus.VOIDED.value)
    closed = _per_day(session, period, unit, Case.closed_at)
    return [
        DayCount(day=day, created=created[i], dispatched=dispatched[i], closed=closed[i])
        for i, day in enumerate(period.days)
    ]


def build_report(
    session: Session,
    actor: Actor,
    period: Period,
    *,
    unit_code: str | None = None,
    now: dt.datetime | None = None,
    all_tallies: dict[int | None, Tally] | None = None,
    summary: bool | None = None,
) -> Report:
    """The period's report for ``actor`` (unit handlers: their unit only). ``all_tallies``: every unit's
    tallies for the period, already read (:func:`report_and_ranking`), used when the report is not
    limited to one unit. ``summary``: add up the daily summary (True) or read the cases (False);
    default: the summary when it holds the period's days (:func:`uses_summary`)."""
    unit = scope_unit(session, actor, unit_code)
    summary = uses_summary(session, period) if summary is None else summary
    if unit is None and all_tallies is not None:
        tallies = all_tallies
    else:
        tallies = unit_tallies(session, period, unit, now or utcnow(), summary=summary)
    total = sum(tallies.values(), Tally())
    by_place = _by_place(session, period, unit, summary)
    return Report(
        period=PeriodPublic.of(period),
        unit=unit.code if unit else None,
        totals=Figures.of(total),
        by_unit=_unit_figures(tallies, _units_by_id(session)),
        by_status=_by_status(session, period, unit, summary),
        by_violation=_by_violation(session, period, unit, summary),
        by_place=by_place,
        recurrence_by_place=sorted(
            (p for p in by_place if p.recurrences), key=lambda p: (-p.recurrences, p.place)
        ),
        by_day=_by_day(session, period, unit, summary),
    )


# --- the ranking (红黑榜) ----------------------------------------------------------------------------


class RankedUnit(BaseModel):
    rank: int = Field(description="1 = best on-time closure rate; equal rates share a rank.")
    unit: str
    unit_name: str
    due: int
    closed_on_time: int
    on_time_closure_rate: float
    on_time_handling_rate: float | None
    rework_rate: float | None
    dispatched: int


class LeftOutUnit(BaseModel):
    unit: str
    unit_name: str
    due: int
    reason: str


class Ranking(BaseModel):
    period: PeriodPublic
    min_cases: int = Field(description="Units with fewer due cases in the period are left out.")
    ranked_units: int = Field(
        description="How many units the ranking has (all of them, also for unit handlers)."
    )
    ranked: list[RankedUnit]
    left_out: list[LeftOutUnit]


@dataclass
class _Candidate:
    unit: Unit
    tally: Tally = field(default_factory=Tally)


def build_ranking(
    session: Session,
    actor: Actor,
    period: Period,
    *,
    min_cases: int,
    now: dt.datetime | None = None,
    all_tallies: dict[int | None, Tally] | None = None,
    summary: bool | None = None,
) -> Ranking:
    """Units ranked by on-time closure rate (按期结案率) over their due cases in the period.

    A unit with fewer than ``min_cases`` due cases is left out (and listed with the reason), so a
    unit with one lucky case is neither first nor last. Unit handlers see only their unit's line.
    """
    own = scope_unit(session, actor, None)
    if all_tallies is None:
        all_tallies = unit_tallies(session, period, None, now or utcnow(), summary=summary)
    tallies = all_tallies
    units = _units_by_id(session)
    candidates = [
        _Candidate(u, tallies.get(u.id, Tally())) for u in units.values() if u.active or u.id in tallies
    ]
    eligible = [c for c in candidates if c.tally.due >= min_cases]
    eligible.sort(key=lambda c: (-c.tally.closed_on_time / c.tally.due, -c.tally.due, c.unit.code))
    ranked = _rank(eligible)
    left_out = [
        LeftOutUnit(
            unit=c.unit.code,
            unit_name=c.unit.name,
            due=c.tally.due,
            reason=f"{c.tally.due} due case(s) in the period, fewer than the minimum of {min_cases}",
        )
        for c in sorted(candidates, key=lambda c: c.unit.code)
        if c.tally.due < min_cases
    ]
    if own is not None:
        ranked = [r for r in ranked if r.unit == own.code]
        left_out = [u for u in left_out if u.unit == own.code]
    return Ranking(
        period=PeriodPublic.of(period),
        min_cases=min_cases,
        ranked_units=len(eligible),
        ranked=ranked,
        left_out=left_out,
    )


def report_and_ranking(
    session: Session,
    actor: Actor,
    period: Period,
    *,
    min_cases: int,
    now: dt.datetime | None = None,
    summary: bool | None = None,
) -> tuple[Report, Ranking]:
    """The report and the ranking of one period (the dashboards), reading every unit's tallies once
    (from the daily summary, or, without it, from every case that touches the period)."""
    now = now or utcnow()
    scope_unit(session, actor, None)  # devices may not; raises before any scan
    summary = uses_summary(session, period) if summary is None else summary
    tallies = unit_tallies(session, period, None, now, summary=summary)
    report = build_report(session, actor, period, now=now, all_tallies=tallies, summary=summary)
    return report, build_ranking(session, actor, period, min_cases=min_cases, now=now, all_tallies=tallies)


def _rank(eligible: Sequence[_Candidate]) -> list[RankedUnit]:
    ranked: list[RankedUnit] = []
    for position, c in enumerate(eligible, start=1):
        figures = Figures.of(c.tally)
        rate = figures.on_time_closure_rate or 0.0
        same_as_previous = ranked and c.tally.closed_on_time * eligible[position - 2].tally.due == (
            eligible[position - 2].tally.closed_on_time * c.tally.due
        )
        ranked.append(
            RankedUnit(
                rank=ranked[-1].rank if same_as_previous else position,
                unit=c.unit.code,
                unit_name=c.unit.name,
                due=c.tally.due,
                closed_on_time=c.tally.closed_on_time,
                on_time_closure_rate=rate,
                on_time_handling_rate=figures.on_time_handling_rate,
                rework_rate=figures.rework_rate,
                dispatched=c.tally.dispatched,
            )
        )
    return ranked


# --- CSV ---------------------------------------------------------------------------------------------

ReportSection = Literal["units", "days", "places", "violations", "statuses", "recurrence"]


def report_rows(report: Report, section: ReportSection) -> tuple[list[str], list[dict[str, Any]]]:
    """The columns and rows of one section of ``report`` for CSV; "units" ends with a total row."""
    head = {"period_start": report.period.start.isoformat(), "period_end": report.period.end.isoformat()}
    if section == "units":
        figure_columns = list(Figures.model_fields)
        totals = {"unit": "TOTAL", "unit_name": "", **report.totals.model_dump()}
        rows = [{**head, **r.model_dump()} for r in report.by_unit] + [{**head, **totals}]
        return [*head, "unit", "unit_name", *figure_columns], rows
    sections: dict[str, tuple[type[BaseModel], Sequence[BaseModel]]] = {
        "days": (DayCount, report.by_day),
        "places": (PlaceCount, report.by_place),
        "violations": (ViolationCount, report.by_violation),
        "statuses": (StatusCount, report.by_status),
        "recurrence": (PlaceCount, report.recurrence_by_place),
    }
    model, items = sections[section]
    return [*head, *model.model_fields], [{**head, **i.model_dump(mode="json")} for i in items]


def ranking_rows(ranking: Ranking) -> tuple[list[str], list[dict[str, Any]]]:
    """Ranked units, then the left-out ones (rank empty, with the reason)."""
    head = {"period_start": ranking.period.start.isoformat(), "period_end": ranking.period.end.isoformat()}
    columns = [*head, *RankedUnit.model_fields, "left_out_reason"]
    rows = [{**head, **r.model_dump(), "left_out_reason": ""} for r in ranking.ranked]
    rows += [
        {
            **head,
            "rank": "",
            "unit": u.unit,
            "unit_name": u.unit_name,
            "due": u.due,
            "left_out_reason": u.reason,
        }
        for u in ranking.left_out
    ]
    return columns, rows
