"""The delivery log (webhook / MQTT notifications to units) and each unit's notification channels."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path, Query
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, UrlConstraints, ValidationError

from api.deps import OperatorDep, SessionDep, SettingsDep
from api.errors import InvalidInput
from api.models import Delivery
from api.notifications import (
    Channels,
    DeliveryFilter,
    get_channels,
    list_deliveries,
    retry_delivery,
    set_channels,
)
from api.routers.responses import AUTHENTICATED, NOT_FOUND, errors

router = APIRouter(prefix="/api/v1", tags=["notifications"], responses=AUTHENTICATED)


class DeliveryPublic(BaseModel):
    id: int
    unit: str = Field(description="The unit's code; empty for an e-mail to a leader's address.")
    unit_id: int | None
    case_id: int | None
    channel: str = Field(description="webhook | mqtt | email")
    recipient: str | None = Field(None, description="E-mail: the address.")
    event: str
    status: str = Field(description="pending | delivered | failed")
    attempts: int = Field(description="Attempts made so far.")
    next_attempt_at: dt.datetime = Field(description="When a pending delivery is tried next.")
    last_error: str | None = Field(description="Why the last attempt failed (null once delivered).")
    created_at: dt.datetime
    delivered_at: dt.datetime | None
    payload: dict[str, Any]


class DeliveriesPublic(BaseModel):
    data: list[DeliveryPublic]
    count: int


def delivery_public(delivery: Delivery, unit_code: str) -> DeliveryPublic:
    return DeliveryPublic(
        id=delivery.id,
        unit=unit_code,
        unit_id=delivery.unit_id,
        case_id=delivery.case_id,
        channel=delivery.channel,
        recipient=delivery.recipient,
        event=delivery.event,
        status=delivery.status,
        attempts=delivery.attempts,
        next_attempt_at=delivery.next_attempt_at,
        last_error=delivery.last_error,
        created_at=delivery.created_at,
        delivered_at=delivery.delivered_at,
        payload=delivery.payload,
    )


class ChannelsUpdate(BaseModel):
    """Fields left out keep their value; null clears the webhook URL or secret."""

    model_config = ConfigDict(extra="forbid")

    webhook_url: Annotated[AnyHttpUrl, UrlConstraints(max_length=500)] | None = Field(
        None, description="http(s) URL that receives signed POSTs."
    )
    webhook_secret: str | None = Field(
        None, min_length=16, max_length=200, description="HMAC key for X-Streetwatch-Signature; write-only."
    )
    mqtt_enabled: bool | None = Field(None, description="Publish to the unit's MQTT topic.")


class ChannelsPublic(BaseModel):
    unit: str
    webhook_url: str | None
    webhook_secret_set: bool = Field(description="Whether a secret is stored (the secret is never returned).")
    mqtt_enabled: bool
    mqtt_topic: str
    mqtt_broker_configured: bool = Field(description="Whether this server has an MQTT broker (mqtt_host).")


def channels_public(channels: Channels) -> ChannelsPublic:
    return ChannelsPublic(
        unit=channels.unit_code,
        webhook_url=channels.webhook_url,
        webhook_secret_set=channels.webhook_secret_set,
        mqtt_enabled=channels.mqtt_enabled,
        mqtt_topic=channels.mqtt_topic,
        mqtt_broker_configured=channels.mqtt_broker_configured,
    )


@router.get(
    "/deliveries",
    response_model=DeliveriesPublic,
    responses=errors(404, 422),
    summary="Delivery log (admin, dispatcher)",
)
def deliveries_route(
    actor: OperatorDep,
    session: SessionDep,
    unit: Annotated[str | None, Query(max_length=64, description="Unit code.")] = None,
    status: Annotated[Literal["pending", "delivered", "failed"] | None, Query()] = None,
    case: Annotated[int | None, Query(ge=1, le=2**31 - 1, description="Case id.")] = None,
    channel: Annotated[Literal["webhook", "mqtt", "email"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> DeliveriesPublic:
    filters = DeliveryFilter(unit_code=unit, status=status, case_id=case, channel=channel)
    rows, count = list_deliveries(session, actor, filters, limit=limit, offset=offset)
    return DeliveriesPublic(data=[delivery_public(d, code) for d, code in rows], count=count)


@router.post(
    "/deliveries/{delivery_id}/retry",
    response_model=DeliveryPublic,
    responses=errors(404, 409, 422),
    summary="Retry a delivery now (admin)",
)
def retry_route(
    delivery_id: Annotated[int, Path(ge=1, le=2**31 - 1)], actor: OperatorDep, session: SessionDep
) -> DeliveryPublic:
    delivery, unit_code = retry_delivery(session, actor, delivery_id)
    return delivery_public(delivery, unit_code)


@router.get(
    "/units/{code}/channels",
    response_model=ChannelsPublic,
    responses=NOT_FOUND,
    summary="A unit's channels (admin)",
)
def get_channels_route(
    code: str, actor: OperatorDep, session: SessionDep, settings: SettingsDep
) -> ChannelsPublic:
    return channels_public(get_channels(session, actor, code, settings))


def parse_channels_update(body: Any) -> ChannelsUpdate:
    """Validate the body ourselves: FastAPI's 422 would echo each bad input, and one may be the secret."""
    try:
        return ChannelsUpdate.model_validate(body)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors())
        raise InvalidInput(f"invalid channel settings: {problems}") from None


@router.put(
    "/units/{code}/channels",
    response_model=ChannelsPublic,
    responses=errors(400, 404, 422),
    summary="Set a unit's channels (admin)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": ChannelsUpdate.model_json_schema()}},
        }
    },
)
def put_channels_route(
    code: str,
    body: Annotated[Any, Body(description="ChannelsUpdate")],
    actor: OperatorDep,
    session: SessionDep,
    settings: SettingsDep,
) -> ChannelsPublic:
    update = parse_channels_update(body)
    changes = update.model_dump(exclude_unset=True)
    if changes.get("mqtt_enabled", False) is None:
        del changes["mqtt_enabled"]  # null means "leave as is" for a flag
    if changes.get("webhook_url") is not None:
        changes["webhook_url"] = str(update.webhook_url)
    return channels_public(set_channels(session, actor, code, settings, changes))
