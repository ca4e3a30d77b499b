"""The case store's ``/metrics``: refused to anonymous callers, real figures for admins and the token."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

from api.app import create_app
from api.jobs import Job, JobRunner
from api.metrics import StoreMetrics
from api.models import Case, Role, Unit, utcnow
from api.settings import Settings
from tests.api.builders import auth, case_report, device_auth, make_device_key, make_operator, make_world
from tests.api.conftest import Store
from tests.api.test_notify import free_port

TOKEN = "metrics-token-0123456789abcdef"


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of the sample ``name`` with exactly ``labels`` in an exposition, or None."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return float(s.value)
    return None


def scrape(client: TestClient, token: str = TOKEN) -> str:
    response = client.get("/metrics", headers=auth(token))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    text: str = response.text
    return text


@pytest.fixture
def app_client(store: Store) -> Iterator[TestClient]:
    settings = store.settings.model_copy(update={"metrics_token": SecretStr(TOKEN)})
    with TestClient(create_app(settings, engine=store.engine)) as test_client:
        yield test_client


def test_anonymous_and_wrong_credentials_are_refused(app_client: TestClient, store: Store) -> None:
    assert app_client.get("/metrics").status_code == 401
    assert app_client.get("/metrics", headers=auth("not-the-token")).status_code == 401
    viewer = make_operator(store.sessions, Role.VIEWER)
    refused = app_client.get("/metrics", headers=auth(viewer))
    assert refused.status_code == 403 and "admins" in refused.json()["detail"]
    device = make_device_key(store.sessions)
    assert app_client.get("/metrics", headers=auth(device)).status_code == 403  # devices: cases only
    assert "streetwatch_store" not in refused.text


def test_an_admin_reads_request_counts_by_route_template(app_client: TestClient, store: Store) -> None:
    admin = make_operator(store.sessions, Role.ADMIN)
    for _ in range(3):
        assert app_client.get("/healthz").status_code == 200
    assert app_client.get("/api/v1/cases/987654", headers=auth(admin)).status_code == 404
    assert app_client.get("/no/such/path/424242").status_code == 404
    text = scrape(app_client, admin)
    labels = {"method": "GET", "route": "/healthz", "status": "200"}
    assert sample(text, "streetwatch_store_http_requests_total", **labels) == 3
    case_route = {"method": "GET", "route": "/api/v1/cases/{case_id}", "status": "404"}
    assert sample(text, "streetwatch_store_http_requests_total", **case_route) == 1
    unmatched = {"method": "GET", "route": "unmatched", "status": "404"}
    assert sample(text, "streetwatch_store_http_requests_total", **unmatched) == 1
    latency = sample(text, "streetwatch_store_http_request_seconds_count", method="GET", route="/healthz")
    assert latency == 3
    assert "987654" not in text and "424242" not in text  # no ids or raw paths in labels


def test_ingest_outcomes_and_open_cases_by_unit(app_client: TestClient, store: Store) -> None:
    world = make_world(store.sessions)
    device = make_device_key(store.sessions)

    def submit(report: dict[str, Any]) -> int:
        response = app_client.post("/api/v1/cases", json=report, headers=device_auth(device))
        return int(response.status_code)

    assert submit(case_report("incident-1")) == 201  # created
    assert submit(case_report("incident-1")) == 200  # the same key again: duplicate
    assert submit(case_report("incident-2")) == 200  # same place and violation: merged
    assert submit(case_report("incident-3", violation_type="flying_saucer")) == 422  # rejected
    with store.sessions.begin() as s:  # an overdue case of the sanitation unit
        now = utcnow()
        s.add(
            Case(
                violation_code="0102", place_id=world.place_id, unit_id=world.sanitation_id,
                status="dispatched", created_at=now, overdue=True, deadline_at=now - dt.timedelta(hours=1),
            )
        )  # fmt: skip
    text = scrape(app_client)
    ingests = "streetwatch_store_ingests_total"
    assert sample(text, ingests, outcome="created", reason="") == 1
    assert sample(text, ingests, outcome="duplicate", reason="") == 1
    assert sample(text, ingests, outcome="merged", reason="") == 1
    assert sample(text, ingests, outcome="rejected", reason="invalid_input") == 1
    assert sample(text, "streetwatch_store_open_cases", unit="none") == 1  # pending review
    assert sample(text, "streetwatch_store_open_cases", unit="sanitation") == 1
    assert sample(text, "streetwatch_store_overdue_cases", unit="sanitation") == 1
    assert sample(text, "streetwatch_store_overdue_cases", unit="none") == 0
    assert sample(text, "streetwatch_store_database_up") == 1


def test_each_app_keeps_its_own_figures(store: Store) -> None:
    settings = store.settings.model_copy(update={"metrics_token": SecretStr(TOKEN)})
    with (
        TestClient(create_app(settings, engine=store.engine)) as first,
        TestClient(create_app(settings, engine=store.engine)) as second,
    ):
        first.get("/healthz")
        labels = {"method": "GET", "route": "/healthz", "status": "200"}
        assert sample(scrape(first), "streetwatch_store_http_requests_total", **labels) == 1
        assert sample(scrape(second), "streetwatch_store_http_requests_total", **labels) is None


def test_the_token_can_come_from_a_file(store: Store, tmp_path: Path) -> None:
    token_file = tmp_path / "metrics.token"
    token_file.write_text(f"{TOKEN}\n", encoding="utf-8")
    settings = store.settings.model_copy(update={"metrics_token_file": token_file})
    with TestClient(create_app(settings, engine=store.engine)) as client:
        assert "streetwatch_store_database_up" in scrape(client)


def test_an_unreadable_token_file_is_named_at_start(store: Store, tmp_path: Path) -> None:
    settings = store.settings.model_copy(update={"metrics_token_file": tmp_path / "absent.token"})
    with pytest.raises(ValueError, match=r"STREETWATCH_METRICS_TOKEN_FILE .*absent\.token: cannot be read"):
        create_app(settings, engine=store.engine)


def test_background_jobs_and_failed_deliveries_are_counted(store: Store) -> None:
    world = make_world(store.sessions)
    with store.sessions.begin() as s:
        unit = s.get_one(Unit, world.sanitation_id)
        unit.webhook_url = f"http://127.0.0.1:{free_port()}/down"  # nobody listens: the attempt fails
        unit.webhook_secret = "s3cret-webhook-key-0123456789"
        now = utcnow()
        s.add(  # past its deadline: the overdue job marks it and notifies the unit
            Case(
                violation_code="0102", place_id=world.place_id, unit_id=world.sanitation_id,
                status="dispatched", created_at=now, dispatched_at=now,
                deadline_at=now - dt.timedelta(minutes=5),
            )
        )  # fmt: skip
    settings: Settings = store.settings.model_copy(
        update={
            "metrics_token": SecretStr(TOKEN),
            "run_jobs": True,
            "overdue_check_interval_s": 0.05,
            "delivery_interval_s": 0.05,
            "push_reports": False,  # its daily digest to the same unit would be a second failed delivery
        }
    )
    with TestClient(create_app(settings, engine=store.engine)) as client:
        deadline = time.monotonic() + 20
        retrying: float | None = None
        while time.monotonic() < deadline:
            text = scrape(client)
            retrying = sample(
                text, "streetwatch_store_notification_deliveries_total", channel="webhook", outcome="retrying"
            )
            if retrying:
                break
            time.sleep(0.1)
    assert retrying == 1, text
    assert (sample(text, "streetwatch_store_job_runs_total", job="overdue", outcome="ok") or 0) >= 1
    assert (sample(text, "streetwatch_store_job_runs_total", job="deliveries", outcome="ok") or 0) >= 1
    assert sample(text, "streetwatch_store_overdue_cases", unit="sanitation") == 1


def test_a_failing_job_counts_as_an_error_and_a_dead_database_as_down(tmp_path: Path) -> None:
    empty = sessionmaker(create_engine(f"sqlite:///{tmp_path / 'empty.sqlite'}"))  # no tables
    metrics = StoreMetrics(empty)

    def broken(_sessions: Any, _settings: Settings) -> int:
        raise RuntimeError("the job's bug")

    async def run_briefly() -> None:
        job = Job("broken", 0.01, broken)
        runner = JobRunner([job], empty, Settings(_env_file=None), observe=metrics.job_run)
        runner.start()
        await asyncio.sleep(0.2)
        await runner.stop()

    asyncio.run(run_briefly())
    text = metrics.exposition().decode()
    assert (sample(text, "streetwatch_store_job_runs_total", job="broken", outcome="error") or 0) >= 1
    assert sample(text, "streetwatch_store_job_runs_total", job="broken", outcome="ok") is None
    assert sample(text, "streetwatch_store_database_up") == 0
