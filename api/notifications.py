"""The delivery log and each unit's notification channels (webhook URL + secret, MQTT on/off).

Who may do what: admins and dispatchers read the delivery log; admins retry deliveries and set a
unit's channels. A unit's webhook secret is write-only: it is stored to sign webhooks and never read
back through the API (responses say only whether one is set).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.actors import Actor
from api.errors import Conflict, Forbidden, InvalidInput, NotFound
from api.models import Delivery, Role, Unit, utcnow
from api.notify import DELIVERED, FAILED, PENDING, mqtt_topic
from api.settings import Settings

LOG_READERS = (Role.ADMIN, Role.DISPATCHER)
DELIVERY_STATUSES = (PENDING, DELIVERED, FAILED)


def require_role(actor: Actor, roles: tuple[Role, ...], what: str) -> None:
    if actor.kind != "user" or actor.role not in roles:
        allowed = ", ".join(r.value for r in roles)
        who = f"role '{actor.role}'" if actor.kind == "user" else f"a {actor.kind}"
        raise Forbidden(f"{who} may not {what}; allowed roles: {allowed}")


def unit_by_code(session: Session, code: str) -> Unit:
    unit = session.scalar(select(Unit).where(Unit.code == code))
    if unit is None:
        raise NotFound(f"no unit with code '{code}'")
    return unit


@dataclass(frozen=True, kw_only=True)
class DeliveryFilter:
    unit_code: str | None = None
    status: str | None = None
    case_id: int | None = None
    channel: str | None = None


def list_deliveries(
    session: Session, actor: Actor, filters: DeliveryFilter, *, limit: int, offset: int
) -> tuple[list[tuple[Delivery, str]], int]:
    """A page of deliveries (newest first) with their unit codes, and the total matching the filters."""
    require_role(actor, LOG_READERS, "read the delivery log")
    if filters.status is not None and filters.status not in DELIVERY_STATUSES:
        raise InvalidInput(
            f"unknown delivery status '{filters.status}'; one of {', '.join(DELIVERY_STATUSES)}"
        )
    conditions = []
    if filters.unit_code is not None:
        conditions.append(Delivery.unit_id == unit_by_code(session, filters.unit_code).id)
    if filters.status is not None:
        conditions.append(Delivery.status == filters.status)
    if filters.case_id is not None:
        conditions.append(Delivery.case_id == filters.case_id)
    if filters.channel is not None:
        conditions.append(Delivery.channel == filters.channel)
    count = session.scalar(select(func.count()).select_from(Delivery).where(*conditions)) or 0
    rows = session.execute(
        select(Delivery, Unit.code)
        .outerjoin(Unit, Unit.id == Delivery.unit_id)  # e-mails to leaders have no unit
        .where(*conditions)
        .order_by(Delivery.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    return [(d, code or "") for d, code in rows], count


def retry_delivery(
    session: Session, actor: Actor, delivery_id: int, *, now: dt.datetime | None = None
) -> tuple[Delivery, str]:
    """Make a pending or failed delivery due now (with its unit code): the sender tries it on its next run.

    A failed delivery gets one more attempt (it is failed again if that attempt fails too, since it
    has used up its attempts); a pending one is moved forward from its backoff. Delivered ones are
    not resent (409).
    """
    require_role(actor, (Role.ADMIN,), "retry deliveries")
    delivery = session.get(Delivery, delivery_id, with_for_update=True)
    if delivery is None:
        raise NotFound(f"no delivery with id {delivery_id}")
    if delivery.status == DELIVERED:
        raise Conflict(
            f"delivery {delivery_id} was already delivered at {delivery.delivered_at}; "
            "only pending or failed deliveries can be retried",
            status=delivery.status,
        )
    delivery.status = PENDING
    delivery.next_attempt_at = now or utcnow()
    session.flush()
    unit = session.get(Unit, delivery.unit_id) if delivery.unit_id is not None else None
    return delivery, unit.code if unit else ""


@dataclass(frozen=True)
class Channels:
    unit_code: str
    webhook_url: str | None
    webhook_secret_set: bool
    mqtt_enabled: bool
    mqtt_topic: str
    mqtt_broker_configured: bool


def unit_channels(unit: Unit, settings: Settings) -> Channels:
    return Channels(
        unit_code=unit.code,
        webhook_url=unit.webhook_url,
        webhook_secret_set=bool(unit.webhook_secret),
        mqtt_enabled=unit.mqtt_enabled,
        mqtt_topic=mqtt_topic(settings, unit.code),
        mqtt_broker_configured=settings.mqtt_host is not None,
    )


CHANNEL_FIELDS = ("webhook_url", "webhook_secret", "mqtt_enabled")


def get_channels(session: Session, actor: Actor, code: str, settings: Settings) -> Channels:
    require_role(actor, (Role.ADMIN,), "read a unit's notification channels")
    return unit_channels(unit_by_code(session, code), settings)


def set_channels(
    session: Session, actor: Actor, code: str, settings: Settings, changes: Mapping[str, str | bool | None]
) -> Channels:
    """Change a unit's channels: ``changes`` holds only the fields to change (see CHANNEL_FIELDS).

    ``None`` clears the webhook URL or secret; ``mqtt_enabled`` must be a bool. A webhook needs a
    secret (webhooks are always signed): a unit left with a URL but no secret is refused.
    """
    require_role(actor, (Role.ADMIN,), "change a unit's notification channels")
    unknown = sorted(set(changes) - set(CHANNEL_FIELDS))
    if unknown:
        raise InvalidInput(
            f"unknown channel field(s) {', '.join(unknown)}; allowed: {', '.join(CHANNEL_FIELDS)}"
        )
    unit = unit_by_code(session, code)
    if "webhook_url" in changes:
        unit.webhook_url = _optional_str(changes["webhook_url"], "webhook_url")
    if "webhook_secret" in changes:
        unit.webhook_secret = _optional_str(changes["webhook_secret"], "webhook_secret")
    if "mqtt_enabled" in changes:
        flag = changes["mqtt_enabled"]
        if not isinstance(flag, bool):
            raise InvalidInput(f"mqtt_enabled must be true or false, got {flag!r}")
        unit.mqtt_enabled = flag
    if unit.webhook_url and not unit.webhook_secret:
        raise InvalidInput(
            f"unit '{code}' has a webhook_url but no webhook_secret: webhooks are signed, "
            "so give a webhook_secret (16 to 200 characters) with the URL"
        )
    session.flush()
    return unit_channels(unit, settings)


def _optional_str(value: str | bool | None, name: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise InvalidInput(f"{name} must be a string or null, got {value!r}")
