"""YAML import of reference data: valid files import, re-import changes nothing, an invalid file names
file, line and field and leaves the database exactly as it was; the CLI commands around it."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from api.actors import Actor
from api.config_import import DEFAULT_CONFIG, ConfigImportError, import_file
from api.models import (
    CalendarDay,
    CalendarSettings,
    Camera,
    DeadlineRule,
    Place,
    RoutingRule,
    RoutingRuleHistory,
    Unit,
    ViolationType,
    Zone,
)
from streetwatch.cli import app
from tests.api.builders import make_device_key
from tests.api.conftest import Store

EXAMPLE = DEFAULT_CONFIG.parent / "example-city.yaml"
ADMIN = Actor(kind="user", id=None, name="tester")
TABLES = (Unit, Place, ViolationType, DeadlineRule, CalendarSettings, CalendarDay, Camera, Zone, RoutingRule)


def counts(store: Store) -> dict[str, int]:
    with store.sessions() as session:
        tables = (*TABLES, RoutingRuleHistory)
        return {t.__tablename__: session.scalar(select(func.count()).select_from(t)) or 0 for t in tables}


def run_import(store: Store, path: Path) -> str:
    with store.sessions.begin() as session:
        return import_file(session, path, ADMIN).summary()


def write(tmp_path: Path, text: str, name: str = "city.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_default_and_example_import_then_reimport_changes_nothing(store: Store) -> None:
    assert "violation_types: 6 created" in run_import(store, DEFAULT_CONFIG)  # 5 national + 9901
    summary = run_import(store, EXAMPLE)
    assert "units: 6 created" in summary and "routing_rules: 4 created" in summary
    first = counts(store)
    assert first["violation_types"] == 6 and first["deadline_rules"] == 5 and first["zones"] == 3
    assert first["calendar_days"] == 39 and first["routing_rule_history"] == 4

    again = run_import(store, DEFAULT_CONFIG) + "; " + run_import(store, EXAMPLE)
    assert " created" not in again.replace(" 0 created", "") and " updated" not in again.replace(
        " 0 updated", ""
    )
    assert counts(store) == first  # no duplicates, no history for a no-op

    with store.sessions() as session:
        stall_defaults = session.scalars(
            select(ViolationType.code).where(
                ViolationType.pipeline_type == "street_stall", ViolationType.default_for_type.is_(True)
            )
        ).all()
        assert stall_defaults == ["0501"]
        calendar = session.get(CalendarSettings, 1)
        assert calendar is not None and calendar.timezone == "Asia/Shanghai"
        assert calendar.periods == [["08:30", "12:00"], ["13:30", "17:30"]] and calendar.workdays == [
            1,
            2,
            3,
            4,
            5,
        ]
        spring = session.scalars(select(CalendarDay).where(CalendarDay.name == "春节")).all()
        assert len(spring) == 9 and not any(day.working for day in spring)
        zone = session.scalar(select(Zone).where(Zone.code == "school-gate"))
        assert zone is not None and zone.rules["illegal_parking"]["schedule"][0]["start"] == "07:00"
        history = session.scalars(select(RoutingRuleHistory)).all()
        assert {h.actor for h in history} == {"user:tester"} and {h.action for h in history} == {"created"}
        assert all(h.snapshot["source"].endswith("example-city.yaml") for h in history)


def test_reimport_updates_only_what_changed_and_records_routing_changes(store: Store, tmp_path: Path) -> None:
    run_import(store, DEFAULT_CONFIG)
    base = """\
        units:
          - {code: district, name: 区局}
          - {code: roads, name: 道路所, parent: district}
        places:
          - {key: "g-1", owner: district}
        routing_rules:
          - {place: "g-1", violation: "0505", unit: roads, priority: 10}
        """
    run_import(store, write(tmp_path, base))
    changed = base.replace("道路所", "道路养护所").replace("priority: 10", "priority: 5")
    summary = run_import(store, write(tmp_path, changed, "changed.yaml"))
    assert "units: 0 created, 1 updated, 1 unchanged" in summary
    assert "routing_rules: 0 created, 1 updated, 0 unchanged" in summary
    with store.sessions() as session:
        assert session.scalar(select(Unit.name).where(Unit.code == "roads")) == "道路养护所"
        rules = session.scalars(select(RoutingRule)).all()
        assert [(r.priority, r.violation_code) for r in rules] == [(5, "0505")]
        history = session.scalars(select(RoutingRuleHistory).order_by(RoutingRuleHistory.id)).all()
        assert [h.action for h in history] == ["created", "updated"]
        assert history[1].snapshot["changes"] == {"priority": [10, 5]}


# A valid start, so that a late error proves that nothing before it was written either.
VALID_HEAD = """\
units:
  - {code: district, name: 区局}
places:
  - {key: "g-1", owner: district}
"""
INVALID = [
    # file body after VALID_HEAD, expected "line: field: message" fragment
    (
        "violation_types:\n  - {code: 0505, name: x, pipeline_type: illegal_parking}\n",
        ":6: violation_types.0.code:",
    ),
    ("routing_rules:\n  - {unit: nobody}\n", ":6: routing_rules.0.unit: unknown unit code 'nobody'"),
    (
        "cameras:\n  - code: c1\n    zones:\n"
        "      - {code: z, place: nowhere, polygon: [[0,0],[1,0],[1,1]]}\n",
        ":8: cameras.0.zones.0.place: unknown place key 'nowhere'",
    ),
    (
        "cameras:\n  - code: c1\n    zones:\n      - {code: z, place: g-1, polygon: [[0,0],[1,0]]}\n",
        ":8: cameras.0.zones.0.polygon: List should have at least 3 items",
    ),
    ("cameras:\n  - code: c1\n    device: box-404\n", ":7: cameras.0.device: unknown device 'box-404'"),
    ("calendar:\n  timezone: Moon/Base\n", ":6: calendar.timezone: Value error, unknown time zone"),
    ('calendar:\n  periods: [["08:30", 12:00]]\n', ":6: calendar.periods.0.1:"),
    (
        "calendar:\n  days:\n    - {start: 2026-02-23, end: 2026-02-15, working: false}\n",
        ":7: calendar.days.0:",
    ),
    (
        "violation_types:\n"
        '  - {code: "0901", name: a, pipeline_type: x_y}\n'
        '  - {code: "0901", name: b, pipeline_type: x_y}\n',
        ":7: violation_types.1.code: event code '0901' is listed twice (first at line 6)",
    ),
    (
        'deadlines:\n  - {violation: "0999", working_hours: 4}\n',
        ":6: deadlines.0.violation: unknown violation",
    ),
    ('places:\n  - {key: "g-2", colour: red}\n', ":6: places.0.colour: Extra inputs are not permitted"),
]


def test_invalid_files_name_file_line_field_and_change_nothing(store: Store, tmp_path: Path) -> None:
    run_import(store, DEFAULT_CONFIG)
    before = counts(store)
    for index, (tail, fragment) in enumerate(INVALID):
        path = tmp_path / f"bad-{index}.yaml"
        path.write_text(VALID_HEAD + tail, encoding="utf-8")
        with pytest.raises(ConfigImportError) as error:
            run_import(store, path)
        assert str(error.value).startswith(f"{path}:"), str(error.value)
        assert fragment in str(error.value), (index, str(error.value))
        assert counts(store) == before, index


def test_every_problem_is_reported_at_once(store: Store, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        places:
          - {key: "p1", owner: ghost}
          - {key: "p2", owner: phantom}
        routing_rules:
          - {violation: "0102", unit: ghost}
        units:
          - {code: a, name: A, parent: b}
          - {code: b, name: B, parent: a}
        """,
    )
    with pytest.raises(ConfigImportError) as error:
        run_import(store, path)
    lines = str(error.value).splitlines()
    assert f"{path}:2: places.0.owner: unknown unit code 'ghost'" in lines
    assert f"{path}:3: places.1.owner: unknown unit code 'phantom'" in lines
    assert f"{path}:5: routing_rules.0.violation: unknown violation event code '0102'" in lines
    assert any(line.startswith(f"{path}:7: units.0.parent:") and "loops" in line for line in lines)
    assert counts(store)["places"] == 0


def test_yaml_syntax_error_names_line_and_column(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path, "units:\n  - {code: a, name: [unclosed\n")
    with pytest.raises(ConfigImportError, match=rf"^{path}:3:1: invalid YAML"):
        run_import(store, path)


def _cli_env(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREETWATCH_DATA_DIR", str(store.settings.data_dir))
    if store.settings.database_url:
        monkeypatch.setenv("STREETWATCH_DATABASE_URL", store.settings.database_url)
    else:
        monkeypatch.delenv("STREETWATCH_DATABASE_URL", raising=False)


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, ["api", *args])


def test_cli_migrate_loads_defaults_once_and_import_config(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _cli_env(store, monkeypatch)
    result = invoke("migrate", "--no-defaults")
    assert result.exit_code == 0, result.output
    assert counts(store)["violation_types"] == 0
    result = invoke("migrate")
    assert result.exit_code == 0 and "loaded default reference data" in result.output, result.output
    assert counts(store)["violation_types"] == 6
    result = invoke("migrate")
    assert result.exit_code == 0 and "loaded default" not in result.output

    make_device_key(store.sessions, "box-1")
    city = EXAMPLE.read_text(encoding="utf-8").replace(
        "  - code: cam-wfj-003\n", "  - code: cam-wfj-003\n    device: box-1\n"
    )
    path = write(tmp_path, city, "city.yaml")
    result = invoke("import-config", str(path), "--dry-run")
    assert result.exit_code == 0 and "dry run" in result.output, result.output
    assert counts(store)["units"] == 0
    result = invoke("import-config", str(path))
    assert result.exit_code == 0 and "units: 6 created" in result.output, result.output
    with store.sessions() as session:
        camera = session.scalar(select(Camera).where(Camera.code == "cam-wfj-003"))
        assert camera is not None and camera.device_id is not None
        assert session.scalar(select(RoutingRuleHistory.actor).limit(1)).startswith("cli:")

    bad = write(tmp_path, "units:\n  - {code: x}\n", "bad.yaml")
    result = invoke("import-config", str(bad))
    assert result.exit_code == 2
    assert f"{bad}:2: units.0.name: Field required" in result.output
