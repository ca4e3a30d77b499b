"""The OpenAPI document tells the truth: error answers are documented with the bodies the app sends,
every schema is valid JSON Schema 2020-12, and the calendar's schema accepts what the server accepts."""

from __future__ import annotations

from typing import Any

import jsonschema_rs
import pytest
from fastapi.testclient import TestClient

from api.models import Role
from tests.api.builders import auth, make_device_key, make_operator
from tests.api.conftest import Store

METHODS = ("get", "post", "put", "patch", "delete")
ERROR_REF = "#/components/schemas/ErrorBody"
VALIDATION_ERROR_REF = "#/components/schemas/ValidationErrorBody"


@pytest.fixture
def spec(client: TestClient) -> dict[str, Any]:
    document: dict[str, Any] = client.get("/openapi.json").json()
    return document


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(METHOD, path, operation) of the case store's own API (Open311 has its own error shape)."""
    return [
        (method.upper(), path, item[method])
        for path, item in spec["paths"].items()
        for method in METHODS
        if method in item and not path.startswith("/open311/")
    ]


def error_schema(operation: dict[str, Any], status: int) -> str | None:
    response = operation["responses"].get(str(status), {})
    ref: str | None = response.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref")
    return ref


def validator(spec: dict[str, Any], name: str) -> jsonschema_rs.Draft202012Validator:
    return jsonschema_rs.Draft202012Validator(
        {"$ref": f"#/components/schemas/{name}", "components": spec["components"]}
    )


def test_every_input_documents_the_422_body_the_app_sends(spec: dict[str, Any]) -> None:
    assert "HTTPValidationError" not in spec["components"]["schemas"]  # FastAPI's shape, not ours
    with_input = [
        (method, path, operation)
        for method, path, operation in operations(spec)
        if operation.get("parameters") or operation.get("requestBody")
    ]
    assert len(with_input) > 40
    wrong = [f"{m} {p}" for m, p, op in with_input if error_schema(op, 422) != VALIDATION_ERROR_REF]
    assert not wrong, wrong


def test_every_authenticated_operation_documents_401_and_403(spec: dict[str, Any]) -> None:
    secured = [(m, p, op) for m, p, op in operations(spec) if op.get("security")]
    assert len(secured) > 40
    wrong = [
        f"{m} {p}"
        for m, p, op in secured
        if error_schema(op, 401) != ERROR_REF or error_schema(op, 403) != ERROR_REF
    ]
    assert not wrong, wrong
    public = {p for m, p, op in operations(spec) if not op.get("security")}
    assert {"/healthz", "/api/v1/ping", "/api/v1/auth/login"} <= public


def test_every_component_is_valid_json_schema_2020_12(spec: dict[str, Any]) -> None:
    assert spec["openapi"].startswith("3.1")
    invalid = [
        name
        for name, schema in spec["components"]["schemas"].items()
        if not jsonschema_rs.meta.is_valid(schema)
    ]
    assert not invalid, invalid


def response_components(spec: dict[str, Any]) -> set[str]:
    """Names of the component schemas that some response body uses, directly or through another."""
    pending = [op["responses"] for _, _, op in operations(spec)]
    names: set[str] = set()
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] not in names:
                names.add(ref.rsplit("/", 1)[1])
                pending.append(spec["components"]["schemas"][ref.rsplit("/", 1)[1]])
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return names


def test_no_response_schema_uses_prefix_items(spec: dict[str, Any]) -> None:
    # Valid 3.1, but schemathesis rejects it as an invalid Schema Object when it validates a response.
    names = response_components(spec)
    assert {"CalendarPublic", "ErrorBody", "ValidationErrorBody"} <= names
    assert not [name for name in names if "prefixItems" in str(spec["components"]["schemas"][name])]


@pytest.mark.parametrize(
    ("periods", "accepted"),
    [
        ([["08:30", "12:00"], ["13:30", "17:30"]], True),
        ([["8:30", "12:00"]], False),  # HH:MM, two digits
        ([["08:30", "24:00"]], False),
        ([["08:30", "12:00", "13:00"]], False),  # a period is a pair
        ([["08:30"]], False),
    ],
)
def test_calendar_schema_accepts_what_the_server_accepts(
    client: TestClient, store: Store, spec: dict[str, Any], periods: list[list[str]], accepted: bool
) -> None:
    body = {"periods": periods}
    assert validator(spec, "CalendarIn").is_valid(body) is accepted
    admin = auth(make_operator(store.sessions, Role.ADMIN))
    response = client.put("/api/v1/calendar", json=body, headers=admin)
    assert response.status_code == (200 if accepted else 422), response.text
    if accepted:
        assert validator(spec, "CalendarPublic").is_valid(response.json())


def test_error_bodies_match_their_documented_schemas(
    client: TestClient, store: Store, spec: dict[str, Any]
) -> None:
    admin = auth(make_operator(store.sessions, Role.ADMIN))
    device = {"X-Device-Key": make_device_key(store.sessions)}
    errors = validator(spec, "ErrorBody")
    invalid = validator(spec, "ValidationErrorBody")

    schema_mismatch = client.get("/api/v1/cases", params={"limit": 0}, headers=admin)
    assert schema_mismatch.status_code == 422
    assert schema_mismatch.json()["detail"][0]["loc"] == ["query", "limit"]
    assert invalid.is_valid(schema_mismatch.json())

    rejected_value = client.post("/api/v1/routing-rules", json={"unit": "no-such-unit"}, headers=admin)
    assert rejected_value.status_code == 422
    assert rejected_value.json()["field"] == "unit"
    assert invalid.is_valid(rejected_value.json())

    unparsable = client.post(
        "/api/v1/units", content=b"\xff\xfe{", headers={**admin, "Content-Type": "application/json"}
    )
    assert unparsable.status_code == 400
    assert unparsable.json() == {"detail": "There was an error parsing the body", "code": "bad_request"}

    for response, status in (
        (client.get("/api/v1/cases"), 401),
        (client.get("/api/v1/cases", headers=device), 403),
        (client.get("/api/v1/units/no-such-unit", headers=admin), 404),
        (client.delete("/api/v1/calendar", headers=admin), 405),
        (unparsable, 400),
    ):
        assert response.status_code == status, response.text
        assert errors.is_valid(response.json()), response.json()


def test_open311_answers_an_unparsable_body_with_its_error_array(client: TestClient) -> None:
    response = client.post(
        "/open311/v2/requests.json", content=b"--x\r\nbad", headers={"Content-Type": "multipart/form-data"}
    )
    assert response.status_code == 400
    assert response.json() == [{"code": 400, "description": "Missing boundary in multipart."}]
