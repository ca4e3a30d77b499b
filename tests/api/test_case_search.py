"""Case search (api.case_search and /api/v1/case-search): filters, free text, keyset pages, CSV, map points,
bulk dispatch and re-assign; on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from api import case_queries
from api.actors import SYSTEM
from api.case_search import CaseSearch, matching_ids
from api.models import AuditEvent, Case, CaseStatus, Place, Role
from api.routers.case_search import CameraPointOut, CasePointOut, MapOut
from tests.api.builders import World, auth, make_operators, make_world
from tests.api.conftest import Store

T0 = dt.datetime(2026, 5, 11, 1, 0, tzinfo=dt.UTC)  # 09:00 in Shanghai
URL = "/api/v1/case-search"


@dataclass
class City:
    world: World
    tokens: dict[str, str]
    other_place_id: int
    ids: dict[str, int]


def _case(place_id: int, code: str, hours: float, **fields: object) -> Case:
    at = T0 + dt.timedelta(hours=hours)
    case = Case(
        violation_code=code,
        place_id=place_id,
        camera_code=fields.pop("camera", "cam-1"),
        created_at=at,
        updated_at=at,
        first_seen_at=at - dt.timedelta(minutes=5),
        confirmed_at=at - dt.timedelta(seconds=30),
        sighting_count=1,
    )
    for name, value in fields.items():
        setattr(case, name, value)
    return case


@pytest.fixture
def city(store: Store) -> City:
    world = make_world(store.sessions)
    tokens = make_operators(
        store.sessions,
        [
            ("viewer", Role.VIEWER, None),
            ("dispatcher", Role.DISPATCHER, None),
            ("sanitation", Role.UNIT_HANDLER, world.sanitation_id),
        ],
    )
    with store.sessions.begin() as session:
        place = session.get(Place, world.place_id)
        assert place is not None
        place.lat, place.lon = 39.915, 116.397
        market = Place(key="grid-market", name="王府井夜市", lat=39.91, lon=116.41)
        session.add(market)
        session.flush()
        cases = {
            "pending": _case(world.place_id, "0505", 0),
            "filed": _case(world.place_id, "0102", 1, status="filed", description="垃圾桶满溢 near gate"),
            "dispatched": _case(
                market.id,
                "0501",
                2,
                status="dispatched",
                unit_id=world.sanitation_id,
                overdue=True,
                deadline_at=T0 + dt.timedelta(hours=4),
            ),
            "closed": _case(
                market.id,
                "0505",
                3,
                status="closed",
                unit_id=world.traffic_id,
                camera="cam-2",
                closed_at=T0 + dt.timedelta(hours=5),
            ),
            "recurrence": _case(market.id, "0505", 30, status="filed", source="open311", camera=None),
            "voided": _case(world.place_id, "0506", 31, status="voided", source="operator", camera=None),
        }
        session.add_all(cases.values())
        session.flush()
        cases["recurrence"].recurrence_of_id = cases["closed"].id
        session.add(
            AuditEvent(
                case_id=cases["voided"].id, actor="user:zhao", action="void", note="重复上报：见 12 号"
            )
        )
        ids = {name: case.id for name, case in cases.items()}
    return City(world, tokens, market.id, ids)


def _ids(client: TestClient, token: str, **params: object) -> list[int]:
    response = client.get(URL, params=params, headers=auth(token))
    assert response.status_code == 200, response.text
    return [row["id"] for row in response.json()["data"]]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, ["voided", "recurrence", "closed", "dispatched", "filed", "pending"]),
        ({"status": ["closed", "voided"]}, ["voided", "closed"]),
        ({"violation": "0505"}, ["recurrence", "closed", "pending"]),
        ({"place": "grid-market"}, ["recurrence", "closed", "dispatched"]),
        ({"camera": "cam-2"}, ["closed"]),
        ({"overdue": "true"}, ["dispatched"]),
        ({"recurrence": "true"}, ["recurrence"]),
        ({"min_place_cases": 2}, ["recurrence", "closed"]),
        ({"source": "open311"}, ["recurrence"]),
        ({"source": "operator"}, ["voided"]),
        ({"created_from": "2026-05-12"}, ["voided", "recurrence"]),  # local days (Asia/Shanghai)
        ({"created_to": "2026-05-11"}, ["closed", "dispatched", "filed", "pending"]),
        (
            {"first_seen_from": (T0 + dt.timedelta(hours=2)).isoformat(), "first_seen_to": "2026-05-11"},
            ["closed"],
        ),
        ({"q": "夜市"}, ["recurrence", "closed", "dispatched"]),  # place name
        ({"q": "满溢"}, ["filed"]),  # the case's description
        ({"q": "重复上报"}, ["voided"]),  # a note in its timeline
        ({"q": "100%"}, []),  # LIKE wildcards are literal
    ],
)
def test_filters(client: TestClient, city: City, params: dict[str, object], expected: list[str]) -> None:
    assert _ids(client, city.tokens["viewer"], **params) == [city.ids[name] for name in expected]


def test_free_text_finds_a_case_by_its_number(client: TestClient, city: City) -> None:
    wanted = city.ids["closed"]
    assert wanted in _ids(client, city.tokens["viewer"], q=f"#{wanted}")


@pytest.mark.parametrize("sort", ["created", "updated", "deadline", "first_seen"])
@pytest.mark.parametrize("direction", ["desc", "asc"])
def test_keyset_pages_never_repeat_or_skip(client: TestClient, city: City, sort: str, direction: str) -> None:
    everything = _ids(client, city.tokens["viewer"], sort=sort, direction=direction, limit=200)
    seen: list[int] = []
    after = None
    while True:
        params: dict[str, object] = {"sort": sort, "direction": direction, "limit": 2}
        if after:
            params["after"] = after
        body = client.get(URL, params=params, headers=auth(city.tokens["viewer"])).json()
        assert body["count"] == len(everything)
        seen += [row["id"] for row in body["data"]]
        after = body["next"]
        if after is None:
            break
    assert seen == everything
    assert sorted(seen) == sorted(city.ids.values())


def test_a_cursor_from_another_order_is_refused(client: TestClient, city: City) -> None:
    body = client.get(URL, params={"limit": 1}, headers=auth(city.tokens["viewer"])).json()
    response = client.get(
        URL,
        params={"limit": 1, "sort": "deadline", "after": body["next"]},
        headers=auth(city.tokens["viewer"]),
    )
    assert response.status_code == 422
    assert response.json()["field"] == "after"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"created_from": "yesterday"}, "created_from"),
        ({"created_from": "2026-05-11T00:00:00"}, "created_from"),  # no offset
        ({"created_from": "2026-05-12", "created_to": "2026-05-11"}, "search"),
        ({"after": "!!!"}, "after"),
    ],
)
def test_bad_input_is_422_naming_it(
    client: TestClient, city: City, params: dict[str, str], field: str
) -> None:
    response = client.get(URL, params=params, headers=auth(city.tokens["viewer"]))
    assert response.status_code == 422
    assert response.json()["field"] == field


def test_unit_handlers_see_only_their_units_cases(client: TestClient, city: City) -> None:
    token = city.tokens["sanitation"]
    assert _ids(client, token) == [city.ids["dispatched"]]
    assert _ids(client, token, q=str(city.ids["closed"])) == []
    rows = list(csv.reader(io.StringIO(client.get(f"{URL}/export.csv", headers=auth(token)).text)))
    assert [int(r[0]) for r in rows[1:]] == [city.ids["dispatched"]]
    points = client.get(f"{URL}/map", headers=auth(token)).json()
    assert [p["id"] for p in points["cases"]] == [city.ids["dispatched"]]


def test_csv_is_utf8_with_bom_local_times_and_the_filtered_cases(client: TestClient, city: City) -> None:
    response = client.get(
        f"{URL}/export.csv", params={"place": "grid-market"}, headers=auth(city.tokens["viewer"])
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    assert response.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert [int(r["案件编号 id"]) for r in rows] == [
        city.ids[n] for n in ("recurrence", "closed", "dispatched")
    ]
    closed = rows[1]
    assert closed["地点 place_name"] == "王府井夜市"
    assert closed["上报时间 created_at"] == "2026-05-11 12:00:00"  # 04:00 UTC in Asia/Shanghai
    assert closed["首次发现 first_seen_at"] == "2026-05-11 11:55:00"
    assert closed["确认时间 confirmed_at"] == "2026-05-11 11:59:30"
    assert closed["处置单位 unit_name"] == "交通大队"
    assert rows[0]["复发自 recurrence_of_id"] == str(city.ids["closed"])


def test_csv_neutralises_spreadsheet_formulas(client: TestClient, store: Store, city: City) -> None:
    with store.sessions.begin() as session:
        case = session.get(Case, city.ids["filed"])
        assert case is not None
        case.description = '=HYPERLINK("http://evil")'
    text = client.get(
        f"{URL}/export.csv", params={"status": "filed"}, headers=auth(city.tokens["viewer"])
    ).text
    assert "'=HYPERLINK" in text


def test_map_points_coloured_by_status_and_overdue(client: TestClient, store: Store, city: City) -> None:
    response = client.get(f"{URL}/map", headers=auth(city.tokens["viewer"]))
    # written as JSON directly (no response model validation at run time): it must still be a MapOut,
    # every field of it and nothing else
    assert MapOut.model_validate_json(response.content).total == 6
    assert set(response.json()) == set(MapOut.model_fields)
    assert all(set(point) == set(CasePointOut.model_fields) for point in response.json()["cases"])
    assert all(set(camera) == set(CameraPointOut.model_fields) for camera in response.json()["cameras"])
    body = response.json()
    points = {p["id"]: p for p in body["cases"]}
    assert set(points) == set(city.ids.values())
    dispatched = points[city.ids["dispatched"]]
    assert (dispatched["status"], dispatched["overdue"]) == ("dispatched", True)
    assert (dispatched["lat"], dispatched["lon"]) == (39.91, 116.41)
    assert body["total"] == 6 and body["unplaced"] == 0
    assert body["tile_url"] is None
    limited = client.get(
        f"{URL}/map", params={"limit": 2, "status": "filed"}, headers=auth(city.tokens["viewer"])
    )
    assert [p["id"] for p in limited.json()["cases"]] == [city.ids["recurrence"], city.ids["filed"]]


def test_bulk_dispatch_moves_each_case_and_reports_the_one_that_may_not(
    client: TestClient, store: Store, city: City
) -> None:
    ids = [city.ids["filed"], city.ids["pending"], city.ids["recurrence"]]
    response = client.post(
        f"{URL}/bulk",
        json={"action": "dispatch", "case_ids": ids, "unit_id": city.world.traffic_id},
        headers=auth(city.tokens["dispatcher"]),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["succeeded"], body["failed"]) == (2, 1)
    results = {r["case_id"]: r for r in body["results"]}
    assert results[city.ids["pending"]]["ok"] is False
    assert "pending_review" in results[city.ids["pending"]]["error"]
    assert results[city.ids["filed"]]["status"] == "dispatched"
    assert results[city.ids["filed"]]["unit"] == "交通大队"
    with store.sessions() as session:
        filed = session.get(Case, city.ids["filed"])
        assert filed is not None and filed.status == CaseStatus.DISPATCHED and filed.deadline_at is not None
        assert session.query(AuditEvent).filter_by(case_id=filed.id, action="dispatch").count() == 1
        pending = session.get(Case, city.ids["pending"])
        assert pending is not None and pending.status == CaseStatus.PENDING_REVIEW


def test_bulk_reassign_moves_a_dispatched_case_to_another_unit(
    client: TestClient, store: Store, city: City
) -> None:
    ids = [city.ids["dispatched"], city.ids["closed"]]
    body = client.post(
        f"{URL}/bulk",
        json={"action": "reassign", "case_ids": ids, "unit_id": city.world.traffic_id},
        headers=auth(city.tokens["dispatcher"]),
    ).json()
    assert [r["ok"] for r in body["results"]] == [True, False]
    with store.sessions() as session:
        case = session.get(Case, city.ids["dispatched"])
        assert case is not None and case.unit_id == city.world.traffic_id


@pytest.mark.parametrize("who", ["viewer", "sanitation"])
def test_bulk_is_for_dispatchers(client: TestClient, city: City, who: str) -> None:
    response = client.post(
        f"{URL}/bulk",
        json={"action": "dispatch", "case_ids": [city.ids["filed"]]},
        headers=auth(city.tokens[who]),
    )
    assert response.status_code == 403


def test_free_text_finds_a_case_by_its_address(client: TestClient, store: Store, city: City) -> None:
    with store.sessions.begin() as session:
        case = session.get(Case, city.ids["pending"])
        assert case is not None
        case.address = "东城区南河沿大街 17 号"
    assert _ids(client, city.tokens["viewer"], q="南河沿") == [city.ids["pending"]]


def test_counts_stop_at_the_cap_and_say_so(
    client: TestClient, city: City, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past COUNT_CAP the list says "N+" instead of counting every match (a million cases: every page)."""
    monkeypatch.setattr(case_queries, "COUNT_CAP", 4)
    viewer = auth(city.tokens["viewer"])
    body = client.get(URL, params={"limit": 2}, headers=viewer).json()
    assert (body["count"], body["count_capped"]) == (4, True)
    assert len(body["data"]) == 2 and body["next"]
    small = client.get(URL, params={"status": ["closed", "voided"]}, headers=viewer).json()
    assert (small["count"], small["count_capped"]) == (2, False)
    # The map: all six points fit under the limit, so their total is exact; past the limit it is capped.
    everything = client.get(f"{URL}/map", headers=viewer).json()
    assert (everything["total"], everything["total_capped"]) == (6, False)
    monkeypatch.setattr(case_queries, "COUNT_CAP", 1)
    cut = client.get(f"{URL}/map", params={"limit": 3}, headers=viewer).json()
    assert len(cut["cases"]) == 3 and (cut["total"], cut["total_capped"]) == (3, True)


def test_the_console_list_shows_a_capped_count(
    client: TestClient, store: Store, city: City, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(case_queries, "COUNT_CAP", 4)
    make_operators(store.sessions, [("zhou", Role.VIEWER, None)])
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/console/login").text)
    assert token
    form = {"username": "zhou", "password": "correct-horse", "csrf_token": token.group(1)}
    assert client.post("/console/login", data=form, follow_redirects=False).status_code == 303
    client.cookies.set("streetwatch_lang", "zh")
    assert (
        '<span class="badge" id="search-count" title="超过 4 件时不再逐件计数'
        in client.get("/console/search").text
    )
    assert ">共 4+ 件</span>" in client.get("/console/search").text
    assert ">共 2 件</span>" in client.get("/console/search?status=closed&status=voided").text
    # A city's thousands of places: a type-ahead text field (static/suggest.js), not a <select> of every one.
    html = client.get("/console/search?place=grid-market").text
    assert '<select name="place"' not in html
    assert 'id="filter-place" value="grid-market"' in html and 'data-suggest="place"' in html


def test_the_map_counts_cases_without_a_position(client: TestClient, store: Store, city: City) -> None:
    with store.sessions.begin() as session:
        nowhere = Place(key="grid-nowhere", name="无坐标网格")
        session.add(nowhere)
        session.flush()
        session.add(_case(nowhere.id, "0505", 40, status="filed"))
        placed = _case(nowhere.id, "0102", 41, status="filed", lat=39.9, lon=116.4)  # its own position
        session.add(placed)
        session.flush()
        placed_id = placed.id
    body = client.get(f"{URL}/map", headers=auth(city.tokens["viewer"])).json()
    assert (body["total"], body["unplaced"], body["unplaced_capped"]) == (7, 1, False)
    assert body["cases"][0]["id"] == placed_id


@pytest.mark.parametrize(
    ("q", "index"),
    [
        ("重复上报", "ix_audit_events_note_trgm"),
        ("满溢 near", "ix_cases_description_trgm"),
        ("南河沿大街", "ix_cases_address_trgm"),
    ],
)
def test_free_text_is_served_by_trigram_indexes_on_postgresql(
    store: Store, city: City, q: str, index: str
) -> None:
    """The query the search builds can use migration 0012's pg_trgm indexes (not a scan of every case)."""
    if store.backend != "postgresql":
        pytest.skip("pg_trgm indexes are PostgreSQL's; SQLite keeps LIKE")
    with store.sessions() as session:
        query = matching_ids(session, SYSTEM, CaseSearch(q=q))
        sql = str(query.compile(dialect=store.engine.dialect, compile_kwargs={"literal_binds": True}))
        session.execute(text("SET LOCAL enable_seqscan = off"))  # a six-case table would be scanned
        plan = "\n".join(session.scalars(text(f"EXPLAIN {sql}")))
    assert index in plan, plan
