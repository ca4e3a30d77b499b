"""A device request's authentication leaves no transaction open for the route's wait for a worker thread:
no pooled connection and no lock on the device's row are held across it (at fleet scale they were, and
the store stalled: benchmarks/README.md "Fleet")."""

from __future__ import annotations

from sqlalchemy import select, text
from starlette.requests import Request

from api.deps import get_actor
from api.models import Device
from tests.api.builders import make_device
from tests.api.conftest import Store


def request() -> Request:
    return Request({"type": "http", "method": "GET", "path": "/api/v1/devices/me/config", "headers": []})


def test_device_authentication_commits_before_the_route_runs(store: Store) -> None:
    device_id, key = make_device(store.sessions, "box-1")

    with store.sessions() as session:
        actor = get_actor(request(), session, None, key)

        assert actor.is_device and actor.id == device_id
        assert not session.in_transaction()  # the connection went back; the touch is committed
        with store.sessions() as other:  # a concurrent request of the same box: its row is not locked
            if store.backend == "postgresql":
                other.execute(text("SET LOCAL lock_timeout = '2s'"))
            touched = other.scalar(
                select(Device.last_seen_at).where(Device.id == device_id).with_for_update()
            )
            assert touched is not None  # committed by the first request's authentication
