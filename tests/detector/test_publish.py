"""``streetwatch models publish`` against a real store (uvicorn on a free port): success and its errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from api.models import ModelVersion, Role
from streetwatch.cli import app
from tests.api.builders import make_operators
from tests.conftest import REPO
from tests.pipeline.live_store import LiveStore, free_port

runner = CliRunner()
DEMO = REPO / "models" / "streetwatch-demo-n.yaml"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LiveStore]:
    live = LiveStore(tmp_path)
    live.start()
    yield live
    live.close()


@pytest.fixture
def tokens(store: LiveStore) -> dict[str, str]:
    return make_operators(store.sessions, [("admin", Role.ADMIN, None), ("leader", Role.SHIFT_LEADER, None)])


def publish(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = runner.invoke(app, ["models", "publish", *args], env=env)
    return result.exit_code, result.output


def test_publish_uploads_the_resolved_card_with_provenance(
    tmp_path: Path, store: LiveStore, tokens: dict[str, str]
) -> None:
    figures = tmp_path / "eval.json"
    figures.write_text(json.dumps({"mAP50": 0.41}))
    code, output = publish(
        str(DEMO), "--store-url", store.url, "--username", "admin", "--dataset", "scenes seed 1",
        "--training-command", "python -m datasets.scenes.train_demo", "--evaluation", str(figures),
        env={"STREETWATCH_PASSWORD": "correct-horse"},
    )  # fmt: skip
    assert code == 0, output
    assert "published streetwatch-demo-n 0.1.0 as version 1" in output and "correct-horse" not in output
    with store.sessions() as session:
        version = session.get_one(ModelVersion, 1)
        assert version.sha256 == "4fe7a11c0ac7cc485a6ca0ada5940c773393efd8e4db4108d1612bb20e6f8594"
        assert version.card["classes"][-2:] == ["stall", "garbage"] and "path" not in version.card
        assert (version.dataset, version.evaluation) == ("scenes seed 1", {"mAP50": 0.41})
        assert version.uploaded_by == "user:admin"
    again = publish(str(DEMO), "--store-url", store.url, "--token", tokens["admin"])
    assert again[0] == 1 and "409" in again[1] and "already in the registry" in again[1]


def test_publish_errors_say_what_is_wrong(tmp_path: Path, store: LiveStore, tokens: dict[str, str]) -> None:
    url = ["--store-url", store.url]
    no_credential = publish(str(DEMO), *url, env={"STREETWATCH_TOKEN": ""})
    assert no_credential[0] == 2 and "--token" in no_credential[1]
    wrong = publish(str(DEMO), *url, "--token", "swt_nope")
    assert wrong[0] == 1 and "401" in wrong[1] and "log in again" in wrong[1]
    not_admin = publish(str(DEMO), *url, "--token", tokens["leader"])
    assert not_admin[0] == 1 and "only an admin" in not_admin[1]
    missing = publish(str(tmp_path / "nope.yaml"), *url, "--token", tokens["admin"])
    assert missing[0] == 2 and "nope.yaml" in missing[1]
    down = publish(str(DEMO), "--store-url", f"http://127.0.0.1:{free_port()}", "--token", tokens["admin"])
    assert down[0] == 1 and "cannot reach the store" in down[1]
    bad_figures = tmp_path / "eval.json"
    bad_figures.write_text("[1, 2]")
    figures = publish(str(DEMO), *url, "--token", tokens["admin"], "--evaluation", str(bad_figures))
    assert figures[0] == 1 and "JSON object" in figures[1]
