"""SQLAlchemy 2 models of the case store. Times are stored as UTC and returned timezone-aware."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Aware datetimes in, aware UTC datetimes out, on every backend (SQLite keeps no zone)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: streetwatch stores only timezone-aware times")
        return value.astimezone(dt.UTC).replace(tzinfo=None)

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        return None if value is None else value.replace(tzinfo=dt.UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dt.datetime: UTCDateTime(),
        dict[str, Any]: JSON,
        list[Any]: JSON,
    }


class Role(StrEnum):
    ADMIN = "admin"
    SHIFT_LEADER = "shift_leader"  # 值班长: files, verifies and closes
    DISPATCHER = "dispatcher"  # 派遣员: dispatches, approves extension / return / deferral
    UNIT_HANDLER = "unit_handler"  # 专业部门: handles its own unit's cases
    VIEWER = "viewer"


class CaseStatus(StrEnum):
    PENDING_REVIEW = "pending_review"  # 待审核
    FILED = "filed"  # 立案
    DISPATCHED = "dispatched"  # 派遣
    IN_PROGRESS = "in_progress"  # 处置中
    RESOLVED = "resolved"  # 处理反馈
    VERIFIED = "verified"  # 核查通过
    CLOSED = "closed"  # 结案
    VOIDED = "voided"  # 作废
    RETURNED = "returned"  # 回退 (awaiting re-dispatch)
    DEFERRED = "deferred"  # 挂账


OPEN_STATUSES = frozenset(
    {
        CaseStatus.PENDING_REVIEW,
        CaseStatus.FILED,
        CaseStatus.DISPATCHED,
        CaseStatus.IN_PROGRESS,
        CaseStatus.RESOLVED,
        CaseStatus.VERIFIED,
        CaseStatus.RETURNED,
        CaseStatus.DEFERRED,
    }
)
# Statuses in which the deadline clock runs against the assigned unit.
CLOCK_STATUSES = frozenset({CaseStatus.DISPATCHED, CaseStatus.IN_PROGRESS})


class Unit(Base):
    """A responsible unit: department, road chief, grid office... with a parent for escalation."""

    __tablename__ = "units"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32), default="department")
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    webhook_url: Mapped[str | None] = mapped_column(String(500))
    webhook_secret: Mapped[str | None] = mapped_column(String(200))
    mqtt_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Where pushed reports and deadline warnings are e-mailed (api.pushed_reports); null: no e-mail.
    email: Mapped[str | None] = mapped_column(String(254))

    parent: Mapped[Unit | None] = relationship(remote_side="Unit.id")


class Place(Base):
    """A responsibility key (grid code, road section, site) and the unit that owns it (属地)."""

    __tablename__ = "places"
    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    kind: Mapped[str] = mapped_column(String(32), default="grid")
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    owner_unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))

    owner_unit: Mapped[Unit | None] = relationship()


class ViolationType(Base):
    """A violation with its event code (GB/T 30428 family); cities renumber, so codes are data."""

    __tablename__ = "violation_types"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    name_en: Mapped[str] = mapped_column(String(100), default="")
    pipeline_type: Mapped[str] = mapped_column(String(64), index=True)
    default_for_type: Mapped[bool] = mapped_column(Boolean, default=False)
    auto_file: Mapped[bool] = mapped_column(Boolean, default=False)
    auto_file_min_confidence: Mapped[float] = mapped_column(Float, default=0.9)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Open311 services.json: a longer description and the group (major class, e.g. "05 街面秩序").
    description: Mapped[str] = mapped_column(Text, default="")
    category: Mapped[str] = mapped_column(String(64), default="")
    # Handling rules (api.workflow.check_handling): a resolve needs a handling photo taken since the last
    # dispatch; a resolve needs the unit to have started (开始处置) first.
    photo_required_to_resolve: Mapped[bool] = mapped_column(Boolean, default=False)
    start_required_before_resolve: Mapped[bool] = mapped_column(Boolean, default=False)


class RoutingRule(Base):
    """place x violation -> unit; null place or violation matches any. Lower priority wins."""

    __tablename__ = "routing_rules"
    id: Mapped[int] = mapped_column(primary_key=True)
    place_id: Mapped[int | None] = mapped_column(ForeignKey("places.id"))
    violation_code: Mapped[str | None] = mapped_column(String(16))
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"))
    priority: Mapped[int] = mapped_column(Integer, default=100)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class RoutingRuleHistory(Base):
    """Every change to a routing rule, with who made it: routing is auditable."""

    __tablename__ = "routing_rule_history"
    id: Mapped[int] = mapped_column(primary_key=True)
    rule_id: Mapped[int] = mapped_column(Integer, index=True)
    action: Mapped[str] = mapped_column(String(16))  # created | updated | deleted
    snapshot: Mapped[dict[str, Any]] = mapped_column(JSON)
    actor: Mapped[str] = mapped_column(String(100))
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class DeadlineRule(Base):
    """violation -> working hours allowed from dispatch."""

    __tablename__ = "deadline_rules"
    id: Mapped[int] = mapped_column(primary_key=True)
    violation_code: Mapped[str] = mapped_column(String(16), unique=True)
    working_hours: Mapped[float] = mapped_column(Float)


class CalendarSettings(Base):
    """The working calendar: time zone and working periods per weekday (one row)."""

    __tablename__ = "calendar_settings"
    id: Mapped[int] = mapped_column(primary_key=True)
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    # [["08:30", "12:00"], ["13:30", "17:30"]]
    periods: Mapped[list[Any]] = mapped_column(JSON)
    workdays: Mapped[list[Any]] = mapped_column(JSON)  # ISO weekdays 1..7
    default_working_hours: Mapped[float] = mapped_column(Float, default=24.0)


class CalendarDay(Base):
    """Exceptions to the weekly pattern: holidays and make-up working days (调休)."""

    __tablename__ = "calendar_days"
    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[dt.date] = mapped_column(unique=True)
    working: Mapped[bool] = mapped_column(Boolean)
    name: Mapped[str] = mapped_column(String(100), default="")


class Device(Base):
    """An edge box. Its API key is stored hashed; it can only submit cases and read its own config."""

    __tablename__ = "devices"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    key_id: Mapped[str] = mapped_column(String(32), unique=True)
    key_hash: Mapped[str] = mapped_column(String(128))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[dt.datetime | None]


class Camera(Base):
    __tablename__ = "cameras"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    device_id: Mapped[int | None] = mapped_column(ForeignKey("devices.id"))
    health: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    health_at: Mapped[dt.datetime | None]
    # The latest frame its daemon uploaded (<data_dir>/snapshots/<code>.jpg): what the zone editor shows.
    snapshot_sha256: Mapped[str | None] = mapped_column(String(64))
    snapshot_width: Mapped[int | None] = mapped_column(Integer)
    snapshot_height: Mapped[int | None] = mapped_column(Integer)
    snapshot_at: Mapped[dt.datetime | None]

    zones: Mapped[list[Zone]] = relationship(back_populates="camera", cascade="all, delete-orphan")


class Zone(Base):
    __tablename__ = "zones"
    __table_args__ = (UniqueConstraint("camera_id", "code"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    camera_id: Mapped[int] = mapped_column(ForeignKey("cameras.id"))
    code: Mapped[str] = mapped_column(String(64))
    place_id: Mapped[int] = mapped_column(ForeignKey("places.id"))
    polygon: Mapped[list[Any]] = mapped_column(JSON)  # normalised [[x, y], ...]
    # violation type -> {dwell_s, schedule, min_confidence} (contract.device_config.ZoneRule)
    rules: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    anchor: Mapped[str] = mapped_column(String(16), default="bottom_center", server_default="bottom_center")
    # {dwell_s, report_as, min_area} (contract.device_config.StaticChangeConfig); null: off.
    static_change: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # The operator's empty-pavement reference: a snapshot kept as <data_dir>/references/<sha256>.jpg.
    reference_sha256: Mapped[str | None] = mapped_column(String(64))
    reference_at: Mapped[dt.datetime | None]
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    camera: Mapped[Camera] = relationship(back_populates="zones")
    place: Mapped[Place] = relationship()


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(100), default="")
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(32))
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    unit: Mapped[Unit | None] = relationship()


class ApiToken(Base):
    """An operator's bearer token, stored as a sha256 hash; revocable and expiring."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)

    user: Mapped[User] = relationship()


class Case(Base):
    __tablename__ = "cases"
    __table_args__ = (
        Index("ix_cases_status_created", "status", "created_at"),
        Index("ix_cases_place_violation", "place_id", "violation_code"),
        Index("ix_cases_status_camera", "status", "camera_code"),  # review queue filters (0007)
        Index("ix_cases_status_place", "status", "place_id"),
        Index("ix_cases_recurrence_of_id", "recurrence_of_id"),  # the case page's recurrences (0007)
        # case search (api.case_search): keyset orders (sort column, id), a unit's list
        Index("ix_cases_created_id", "created_at", "id"),
        Index("ix_cases_updated_id", "updated_at", "id"),
        Index("ix_cases_deadline_id", "deadline_at", "id"),
        Index("ix_cases_first_seen_id", "first_seen_at", "id"),
        Index("ix_cases_unit_created_id", "unit_id", "created_at", "id"),
        Index("ix_cases_board", "status", "unit_id", "overdue", "deadline_at", "id"),  # unit board (0013)
        Index("ix_cases_status_created_id", "status", "created_at", "id"),  # board lists, newest first
        # one type's or one camera's pages and CSV (0014; free text's pg_trgm GIN indexes are there too)
        Index("ix_cases_violation_created_id", "violation_code", "created_at", "id"),
        Index("ix_cases_camera_created_id", "camera_code", "created_at", "id"),
        # the cases being handled in deadline order: the board's sections (0016)
        Index(
            "ix_cases_handling_deadline",
            "deadline_at",
            "id",
            "overdue",
            postgresql_where=text("status IN ('dispatched', 'in_progress')"),
            sqlite_where=text("status IN ('dispatched', 'in_progress')"),
        ),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[str] = mapped_column(String(32), default=CaseStatus.PENDING_REVIEW.value, index=True)
    violation_code: Mapped[str] = mapped_column(String(16), index=True)
    place_id: Mapped[int] = mapped_column(ForeignKey("places.id"), index=True)
    camera_code: Mapped[str | None] = mapped_column(String(64), index=True)
    zone_code: Mapped[str | None] = mapped_column(String(64))
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"), index=True)
    source: Mapped[str] = mapped_column(String(16), default="camera")  # camera | open311 | operator
    description: Mapped[str] = mapped_column(Text, default="")
    address: Mapped[str | None] = mapped_column(String(300))
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    reporter: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    confidence: Mapped[float | None] = mapped_column(Float)
    model_name: Mapped[str | None] = mapped_column(String(100))
    model_version: Mapped[str | None] = mapped_column(String(50))
    sighting_count: Mapped[int] = mapped_column(Integer, default=0)
    best_evidence_id: Mapped[int | None] = mapped_column(Integer)
    first_seen_at: Mapped[dt.datetime | None]
    last_seen_at: Mapped[dt.datetime | None]
    # When the violation was last seen, once every incident reported into the case has ended ("gone at");
    # NULL while it goes on.
    ended_at: Mapped[dt.datetime | None]
    confirmed_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    filed_at: Mapped[dt.datetime | None]
    dispatched_at: Mapped[dt.datetime | None]
    # The first dispatch: dispatched_at restarts with every re-dispatch and rework, so statistics (time to
    # dispatch, dispatched in a period) use this when set. The workflow sets it once (if still NULL).
    first_dispatched_at: Mapped[dt.datetime | None]
    deadline_at: Mapped[dt.datetime | None] = mapped_column(index=True)
    resolved_at: Mapped[dt.datetime | None]
    verified_at: Mapped[dt.datetime | None]
    closed_at: Mapped[dt.datetime | None]
    voided_at: Mapped[dt.datetime | None]
    void_reason: Mapped[str | None] = mapped_column(String(32))
    overdue: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    # The deadline the unit was last warned about (api.pushed_reports): a new deadline warns again.
    warned_deadline_at: Mapped[dt.datetime | None]
    escalated_to_unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    extension_requested_hours: Mapped[float | None] = mapped_column(Float)
    extension_reason: Mapped[str | None] = mapped_column(Text)
    rework_count: Mapped[int] = mapped_column(Integer, default=0)
    return_count: Mapped[int] = mapped_column(Integer, default=0)
    recurrence_of_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"))
    # "<place_id>|<violation_code>" while the case is open, NULL after: a unique constraint on it makes
    # "one open case per place and violation" hold under concurrent ingestion on every database.
    open_slot: Mapped[str | None] = mapped_column(String(100), unique=True)

    place: Mapped[Place] = relationship()
    unit: Mapped[Unit | None] = relationship(foreign_keys=[unit_id])
    sightings: Mapped[list[Sighting]] = relationship(back_populates="case", order_by="Sighting.id")
    evidence: Mapped[list[Evidence]] = relationship(back_populates="case", order_by="Evidence.id")
    events: Mapped[list[AuditEvent]] = relationship(back_populates="case", order_by="AuditEvent.id")


class Sighting(Base):
    """One report from a device; its idempotency key (minted by the pipeline) is unique."""

    __tablename__ = "sightings"
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)
    device_id: Mapped[int | None] = mapped_column(ForeignKey("devices.id"))
    camera_code: Mapped[str | None] = mapped_column(String(64))
    zone_code: Mapped[str | None] = mapped_column(String(64))
    confidence: Mapped[float | None] = mapped_column(Float)
    boxes: Mapped[list[Any]] = mapped_column(JSON, default=list)
    first_seen_at: Mapped[dt.datetime | None]
    confirmed_at: Mapped[dt.datetime | None]
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The incident's life after its report (contract.IncidentUpdate): frames seen in, last seen, ended.
    sighting_count: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    last_seen_at: Mapped[dt.datetime | None]
    ended_at: Mapped[dt.datetime | None]

    case: Mapped[Case] = relationship(back_populates="sightings")


class IncidentUpdateRecord(Base):
    """A later sighting or the end of a reported incident; its idempotency key (minted by the pipeline)
    is unique, so a retried update changes nothing."""

    __tablename__ = "incident_updates"
    id: Mapped[int] = mapped_column(primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)
    sighting_id: Mapped[int] = mapped_column(ForeignKey("sightings.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # sighting | ended
    at: Mapped[dt.datetime]
    sighting_count: Mapped[int] = mapped_column(Integer)
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Evidence(Base):
    """An image stored by sha256 under the data directory; served only to authorised users."""

    __tablename__ = "evidence"
    # The same bytes attach to a case once (a device retrying an upload gets the existing row back).
    __table_args__ = (UniqueConstraint("case_id", "sha256", name="uq_evidence_case_sha256"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(32))  # first_seen | confirmation | crop | after | handling
    content_type: Mapped[str] = mapped_column(String(32))
    size: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    score: Mapped[float | None] = mapped_column(Float)  # view quality from the device (contract.reports)
    # The device's detections in a ``frame`` picture (contract.reports.FRAME_BOXES, each a Box dumped as
    # JSON without its None fields), read by datasets.reviewed; NULL for every other kind.
    boxes: Mapped[list[Any] | None] = mapped_column(JSON)
    uploaded_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    case: Mapped[Case] = relationship(back_populates="evidence")


class AuditEvent(Base):
    """Every transition and action on a case: who, when, from, to, why."""

    __tablename__ = "audit_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(100))  # "user:alice", "device:box-1", "system"
    action: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(32))
    to_status: Mapped[str | None] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    case: Mapped[Case] = relationship(back_populates="events")


class AdminEvent(Base):
    """A change to reference data, cameras, devices or users (api.admin_audit): who, when, which object,
    its values before and after (secrets shown only as "[redacted]")."""

    __tablename__ = "admin_events"
    __table_args__ = (
        Index("ix_admin_events_area_id", "area", "id"),
        Index("ix_admin_events_actor_id", "actor", "id"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(100))  # "user:alice", "device:box-1", "cli", "system"
    area: Mapped[str] = mapped_column(String(32))  # units, places, violation_types, ... (api.admin_audit)
    action: Mapped[str] = mapped_column(String(16))  # created | updated | deleted
    object_key: Mapped[str] = mapped_column(String(200))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class Delivery(Base):
    """A notification (webhook, MQTT or e-mail) to a unit or, for e-mail, to a leader's address without a
    unit: a durable queue row and its delivery log."""

    __tablename__ = "deliveries"
    __table_args__ = (Index("ix_deliveries_pending", "status", "next_attempt_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"), index=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"))
    channel: Mapped[str] = mapped_column(String(16))  # webhook | mqtt | email
    recipient: Mapped[str | None] = mapped_column(String(254))  # e-mail: the address
    event: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[dt.datetime | None]


class AuthThrottle(Base):
    """Recent failed credentials of one account or one client address (see :mod:`api.throttle`).

    One row per (scope, subject), updated with an atomic upsert so that every worker process sees the
    same counts; rows whose ``reset_at`` has passed are stale and get pruned."""

    __tablename__ = "auth_throttle"
    __table_args__ = (UniqueConstraint("scope", "subject", name="uq_auth_throttle_scope_subject"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    scope: Mapped[str] = mapped_column(String(16))  # account | address | device
    subject: Mapped[str] = mapped_column(String(200))  # the username or the client address
    failures: Mapped[int] = mapped_column(Integer)
    locked_until: Mapped[dt.datetime | None]
    reset_at: Mapped[dt.datetime] = mapped_column(index=True)  # after this the count starts over


class AuthLockout(Base):
    """A failed credential that locked an account or an address (an admin's audit trail; never a password)."""

    __tablename__ = "auth_lockouts"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(index=True)
    scope: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(200))
    address: Mapped[str] = mapped_column(String(200))
    failures: Mapped[int] = mapped_column(Integer)
    locked_until: Mapped[dt.datetime]


class Suppression(Base):
    """A remembered false alarm (see :mod:`api.suppressions`): made when an operator voids a case as
    ``false_positive``; sent to the daemons until ``expires_at``, so the same detection at the same spot does
    not open the case again. Camera and zone are codes, not foreign keys: they may exist only in a daemon's
    YAML."""

    __tablename__ = "suppressions"
    __table_args__ = (Index("ix_suppressions_camera_expires", "camera_code", "expires_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    sighting_id: Mapped[int | None] = mapped_column(ForeignKey("sightings.id"))
    camera_code: Mapped[str] = mapped_column(String(64))
    zone_code: Mapped[str] = mapped_column(String(64))
    violation_type: Mapped[str] = mapped_column(String(64))  # pipeline type
    class_name: Mapped[str | None] = mapped_column(String(64))
    box: Mapped[list[Any]] = mapped_column(JSON)  # normalised [x1, y1, x2, y2]
    crop_sha256: Mapped[str | None] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(100))  # actor label
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]


class ReportRun(Base):
    """One pushed report sent (api.pushed_reports): a row per (kind, period, recipient), claimed with an
    INSERT that does nothing on conflict, so two workers never send the same report twice."""

    __tablename__ = "report_runs"
    __table_args__ = (UniqueConstraint("kind", "period", "recipient", name="uq_report_runs_key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # daily | weekly | monthly
    period: Mapped[str] = mapped_column(String(32))  # the local date, week start or month reported
    recipient: Mapped[str] = mapped_column(String(300))  # "unit:<code>" or "email:<address>"
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Blob(Base):
    """A stored image or clip when the blob store is the database (:mod:`api.storage.database`): the
    bytes are in :class:`BlobChunk` rows, so every API host serves what any of them stored."""

    __tablename__ = "blobs"
    key: Mapped[str] = mapped_column(String(300), primary_key=True)  # <kind>/<name>
    kind: Mapped[str] = mapped_column(String(32), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))  # of the stored bytes, set when the last chunk is in
    content_type: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class BlobChunk(Base):
    """One 256 KiB piece of a :class:`Blob`, read and written one row at a time."""

    __tablename__ = "blob_chunks"
    key: Mapped[str] = mapped_column(
        String(300), ForeignKey("blobs.key", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class InstallationSetting(Base):
    """Values every API host of one installation shares, e.g. the generated secret key
    (:mod:`api.secret_key`): the database is the one state they have in common."""

    __tablename__ = "installation_settings"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ModelVersion(Base):
    """A detector model in the registry (:mod:`api.model_registry`): its ONNX file, stored by sha256 under
    ``<data_dir>/models/``, and its card as uploaded (classes, input, thresholds, provenance, evaluation)."""

    __tablename__ = "model_versions"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    version: Mapped[str] = mapped_column(String(64))
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    size: Mapped[int] = mapped_column(Integer)
    card: Mapped[dict[str, Any]] = mapped_column(JSON)
    dataset: Mapped[str | None] = mapped_column(String(500))
    training_command: Mapped[str | None] = mapped_column(Text)
    evaluation: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    uploaded_by: Mapped[str] = mapped_column(String(100))  # actor label
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ModelAssignment(Base):
    """One assignment action, never changed afterwards: the table is the rollout's audit trail. What a
    device runs in a role is the latest row of that role for the device or for all devices (device_id
    None); ``version_id`` None ends the role (no shadow)."""

    __tablename__ = "model_assignments"
    __table_args__ = (Index("ix_model_assignments_role_device", "role", "device_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    role: Mapped[str] = mapped_column(String(16))  # live | shadow
    device_id: Mapped[int | None] = mapped_column(ForeignKey("devices.id"))
    shadow_share: Mapped[float] = mapped_column(Float, default=0.0)
    action: Mapped[str] = mapped_column(String(16))  # assign | rollback | promote | unassign
    assigned_by: Mapped[str] = mapped_column(String(100))
    assigned_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ModelComparison(Base):
    """A shadow comparison summary a daemon uploaded: per class, how often the shadow model's would-be
    incidents agreed with the live model's over a period, with crops of disagreements (evidence store)."""

    __tablename__ = "model_comparisons"
    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"), index=True)
    live_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    shadow_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"), index=True)
    period_start: Mapped[dt.datetime]
    period_end: Mapped[dt.datetime]
    classes: Mapped[dict[str, Any]] = mapped_column(JSON)  # class -> {agree, live_only, shadow_only}
    crops: Mapped[list[Any]] = mapped_column(JSON)  # [{class, side, sha256}]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ReviewLabel(Base):
    """A box an operator drew on one of a case's evidence images (an object the detector missed, or one
    whose box was wrong), with its violation code: a label for the training set (datasets.reviewed). The box
    is normalised to the image (0..1, x1 < x2, y1 < y2)."""

    __tablename__ = "review_labels"
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    evidence_id: Mapped[int] = mapped_column(ForeignKey("evidence.id"), index=True)
    sha256: Mapped[str] = mapped_column(String(64))
    x1: Mapped[float] = mapped_column(Float)
    y1: Mapped[float] = mapped_column(Float)
    x2: Mapped[float] = mapped_column(Float)
    y2: Mapped[float] = mapped_column(Float)
    event_code: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[str] = mapped_column(String(100))  # actor label, e.g. "user:li"
    created_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


# --- the statistics' daily summary (api.daily_stats keeps it; api.stats adds it up) ---

NO_UNIT = 0  # unit_id of the summary rows of cases without a unit (a key column cannot be NULL)

# The counts of one daily_stats row: events of cases whose current unit, violation type and status are
# the row's, falling on the row's local day (see api.daily_stats for which event counts where).
DAILY_COUNTS = (
    "created", "recurrences", "filed", "voided_after_filing", "dispatches", "dispatched", "resolved_on_time",
    "reworked", "returned", "dispatch_us", "deadlines", "due", "closed_on_time", "closed", "close_us",
)  # fmt: skip
DAILY_PLACE_COUNTS = ("created", "recurrences")


class DailyStats(Base):
    """Per local day (calendar time zone), unit, violation type and status: the report's counts."""

    __tablename__ = "daily_stats"
    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    unit_id: Mapped[int] = mapped_column(Integer, primary_key=True)  # NO_UNIT: none
    violation_code: Mapped[str] = mapped_column(String(16), primary_key=True)
    status: Mapped[str] = mapped_column(String(32), primary_key=True)
    created: Mapped[int] = mapped_column(Integer, default=0)
    recurrences: Mapped[int] = mapped_column(Integer, default=0)
    filed: Mapped[int] = mapped_column(Integer, default=0)
    voided_after_filing: Mapped[int] = mapped_column(Integer, default=0)
    dispatches: Mapped[int] = mapped_column(Integer, default=0)  # first dispatches, voided cases too
    dispatched: Mapped[int] = mapped_column(Integer, default=0)  # first dispatches of cases not voided
    resolved_on_time: Mapped[int] = mapped_column(Integer, default=0)
    reworked: Mapped[int] = mapped_column(Integer, default=0)
    returned: Mapped[int] = mapped_column(Integer, default=0)
    dispatch_us: Mapped[int] = mapped_column(BigInteger, default=0)  # created -> first dispatch, µs
    deadlines: Mapped[int] = mapped_column(Integer, default=0)  # deadlines, voided cases too
    due: Mapped[int] = mapped_column(Integer, default=0)  # deadlines of cases not voided
    closed_on_time: Mapped[int] = mapped_column(Integer, default=0)
    closed: Mapped[int] = mapped_column(Integer, default=0)
    close_us: Mapped[int] = mapped_column(BigInteger, default=0)  # created -> closed, µs


class DailyPlaceStats(Base):
    """Per local day, unit and place: cases created and, of those, recurrences."""

    __tablename__ = "daily_place_stats"
    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    unit_id: Mapped[int] = mapped_column(Integer, primary_key=True)  # NO_UNIT: none
    place_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created: Mapped[int] = mapped_column(Integer, default=0)
    recurrences: Mapped[int] = mapped_column(Integer, default=0)


class DailyStatsState(Base):
    """One row (id 1): the time zone whose local days the summary holds."""

    __tablename__ = "daily_stats_state"
    id: Mapped[int] = mapped_column(primary_key=True)
    timezone: Mapped[str] = mapped_column(String(64))
    rebuilt_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
