"""A camera's remembered false alarms in the console: listed with the crop that caused each, who voided it
and until when; a shift leader removes one with a CSRF-checked form (audited on the case), a viewer only
reads; the device's configuration loses it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from sqlalchemy import select

from api.models import AuditEvent
from tests.api.builders import image_bytes
from tests.console.conftest import PASSWORD, ConsoleWorld

TOKEN = re.compile(r'name="csrf-token" content="([0-9a-f]+)"')


@contextmanager
def _console_client(console: ConsoleWorld, username: str) -> Iterator[tuple[httpx.Client, str]]:
    """A browser-like client logged in through the login form, and its pages' CSRF token."""
    with httpx.Client(base_url=console.url, timeout=10) as client:
        token = TOKEN.search(client.get("/console/login").text)
        assert token is not None
        form = {"username": username, "password": PASSWORD, "csrf_token": token.group(1)}
        assert client.post("/console/login", data=form).status_code == 303
        page = TOKEN.search(client.get("/console/cameras").text)
        assert page is not None
        yield client, page.group(1)


def _voided_false_alarm(console: ConsoleWorld, camera: str) -> int:
    """A report from a camera only the daemon's YAML has, its crop, voided as a false positive by li."""
    case_id = console.report(camera=camera, violation_type="illegal_parking")
    with httpx.Client(base_url=console.url, timeout=10) as client:
        crop = client.post(
            f"/api/v1/cases/{case_id}/evidence",
            files={"file": ("crop.jpg", image_bytes(seed=3), "image/jpeg")},
            data={"kind": "crop"},
            headers={"X-Device-Key": console.device_key},
        )
        assert crop.status_code == 201, crop.text
        login = client.post("/api/v1/auth/login", json={"username": "li", "password": PASSWORD})
        bearer = {"Authorization": f"Bearer {login.json()['access_token']}"}
        void = client.post(
            f"/api/v1/cases/{case_id}/actions/void", json={"reason": "false_positive"}, headers=bearer
        )
        assert void.status_code == 200, void.text
    return case_id


def _device_suppressions(console: ConsoleWorld) -> list[int]:
    with httpx.Client(base_url=console.url, timeout=10) as client:
        config = client.get("/api/v1/devices/me/config", headers={"X-Device-Key": console.device_key})
        return [row["id"] for row in config.json()["suppressions"]]


def test_list_and_remove_a_remembered_false_alarm(console: ConsoleWorld) -> None:
    case_id = _voided_false_alarm(console, "cam-yaml")
    [suppression_id] = _device_suppressions(console)
    page_path = "/console/cameras/cam-yaml/suppressions"

    with _console_client(console, "guest") as (guest, guest_token):
        listed = guest.get(page_path)
        assert listed.status_code == 200
        assert f'id="suppression-{suppression_id}"' in listed.text
        assert 'class="crop-thumb" src="/api/v1/evidence/' in listed.text  # the crop that caused it
        assert "李值班" in listed.text and "user:li" not in listed.text  # who voided it, by name
        assert f'href="/console/cases/{case_id}"' in listed.text
        assert f'id="remove-{suppression_id}"' not in listed.text  # viewers read only
        refused = guest.post(f"{page_path}/{suppression_id}/delete", data={"csrf_token": guest_token})
        assert refused.status_code == 403
        assert guest.get("/console/cameras/cam-other/suppressions").status_code == 200  # empty list

    with _console_client(console, "li") as (leader, token):
        page = leader.get(page_path).text
        assert f'id="remove-{suppression_id}"' in page
        assert leader.post(f"{page_path}/{suppression_id}/delete", data={}).status_code == 403  # no CSRF
        assert _device_suppressions(console) == [suppression_id]
        removed = leader.post(
            f"{page_path}/{suppression_id}/delete", data={"csrf_token": token}, follow_redirects=True
        )
        assert removed.status_code == 200 and 'id="suppression-removed"' in removed.text
        assert f'id="suppression-{suppression_id}"' not in removed.text
        assert leader.get(f"/console/cases/{case_id}").status_code == 200  # the trail shows the removal

    assert _device_suppressions(console) == []
    with console.store.sessions() as session:
        actors = session.scalars(
            select(AuditEvent.actor).where(
                AuditEvent.case_id == case_id, AuditEvent.action == "suppression_removed"
            )
        ).all()
    assert actors == ["user:li"]
