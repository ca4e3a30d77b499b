"""The statistics' daily summary: what the period report, the ranking and the dashboards add up instead of
reading every case of the period (a month of a 10,000-camera city is ~850,000 cases).

Two tables (:class:`api.models.DailyStats`, :class:`api.models.DailyPlaceStats`), keyed by the local day in
the working calendar's time zone (the one :class:`api.models.DailyStatsState` names):

- ``daily_stats`` (day, unit, violation type, status): each case counts once per event that falls on the
  day, under its *current* unit (``NO_UNIT`` = 0 for none), violation type and status:
  created (and recurrences) on its creation day; filed (and voided_after_filing: voided later) on its
  filing day; on its first dispatch day (``first_dispatched_at``, else ``dispatched_at``) ``dispatches``
  always and, unless voided, dispatched, resolved_on_time, reworked, returned and dispatch_us (created ->
  first dispatch, microseconds); on its deadline day ``deadlines`` always and, unless voided, due (the
  deadline, whether passed or not) and closed_on_time; closed and close_us (created -> closed) on its
  closing day.
- ``daily_place_stats`` (day, unit, place): created and recurrences on the creation day.

**One place keeps it**: an ORM flush listener on every session (:func:`_after_flush`). For each case
inserted, changed in a column the figures read (:data:`TRACKED`) or deleted in the flush, it takes the
case's contribution before (the loaded values) and after, and adds the difference to the rows with
``INSERT ... ON CONFLICT DO UPDATE SET n = n + excluded.n`` (PostgreSQL and SQLite) on the session's
connection: in the same transaction as the change (a rolled-back SAVEPOINT takes its rows back too), safe
with several workers (the upsert adds; the workflow locks the case row, so "before" is what is counted),
right when a case changes days later (its old contribution moves out of the old rows). Rows are written in
key order within a flush; two transactions whose several flushes meet the same rows in another order can
still deadlock on PostgreSQL, which aborts one: an OperationalError, answered 503 with Retry-After like
any transient database error (:mod:`api.db_errors`). Every path that changes those columns goes through
the ORM (the workflow's transitions, re-code, merge, void, ingest's and Open311's new cases); the bulk
UPDATEs elsewhere (overdue marking, sighting counts, warnings) touch none of them. An ORM bulk UPDATE or
DELETE of cases that could change a counted column is kept too, by the same module
(:func:`_bulk_changes`: the affected cases read before and after it, the difference applied). Retention
deletes evidence, never cases. Bulk SQL outside the ORM that inserts cases (the benchmarks' generators)
calls :func:`rebuild` afterwards.

**The time zone**: the summary's days are those of ``daily_stats_state.timezone``. When the calendar's zone
changes (the calendar API, the config import or any ORM change of :class:`~api.models.CalendarSettings`),
:func:`follow_calendar` rebuilds it in the same transaction. Writers hold a shared advisory lock on
PostgreSQL (``FOR KEY SHARE`` of the state row on SQLite) and a rebuild takes it alone, so no delta is
computed in a zone being replaced. Readers use the
summary only when its zone is the period's (:func:`summary_timezone`); otherwise :mod:`api.stats` reads the
cases as before.

**Which figure comes from where** (:mod:`api.stats`): created, filed, voided_after_filing, dispatched,
resolved_on_time, reworked, returned, closed, recurrences, the mean times (dispatch_us, close_us), by
status, by violation, by day: the summary. by place and recurrence by place: ``daily_place_stats``. due and
closed_on_time depend on "now" (a deadline not yet passed is not due unless the case is closed): for the
days before today (local) every deadline has passed, so they are the summary's; for today and later days
of the period they are counted from the cases whose deadline falls on those days (the deadline index:
a bounded set, the cases dispatched in the last day or so). Which units a report lists (any case touching
the period) is the summary's created + filed + dispatches + deadlines + closed > 0.

:func:`rebuild` is the one SQL that fills the summary from the cases (``INSERT ... SELECT`` over a
``UNION ALL`` of the five events): migration ``0015_daily_stats``, the benchmarks' bulk generator and a
time-zone change use it. SQLite has no time zones: there the local day and the microseconds are Python
functions registered on the connection.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    Date,
    Integer,
    Select,
    Table,
    and_,
    case,
    delete,
    event,
    func,
    inspect,
    literal,
    literal_column,
    select,
    union_all,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import Delete, Update
from sqlalchemy.sql.functions import FunctionElement

from api.models import (
    DAILY_COUNTS,
    DAILY_PLACE_COUNTS,
    NO_UNIT,
    CalendarSettings,
    Case,
    CaseStatus,
    DailyPlaceStats,
    DailyStats,
    DailyStatsState,
    utcnow,
)

DEFAULT_TIMEZONE = "Asia/Shanghai"  # as api.stats: the zone when no calendar is configured
STATE_ID = 1
SUMMARY_LOCK_KEY = 0x53574453  # "SWDS": the advisory lock writers share and a rebuild takes alone
VOIDED = CaseStatus.VOIDED.value
# The case columns the figures read: a flush that changes none of them leaves the summary alone.
TRACKED = (
    "status", "violation_code", "place_id", "unit_id", "created_at", "filed_at", "dispatched_at",
    "first_dispatched_at", "deadline_at", "resolved_at", "closed_at", "voided_at", "rework_count",
    "return_count", "recurrence_of_id",
)  # fmt: skip
_MAIN = cast(Table, DailyStats.__table__)
_PLACES = cast(Table, DailyPlaceStats.__table__)
_STATE = cast(Table, DailyStatsState.__table__)
_MAIN_KEY = ("day", "unit_id", "violation_code", "status")
_PLACE_KEY = ("day", "unit_id", "place_id")

RowKey = tuple[str, tuple[Any, ...]]  # (table name, key values)
Delta = dict[RowKey, Counter[str]]


# --- one case's contribution ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Facts:
    """What the figures read of one case."""

    unit_id: int
    violation_code: str
    status: str
    place_id: int
    created_at: dt.datetime
    filed_at: dt.datetime | None
    first_dispatch: dt.datetime | None
    deadline_at: dt.datetime | None
    resolved_at: dt.datetime | None
    closed_at: dt.datetime | None
    voided_at: dt.datetime | None
    reworked: bool
    returned: bool
    recurrence: bool

    @classmethod
    def of(cls, v: Mapping[Any, Any]) -> Facts:
        return cls(
            unit_id=v["unit_id"] if v["unit_id"] is not None else NO_UNIT,
            violation_code=v["violation_code"],
            status=v["status"],
            place_id=v["place_id"],
            created_at=v["created_at"],
            filed_at=v["filed_at"],
            first_dispatch=v["first_dispatched_at"] or v["dispatched_at"],
            deadline_at=v["deadline_at"],
            resolved_at=v["resolved_at"],
            closed_at=v["closed_at"],
            voided_at=v["voided_at"],
            reworked=(v["rework_count"] or 0) > 0,
            returned=(v["return_count"] or 0) > 0,
            recurrence=v["recurrence_of_id"] is not None,
        )


def microseconds(delta: dt.timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def contributions(f: Facts, tz: ZoneInfo) -> Delta:
    """The counts ``f`` adds to the summary's rows (the module docstring says which)."""
    out: Delta = {}

    def add(table: str, key: tuple[Any, ...], **counts: int) -> None:
        out.setdefault((table, key), Counter()).update(counts)

    def on(at: dt.datetime, **counts: int) -> None:
        add(_MAIN.name, (at.astimezone(tz).date(), f.unit_id, f.violation_code, f.status), **counts)

    live = f.status != VOIDED
    created_day = f.created_at.astimezone(tz).date()
    on(f.created_at, created=1, recurrences=int(f.recurrence))
    add(_PLACES.name, (created_day, f.unit_id, f.place_id), created=1, recurrences=int(f.recurrence))
    if f.filed_at is not None:
        on(f.filed_at, filed=1, voided_after_filing=int(f.voided_at is not None))
    if f.first_dispatch is not None:
        if live:
            resolved, deadline = f.resolved_at, f.deadline_at
            on_time = resolved is not None and deadline is not None and resolved <= deadline
            on(
                f.first_dispatch,
                dispatches=1,
                dispatched=1,
                resolved_on_time=int(on_time),
                reworked=int(f.reworked),
                returned=int(f.returned),
                dispatch_us=microseconds(f.first_dispatch - f.created_at),
            )
        else:
            on(f.first_dispatch, dispatches=1)
    if f.deadline_at is not None:
        if live:
            closed_on_time = f.closed_at is not None and f.closed_at <= f.deadline_at
            on(f.deadline_at, deadlines=1, due=1, closed_on_time=int(closed_on_time))
        else:
            on(f.deadline_at, deadlines=1)
    if f.closed_at is not None:
        on(f.closed_at, closed=1, close_us=microseconds(f.closed_at - f.created_at))
    return out


def difference(before: Facts | None, after: Facts | None, tz: ZoneInfo, into: Delta) -> None:
    """Add ``after``'s contribution minus ``before``'s to ``into``."""
    if before == after:
        return
    for sign, facts in ((-1, before), (1, after)):
        if facts is None:
            continue
        for key, counts in contributions(facts, tz).items():
            target = into.setdefault(key, Counter())
            for name, n in counts.items():
                target[name] += sign * n


def apply(connection: Connection, delta: Delta) -> None:
    """Add ``delta`` to the summary's rows (upserts in key order; rows whose counts do not change are
    left alone)."""
    for table, key_columns, columns in (
        (_MAIN, _MAIN_KEY, DAILY_COUNTS),
        (_PLACES, _PLACE_KEY, DAILY_PLACE_COUNTS),
    ):
        rows = [
            {**dict(zip(key_columns, key, strict=True)), **{c: counts.get(c, 0) for c in columns}}
            for (name, key), counts in sorted(delta.items(), key=lambda item: (item[0][0], item[0][1]))
            if name == table.name and any(counts.values())
        ]
        if rows:
            connection.execute(_upsert(connection, table, key_columns, columns), rows)


def _upsert(connection: Connection, table: Table, keys: tuple[str, ...], columns: tuple[str, ...]) -> Any:
    insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    statement = insert(table)
    return statement.on_conflict_do_update(
        index_elements=list(keys), set_={c: table.c[c] + statement.excluded[c] for c in columns}
    )


# --- the time zone -------------------------------------------------------------------------------------


def _zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or DEFAULT_TIMEZONE)
    except (ZoneInfoNotFoundError, ValueError):  # api.stats refuses such a calendar; the summary keeps on
        return ZoneInfo(DEFAULT_TIMEZONE)


def calendar_zone(connection: Connection) -> ZoneInfo:
    name = connection.scalar(select(CalendarSettings.timezone).order_by(CalendarSettings.id).limit(1))
    return _zone(name)


def summary_timezone(session: Session | Connection) -> str | None:
    """The zone whose days the summary holds; None when it was never built."""
    return session.scalar(select(DailyStatsState.timezone).where(DailyStatsState.id == STATE_ID))


def _writer_zone(connection: Connection) -> ZoneInfo | None:
    """The summary's zone, held until the transaction ends so that a rebuild in another zone waits for
    this transaction. None: it was never built, and now is (from the cases as they are, this flush's
    changes included).

    On PostgreSQL the hold is a shared transaction-level advisory lock that a rebuild takes exclusively
    (:func:`rebuild`), not a row lock on the state row: every case write takes it, and many
    concurrent ``FOR KEY SHARE`` lockers of one row queue on its tuple lock (a fleet of 10,000 cameras
    spent its reports' time waiting there). SQLite serialises writers anyway."""
    query = select(DailyStatsState.timezone).where(DailyStatsState.id == STATE_ID)
    if connection.dialect.name == "postgresql":
        connection.execute(select(func.pg_advisory_xact_lock_shared(SUMMARY_LOCK_KEY)))
    else:
        query = query.with_for_update(key_share=True)
    name = connection.scalar(query)
    if name is None:
        rebuild(connection)
        return None
    return _zone(name)


def follow_calendar(connection: Connection) -> bool:
    """Rebuild the summary if the calendar's zone is no longer its zone; whether it did."""
    zone = calendar_zone(connection)
    if summary_timezone(connection) == zone.key:
        return False
    rebuild(connection, zone)
    return True


# --- the rebuild: one SQL statement per table -------------------------------------------------------


class local_day(FunctionElement[dt.date]):  # a SQL function, so named like one
    """``local_day(utc_timestamp, zone)``: the date in ``zone`` of a naive UTC timestamp."""

    type = Date()
    name = "local_day"
    inherit_cache = True


@compiles(local_day, "postgresql")
def _local_day_postgresql(element: local_day, compiler: SQLCompiler, **kw: Any) -> str:
    at, zone = (compiler.process(c, **kw) for c in element.clauses)
    return f"CAST(timezone({zone}, timezone('UTC', {at})) AS DATE)"


@compiles(local_day, "sqlite")
def _local_day_sqlite(element: local_day, compiler: SQLCompiler, **kw: Any) -> str:
    at, zone = (compiler.process(c, **kw) for c in element.clauses)
    return f"sw_local_day({at}, {zone})"


class us_between(FunctionElement[int]):  # a SQL function, so named like one
    """``us_between(end, start)``: whole microseconds from ``start`` to ``end``."""

    type = BigInteger()
    name = "us_between"
    inherit_cache = True


@compiles(us_between, "postgresql")
def _us_between_postgresql(element: us_between, compiler: SQLCompiler, **kw: Any) -> str:
    end, start = (compiler.process(c, **kw) for c in element.clauses)
    return f"CAST(round(EXTRACT(EPOCH FROM ({end} - {start})) * 1000000) AS BIGINT)"


@compiles(us_between, "sqlite")
def _us_between_sqlite(element: us_between, compiler: SQLCompiler, **kw: Any) -> str:
    end, start = (compiler.process(c, **kw) for c in element.clauses)
    return f"sw_us_between({end}, {start})"


def _sqlite_time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def _sqlite_local_day(at: str | None, zone: str) -> str | None:
    return None if at is None else _sqlite_time(at).astimezone(ZoneInfo(zone)).date().isoformat()


def _sqlite_us_between(end: str | None, start: str | None) -> int | None:
    if end is None or start is None:
        return None
    return microseconds(_sqlite_time(end) - _sqlite_time(start))


def _register_sqlite_functions(connection: Connection) -> None:
    raw = connection.connection.driver_connection
    raw.create_function("sw_local_day", 2, _sqlite_local_day, deterministic=True)  # type: ignore[union-attr]
    raw.create_function("sw_us_between", 2, _sqlite_us_between, deterministic=True)  # type: ignore[union-attr]


def _flag(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return case((condition, 1), else_=0)


def _event_rows(zone: str) -> list[Select[Any]]:
    """One SELECT per event (see the module docstring): the rows ``contributions`` makes, in SQL."""
    live = Case.status != VOIDED
    first_dispatch = func.coalesce(Case.first_dispatched_at, Case.dispatched_at)
    unit = func.coalesce(Case.unit_id, literal_column(str(NO_UNIT), Integer))

    def on(at: Any, **counts: Any) -> Select[Any]:
        return select(
            local_day(at, literal(zone)).label("day"),
            unit.label("unit_id"),
            Case.violation_code.label("violation_code"),
            Case.status.label("status"),
            *[counts.get(name, literal_column("0", Integer)).label(name) for name in DAILY_COUNTS],
        )

    one = literal_column("1", Integer)
    return [
        on(Case.created_at, created=one, recurrences=_flag(Case.recurrence_of_id.is_not(None))),
        on(Case.filed_at, filed=one, voided_after_filing=_flag(Case.voided_at.is_not(None))).where(
            Case.filed_at.is_not(None)
        ),
        on(
            first_dispatch,
            dispatches=one,
            dispatched=_flag(live),
            resolved_on_time=_flag(and_(live, Case.resolved_at <= Case.deadline_at)),
            reworked=_flag(and_(live, Case.rework_count > 0)),
            returned=_flag(and_(live, Case.return_count > 0)),
            dispatch_us=case((live, us_between(first_dispatch, Case.created_at)), else_=0),
        ).where(first_dispatch.is_not(None)),
        on(
            Case.deadline_at,
            deadlines=one,
            due=_flag(live),
            closed_on_time=_flag(and_(live, Case.closed_at <= Case.deadline_at)),
        ).where(Case.deadline_at.is_not(None)),
        on(Case.closed_at, closed=one, close_us=us_between(Case.closed_at, Case.created_at)).where(
            Case.closed_at.is_not(None)
        ),
    ]


def rebuild(connection: Connection, zone: ZoneInfo | None = None) -> ZoneInfo:
    """Fill the summary from the cases, in ``zone`` (default: the calendar's), replacing what it held;
    the state row is locked (FOR UPDATE) until the transaction ends. Returns the zone."""
    zone = zone or calendar_zone(connection)
    if connection.dialect.name == "sqlite":
        _register_sqlite_functions(connection)
    if connection.dialect.name == "postgresql":  # waits for every writer's shared hold (_writer_zone)
        connection.execute(select(func.pg_advisory_xact_lock(SUMMARY_LOCK_KEY)))
    state = connection.scalar(
        select(DailyStatsState.id).where(DailyStatsState.id == STATE_ID).with_for_update()
    )
    if state is None:
        connection.execute(_STATE.insert().values(id=STATE_ID, timezone=zone.key))
    connection.execute(delete(_MAIN))
    connection.execute(delete(_PLACES))
    rows = union_all(*_event_rows(zone.key)).subquery()
    connection.execute(
        _MAIN.insert().from_select(
            [*_MAIN_KEY, *DAILY_COUNTS],
            select(
                rows.c.day,
                rows.c.unit_id,
                rows.c.violation_code,
                rows.c.status,
                *[func.sum(rows.c[name]) for name in DAILY_COUNTS],
            ).group_by(rows.c.day, rows.c.unit_id, rows.c.violation_code, rows.c.status),
        )
    )
    day = local_day(Case.created_at, literal(zone.key))
    unit = func.coalesce(Case.unit_id, literal_column(str(NO_UNIT), Integer))
    connection.execute(
        _PLACES.insert().from_select(
            [*_PLACE_KEY, *DAILY_PLACE_COUNTS],
            select(
                day, unit, Case.place_id, func.count(), func.sum(_flag(Case.recurrence_of_id.is_not(None)))
            ).group_by(day, unit, Case.place_id),
        )
    )
    connection.execute(
        _STATE.update().where(DailyStatsState.id == STATE_ID).values(timezone=zone.key, rebuilt_at=utcnow())
    )
    return zone


# --- the flush listener: the one place that keeps the summary ------------------------------------------

_PENDING_DELETES = "daily_stats_deleted"


def _loaded(case: Case) -> dict[str, Any]:
    return {name: getattr(case, name) for name in TRACKED}


def _before(case: Case) -> dict[str, Any]:
    """The tracked values as last loaded or flushed (attribute history; TRACKED keep it, see below)."""
    values = {}
    attrs = inspect(case).attrs
    for name in TRACKED:
        history = attrs[name].history
        if history.deleted:
            values[name] = history.deleted[0]
        elif history.unchanged:
            values[name] = history.unchanged[0]
        else:  # not loaded and not changed: the stored value is still the one counted
            values[name] = getattr(case, name)
    return values


def _changed(case: Case) -> bool:
    attrs = inspect(case).attrs
    return any(attrs[name].history.has_changes() for name in TRACKED)


def _before_flush(session: Session, _flush: UOWTransaction, _instances: Iterable[Any] | None) -> None:
    """Deleted cases: their counted values, read while the row is still there (replacing what a failed
    flush may have left)."""
    session.info[_PENDING_DELETES] = [Facts.of(_before(o)) for o in session.deleted if isinstance(o, Case)]


def _after_flush(session: Session, _flush: UOWTransaction) -> None:
    changes: list[tuple[Facts | None, Facts | None]] = [
        (None, Facts.of(_loaded(o))) for o in session.new if isinstance(o, Case)
    ]
    changes += [
        (Facts.of(_before(o)), Facts.of(_loaded(o)))
        for o in session.dirty
        if isinstance(o, Case) and _changed(o)
    ]
    changes += [(facts, None) for facts in session.info.pop(_PENDING_DELETES, [])]
    touched = (*session.new, *session.dirty, *session.deleted)
    calendar = any(isinstance(o, CalendarSettings) for o in touched)
    if not changes and not calendar:
        return
    connection = session.connection()
    zone = _writer_zone(connection) if changes else None
    if zone is not None:
        delta: Delta = {}
        for before, after in changes:
            difference(before, after, zone, delta)
        apply(connection, delta)
    if calendar:
        follow_calendar(connection)


def _bulk_touched(state: ORMExecuteState) -> tuple[Any, list[dict[str, Any]]] | None:
    """For an ORM bulk UPDATE or DELETE of cases that can change counted columns: (its WHERE, or None
    for every case, and its per-row parameters for an UPDATE by primary key); None for anything else.
    SET x = x (the SQLite row lock of api.case_actions.lock_case) changes nothing."""
    statement = state.statement
    if not (state.is_update or state.is_delete) or not isinstance(statement, Update | Delete):
        return None
    if getattr(statement.table, "name", None) != Case.__tablename__:
        return None
    by_key = state.parameters if isinstance(state.parameters, list) else []
    if isinstance(statement, Update):
        touched = set().union(*(row.keys() for row in by_key))
        for column, value in (statement._values or {}).items():
            name = getattr(column, "key", column)
            if not (getattr(value, "table", None) is not None and getattr(value, "key", None) == name):
                touched.add(name)
        if not touched & set(TRACKED):
            return None
    return statement.whereclause, by_key


def _current_facts(connection: Connection, where: Any) -> dict[int, Facts]:
    """The counted values of the cases ``where`` selects, their rows locked (FOR UPDATE) until the end."""
    query = select(Case.id, *[getattr(Case, name) for name in TRACKED]).with_for_update()
    if where is not None:
        query = query.where(where)
    return {row.id: Facts.of(row._mapping) for row in connection.execute(query)}


def _bulk_changes(state: ORMExecuteState) -> Any:
    """A bulk UPDATE or DELETE of cases (``session.execute(update(Case)...)``) keeps the summary too: the
    affected cases' counted values are read (and locked) before it runs and again after, and the
    difference goes to the summary in the same transaction, as at flush."""
    touched = _bulk_touched(state)
    if touched is None:
        return None
    where, by_key = touched
    connection = state.session.connection()
    if by_key:
        where = Case.id.in_([row["id"] for row in by_key])
    before = _current_facts(connection, where)
    result = state.invoke_statement()
    after = _current_facts(connection, Case.id.in_(list(before))) if before and state.is_update else {}
    zone = _writer_zone(connection) if before else None
    if zone is not None:
        delta: Delta = {}
        for case_id, facts in before.items():
            difference(facts, after.get(case_id), zone, delta)
        apply(connection, delta)
    return result


def _keep_history(*_args: Any) -> None:
    """Set events of the tracked attributes with active history: the old value is loaded before it is
    replaced, so the flush knows what was counted even for an attribute that was expired."""


for _name in TRACKED:
    event.listen(getattr(Case, _name), "set", _keep_history, active_history=True)
event.listen(Session, "before_flush", _before_flush)
event.listen(Session, "after_flush", _after_flush)
event.listen(Session, "do_orm_execute", _bulk_changes)
