"""Notifications to units: queued as Delivery rows in the case's transaction, sent by a periodic job.

Queueing in the same transaction as the case change means a notification is never lost and never
sent for a change that was rolled back (the outbox pattern).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from api.models import Case, Delivery, Unit, utcnow
from api.settings import Settings


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


def enqueue_case_event(session: Session, case: Case, unit: Unit, event: str, settings: Settings) -> list[Delivery]:
    """Queue ``event`` about ``case`` for ``unit`` on each channel the unit has."""
    payload = case_event_payload(case, event, unit)
    deliveries = []
    if unit.webhook_url:
        deliveries.append(Delivery(unit_id=unit.id, case_id=case.id, channel="webhook", event=event, payload=payload))
    if unit.mqtt_enabled and settings.mqtt_host:
        deliveries.append(Delivery(unit_id=unit.id, case_id=case.id, channel="mqtt", event=event, payload=payload))
    session.add_all(deliveries)
    return deliveries


def deliver_pending(sessions: sessionmaker[Session], settings: Settings) -> int:
    """Send due deliveries; being completed in the notifications work."""
    return 0
