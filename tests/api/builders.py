"""Small builders for case-store tests: reference data, operators and devices straight in the database."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from api.auth import create_device, create_user, issue_token
from api.models import Place, Role, Unit, ViolationType

DEFAULT_VIOLATIONS = [
    ("0102", "暴露垃圾", "exposed garbage", "exposed_garbage", True),
    ("0501", "无照经营游商", "unlicensed hawker", "street_stall", True),
    ("0504", "店外经营", "business outside the shop", "street_stall", False),
    ("0505", "机动车乱停放", "improperly parked motor vehicle", "illegal_parking", True),
    ("0506", "非机动车乱停放", "improperly parked non-motor vehicle", "illegal_parking", False),
    # the static-change detector's "something new is there": re-coded at review, never dispatched as is
    ("9901", "疑似占道/待分类", "unidentified object on the street (to classify)", "unknown_object", True),
]


@dataclass
class World:
    """A tiny city: a district office owning a grid, with a sanitation and a traffic department under it."""

    district_id: int
    sanitation_id: int
    traffic_id: int
    place_key: str
    place_id: int


def make_world(sessions: sessionmaker[Session]) -> World:
    with sessions.begin() as session:
        for code, name, name_en, pipeline_type, default in DEFAULT_VIOLATIONS:
            session.add(
                ViolationType(
                    code=code,
                    name=name,
                    name_en=name_en,
                    pipeline_type=pipeline_type,
                    default_for_type=default,
                )
            )
        district = Unit(code="district", name="东城区城管执法局", kind="street_office")
        session.add(district)
        session.flush()
        sanitation = Unit(code="sanitation", name="环卫所", parent_id=district.id)
        traffic = Unit(code="traffic", name="交通大队", parent_id=district.id)
        session.add_all([sanitation, traffic])
        place = Place(key="110101001001001", name="东华门大街 grid 1", owner_unit_id=district.id)
        session.add(place)
        session.flush()
        return World(district.id, sanitation.id, traffic.id, place.key, place.id)


def make_operator(
    sessions: sessionmaker[Session], role: Role, *, unit_id: int | None = None, username: str | None = None
) -> str:
    """A user with ``role``; returns a bearer token."""
    with sessions.begin() as session:
        user = create_user(
            session,
            username=username or f"{role.value}-{unit_id or 0}",
            password="correct-horse",
            role=role,
            unit_id=unit_id,
        )
        token, _ = issue_token(session, user, ttl_hours=1)
        return token


def make_device_key(sessions: sessionmaker[Session], name: str = "box-1") -> str:
    with sessions.begin() as session:
        return create_device(session, name).key


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def login(client: TestClient, username: str, password: str) -> str:
    response = client.post("/api/v1/auth/login", json={"username": username, "password": password})
    response.raise_for_status()
    token: str = response.json()["access_token"]
    return token


# --- workflow (H5) ---


def make_device(sessions: sessionmaker[Session], name: str) -> tuple[int, str]:
    """A device; returns its id and its API key."""
    with sessions.begin() as session:
        issued = create_device(session, name)
        return issued.device.id, issued.key


def make_pending_case(
    sessions: sessionmaker[Session],
    *,
    place_id: int,
    violation_code: str = "0102",
    camera: str = "cam-1",
    device_id: int | None = None,
) -> int:
    """A case awaiting review (as the ingest leaves it), with one sighting from ``device_id``."""
    import datetime as dt
    import uuid

    from api.models import Case, Sighting

    now = dt.datetime.now(dt.UTC)
    with sessions.begin() as session:
        case = Case(
            violation_code=violation_code,
            place_id=place_id,
            camera_code=camera,
            zone_code="z1",
            open_slot=f"{place_id}|{violation_code}",
            sighting_count=1,
            first_seen_at=now,
            last_seen_at=now,
            confirmed_at=now,
            confidence=0.8,
        )
        session.add(case)
        session.flush()
        session.add(
            Sighting(
                case_id=case.id,
                idempotency_key=uuid.uuid4().hex,
                device_id=device_id,
                camera_code=camera,
                zone_code="z1",
                confidence=0.8,
                first_seen_at=now,
                confirmed_at=now,
            )
        )
        return case.id


# --- Device case reports and evidence images (ingest, evidence and query tests) -------------------------

REPORT_T0 = dt.datetime(2026, 5, 11, 1, 0, tzinfo=dt.UTC)  # Monday 09:00 in Shanghai


def case_report(key: str, **overrides: Any) -> dict[str, Any]:
    """A CaseReport body as an edge box sends it: a car parked on the world's place for five minutes."""
    report: dict[str, Any] = {
        "idempotency_key": key,
        "camera": "cam-1",
        "zone": "z-gate",
        "place": "110101001001001",
        "violation_type": "illegal_parking",
        "first_seen_at": REPORT_T0.isoformat(),
        "confirmed_at": (REPORT_T0 + dt.timedelta(minutes=5)).isoformat(),
        "confidence": 0.8,
        "boxes": [{"xyxy": [10, 20, 110, 220], "confidence": 0.8, "class_name": "car", "track_id": 7}],
        "model_name": "yolo11n-coco",
        "model_version": "1",
    }
    report.update(overrides)
    return report


def device_auth(key: str) -> dict[str, str]:
    return {"X-Device-Key": key}


def post_report(client: TestClient, device_key: str, key: str, **overrides: Any) -> dict[str, Any]:
    """Submit a report; returns the IngestResult body (raises on an error status)."""
    body = case_report(key, **overrides)
    response = client.post("/api/v1/cases", json=body, headers=device_auth(device_key))
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


def image_bytes(ext: str = ".jpg", width: int = 64, height: int = 48, seed: int = 0) -> bytes:
    """A real JPEG or PNG encoded by OpenCV: noise, so that different seeds give different bytes."""
    pixels = np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    ok, encoded = cv2.imencode(ext, pixels)
    if not ok:
        raise RuntimeError(f"OpenCV could not encode {ext}")
    return bytes(encoded.tobytes())


# --- workflow (H5): many operators without paying argon2 for each ---

_SHARED_PASSWORD_HASH: list[str] = []


def make_operators(
    sessions: sessionmaker[Session], specs: list[tuple[str, Role, int | None]]
) -> dict[str, str]:
    """Operators ``(username, role, unit_id)`` with password "correct-horse" (one argon2 hash, computed once
    per test run and shared); returns username -> bearer token."""
    from api.auth import hash_password
    from api.models import User

    if not _SHARED_PASSWORD_HASH:
        _SHARED_PASSWORD_HASH.append(hash_password("correct-horse"))
    tokens: dict[str, str] = {}
    with sessions.begin() as session:
        for username, role, unit_id in specs:
            user = User(username=username, display_name=username, role=role.value, unit_id=unit_id)
            user.password_hash = _SHARED_PASSWORD_HASH[0]
            session.add(user)
            session.flush()
            tokens[username], _ = issue_token(session, user, ttl_hours=1)
    return tokens
