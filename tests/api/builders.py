"""Small builders for case-store tests: reference data, operators and devices straight in the database."""

from __future__ import annotations

from dataclasses import dataclass

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
                ViolationType(code=code, name=name, name_en=name_en, pipeline_type=pipeline_type, default_for_type=default)
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
            session, username=username or f"{role.value}-{unit_id or 0}", password="correct-horse", role=role,
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
