"""``streetwatch models publish MODEL --store-url URL``: upload a model (ONNX file + its resolved card) to the
case store's model registry (api.model_registry), as an admin.

The model is loaded first, exactly as a daemon would load it (checksum, output layout), so a file that would
not run on a box is never published. Credentials: ``--token`` / ``$STREETWATCH_TOKEN`` (an admin's swt_…
token), or ``--username`` with ``$STREETWATCH_PASSWORD`` (or a prompt); never logged or echoed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from detector.card import card_to_yaml_dict
from detector.loader import load_model

TIMEOUT_S = 300.0  # a large model over a slow link


class PublishError(Exception):
    """The model could not be published; the message says why and what to do."""


def card_fields(model: Path) -> tuple[Path, dict[str, Any]]:
    """The ONNX file and the card the registry keeps (``path`` is the store's business)."""
    loaded = load_model(model)
    card = card_to_yaml_dict(loaded.card)
    card.pop("path", None)
    return Path(loaded.card.path), card


def _answer(response: httpx.Response, what: str) -> dict[str, Any]:
    if response.status_code in (200, 201):
        body: dict[str, Any] = response.json()
        return body
    try:
        detail = response.json().get("detail", response.text)
    except ValueError:
        detail = response.text[:300]
    hints = {
        401: "the token or password is wrong or expired: log in again",
        403: "only an admin may publish models",
        409: "this exact file is already in the registry",
        413: "the file is larger than the store accepts (STREETWATCH_MODEL_MAX_BYTES)",
    }
    hint = f" ({hints[response.status_code]})" if response.status_code in hints else ""
    raise PublishError(f"{what}: the store answered {response.status_code}: {detail}{hint}")


def login(client: httpx.Client, username: str, password: str) -> str:
    response = client.post("/api/v1/auth/login", json={"username": username, "password": password})
    token: str = _answer(response, "login")["access_token"]
    return token


def publish(
    client: httpx.Client,
    token: str,
    model: Path,
    *,
    dataset: str | None = None,
    training_command: str | None = None,
    evaluation: dict[str, Any] | None = None,
) -> dict[str, Any]:
    onnx, card = card_fields(model)
    form = {"card": json.dumps(card)}
    if dataset:
        form["dataset"] = dataset
    if training_command:
        form["training_command"] = training_command
    if evaluation is not None:
        form["evaluation"] = json.dumps(evaluation)
    with onnx.open("rb") as handle:  # streamed from disk by httpx
        response = client.post(
            "/api/v1/models",
            files={"file": (onnx.name, handle, "application/octet-stream")},
            data=form,
            headers={"Authorization": f"Bearer {token}"},
        )
    return _answer(response, f"publishing {model}")


def _evaluation(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PublishError(f"--evaluation {path}: not a readable JSON file: {exc}") from exc
    if not isinstance(value, dict):
        raise PublishError(f"--evaluation {path}: must hold a JSON object of figures")
    return value


def publish_command(
    model: Annotated[Path, typer.Argument(help="Model card (.yaml) or ONNX file.")],
    store_url: Annotated[str, typer.Option("--store-url", help="The case store, e.g. http://store:8000.")],
    token: Annotated[
        str | None, typer.Option("--token", envvar="STREETWATCH_TOKEN", help="An admin's API token.")
    ] = None,
    username: Annotated[
        str | None, typer.Option("--username", help="Admin login; the password from $STREETWATCH_PASSWORD.")
    ] = None,
    dataset: Annotated[str | None, typer.Option("--dataset", help="The dataset it was trained on.")] = None,
    training_command: Annotated[
        str | None, typer.Option("--training-command", help="The command that trained it.")
    ] = None,
    evaluation: Annotated[
        Path | None, typer.Option("--evaluation", help="A JSON file of evaluation figures (e.g. mAP50).")
    ] = None,
) -> None:
    """Publish a model to the store's registry (admins); prints the new version's id and sha256."""
    from detector.cli import user_errors

    if token is None and username is None:
        typer.echo("error: give --token (or $STREETWATCH_TOKEN) or --username of an admin", err=True)
        raise typer.Exit(2)
    with user_errors():
        try:
            figures = _evaluation(evaluation)
            with httpx.Client(base_url=store_url.rstrip("/"), timeout=TIMEOUT_S) as client:
                if token is None:
                    password = os.environ.get("STREETWATCH_PASSWORD") or typer.prompt(
                        "password", hide_input=True
                    )
                    token = login(client, username or "", password)
                version = publish(
                    client,
                    token,
                    model,
                    dataset=dataset,
                    training_command=training_command,
                    evaluation=figures,
                )
        except PublishError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from exc
        except httpx.TransportError as exc:
            typer.echo(f"error: cannot reach the store at {store_url}: {exc}", err=True)
            raise typer.Exit(1) from exc
    typer.echo(
        f"published {version['name']} {version['version']} as version {version['id']} "
        f"(sha256 {version['sha256']}, {version['size']} bytes)"
    )
