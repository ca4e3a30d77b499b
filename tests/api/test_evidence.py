"""Evidence images: only real JPEG/PNG within the size limit, stored once by sha256, served only to
operators who may see the case, and no way to read any other file through the evidence URL."""

from __future__ import annotations

import hashlib
import struct
import zlib
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from api.models import Case, Evidence, Role, Unit
from tests.api.builders import (
    auth,
    device_auth,
    image_bytes,
    make_device_key,
    make_operator,
    post_report,
)
from tests.api.conftest import Scene, Store


def upload(
    client: TestClient,
    case_id: int,
    data: bytes,
    headers: dict[str, str],
    kind: str = "confirmation",
    name: str = "a.jpg",
) -> Any:
    return client.post(
        f"/api/v1/cases/{case_id}/evidence",
        files={"file": (name, data, "image/jpeg")},
        data={"kind": kind},
        headers=headers,
    )


def unit_ids(store: Store) -> dict[str, int]:
    with store.sessions() as session:
        return {unit.code: unit.id for unit in session.scalars(select(Unit))}


def stored_files(store: Store) -> list[str]:
    folder = store.settings.evidence_dir
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def evidence_rows(store: Store) -> int:
    with store.sessions() as session:
        return session.scalar(select(func.count()).select_from(Evidence)) or 0


def test_real_images_are_stored_once_by_sha256_and_served(
    client: TestClient, store: Store, scene: Scene
) -> None:
    other_case = post_report(client, scene.device_key, "incident-0002", place="grid-2")["case_id"]
    device = device_auth(scene.device_key)
    stored = []
    for ext, content_type in [(".jpg", "image/jpeg"), (".png", "image/png")]:
        data = image_bytes(ext, width=64, height=48)
        sha256 = hashlib.sha256(data).hexdigest()

        first = upload(client, scene.case_id, data, device, name=f"frame{ext}")
        again = upload(client, scene.case_id, data, device, name=f"frame{ext}")  # a retried upload
        on_other_case = upload(client, other_case, data, device, name=f"frame{ext}")

        assert first.status_code == 201, first.text
        body = first.json()
        assert (body["sha256"], body["content_type"], body["size"]) == (sha256, content_type, len(data))
        assert (body["width"], body["height"], body["kind"]) == (64, 48, "confirmation")
        assert body["url"] == f"/api/v1/evidence/{sha256}"
        assert again.status_code == 200 and again.json()["id"] == body["id"]
        assert on_other_case.status_code == 201 and on_other_case.json()["id"] != body["id"]
        path = store.settings.evidence_dir / sha256[:2] / f"{sha256}{ext}"
        assert path.read_bytes() == data
        stored.append(path.name)

        served = client.get(body["url"], headers=auth(scene.leader))
        assert served.status_code == 200
        assert served.content == data
        assert served.headers["content-type"] == content_type
        assert served.headers["x-content-type-options"] == "nosniff"
    # each image once on disk, once per case in the database
    assert stored_files(store) == sorted(stored) and evidence_rows(store) == 4


BEST_EVIDENCE_STEPS = [
    # upload of this kind -> the case's best evidence is the first upload of that kind (None: no best yet)
    ("after", None),  # after / handling images never show the violation
    ("crop", "crop"),
    ("first_seen", "first_seen"),  # better than a crop
    ("confirmation", "confirmation"),  # best
    ("confirmation", "confirmation"),  # the first confirmation stays
    ("handling", "confirmation"),
]


def test_best_evidence_prefers_the_confirmation_image(client: TestClient, store: Store, scene: Scene) -> None:
    first_of_kind: dict[str, int] = {}
    for seed, (kind, best_kind) in enumerate(BEST_EVIDENCE_STEPS):
        response = upload(
            client, scene.case_id, image_bytes(seed=seed), device_auth(scene.device_key), kind=kind
        )
        assert response.status_code == 201, response.text
        first_of_kind.setdefault(kind, response.json()["id"])

        case = client.get(f"/api/v1/cases/{scene.case_id}", headers=auth(scene.leader)).json()
        assert case["best_evidence_id"] == (first_of_kind[best_kind] if best_kind else None), (seed, kind)

    detail = client.get(f"/api/v1/cases/{scene.case_id}", headers=auth(scene.leader)).json()
    assert [e["kind"] for e in detail["evidence"]] == [
        "after",
        "crop",
        "first_seen",
        "confirmation",
        "confirmation",
        "handling",
    ]
    assert all(e["url"] == f"/api/v1/evidence/{e['sha256']}" for e in detail["evidence"])
    assert [e["action"] for e in detail["events"]].count("evidence") == 6


def _png_claiming(width: int, height: int) -> bytes:
    """A PNG header announcing a huge image, with no pixel data: must be refused before decoding."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk + b"\x00\x00\x00\x00IEND\xaeB`\x82"


def _truncated_jpeg() -> bytes:
    data = image_bytes(".jpg", width=320, height=240)
    return data[: len(data) * 2 // 3]


SMALL_LIMIT = 200_000
BAD_UPLOADS = [
    # name, bytes, kind, status, words of the message
    ("notes.jpg", b"this is a text file renamed to .jpg\n", "confirmation", 422, "not a JPEG or PNG image"),
    ("cut.jpg", _truncated_jpeg(), "confirmation", 422, "JPEG has no end-of-image marker (FFD9): truncated"),
    ("cut.png", image_bytes(".png")[:200], "confirmation", 422, "PNG does not end with its IEND chunk"),
    ("empty.jpg", b"", "confirmation", 422, "evidence file is empty"),
    (
        "fake.png",
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 40 + b"IEND\xaeB`\x82",
        "confirmation",
        422,
        "no image size",
    ),
    ("bomb.png", _png_claiming(20000, 20000), "confirmation", 413, "20000x20000 pixels, more than the limit"),
    (
        "ok.jpg",
        image_bytes(),
        "selfie",
        422,
        "unknown evidence kind 'selfie'; allowed: first_seen, confirmation",
    ),
]


def test_bad_uploads_are_refused_and_nothing_is_stored(
    client: TestClient, store: Store, scene: Scene
) -> None:
    store.settings.evidence_max_bytes = SMALL_LIMIT  # the app reads the limit per request
    for name, data, kind, status, message in BAD_UPLOADS:
        response = upload(client, scene.case_id, data, device_auth(scene.device_key), kind=kind, name=name)

        assert response.status_code == status, (name, response.text)
        assert message in response.json()["detail"], (name, response.text)
        assert response.json()["field"] in {"file", "kind"}
    assert stored_files(store) == [] and evidence_rows(store) == 0


TRAVERSALS = [
    "..%2F..%2Fsecret.key",
    "..%2f..%2fstreetwatch.sqlite",
    "%2e%2e%2f%2e%2e%2fsecret.key",
    "..%5C..%5Csecret.key",
    "secret.key",
    "..",
    "%00",
]


def test_evidence_names_cannot_reach_other_files(client: TestClient, store: Store, scene: Scene) -> None:
    secret = "ab" * 32  # an installation from before the database kept the key had it in this file
    (store.settings.data_dir / "secret.key").write_text(secret, encoding="utf-8")
    data = image_bytes()
    sha256 = upload(client, scene.case_id, data, device_auth(scene.device_key)).json()["sha256"]
    headers = auth(scene.leader)
    attempts = [
        *TRAVERSALS,
        sha256.upper(),  # only lowercase hex
        sha256[:-1],  # 63 digits
        sha256 + "0",  # 65 digits
        sha256 + ".jpg",
        f"{sha256[:2]}%2F{sha256}.jpg",
        "g" * 64,
    ]

    for name in attempts:
        response = client.get(f"/api/v1/evidence/{name}", headers=headers)

        assert response.status_code in (404, 422), (name, response.status_code)
        assert secret not in response.text and response.content != data, name
    unknown = client.get(f"/api/v1/evidence/{'0' * 64}", headers=headers)
    assert unknown.status_code == 404 and unknown.json()["detail"] == f"evidence {'0' * 64} not found"


def test_reading_evidence_needs_an_operator_who_may_see_the_case(
    client: TestClient, store: Store, scene: Scene
) -> None:
    units = unit_ids(store)
    sha256 = upload(client, scene.case_id, image_bytes(), device_auth(scene.device_key)).json()["sha256"]
    url = f"/api/v1/evidence/{sha256}"
    with store.sessions.begin() as session:  # the case is with the sanitation department
        session.execute(update(Case).where(Case.id == scene.case_id).values(unit_id=units["sanitation"]))
    own_unit = make_operator(store.sessions, Role.UNIT_HANDLER, unit_id=units["sanitation"])
    other_unit = make_operator(store.sessions, Role.UNIT_HANDLER, unit_id=units["traffic"])
    viewer = make_operator(store.sessions, Role.VIEWER)

    cases = [
        ({}, 401),
        ({"Authorization": "Bearer swt_forged"}, 401),
        (device_auth(scene.device_key), 403),  # even the device that took the picture
        (auth(other_unit), 404),  # another unit's case does not exist for it
        (auth(own_unit), 200),
        (auth(viewer), 200),
        (auth(scene.leader), 200),
    ]
    for headers, status in cases:
        assert client.get(url, headers=headers).status_code == status, headers


def test_who_may_add_evidence(client: TestClient, store: Store, scene: Scene) -> None:
    units = unit_ids(store)
    with store.sessions.begin() as session:
        session.execute(update(Case).where(Case.id == scene.case_id).values(unit_id=units["sanitation"]))
    other_box = make_device_key(store.sessions, "box-2")
    cases = [
        ({}, 401),
        (device_auth(other_box), 404),  # a device only adds to cases it reported
        (auth(make_operator(store.sessions, Role.VIEWER)), 403),
        (auth(make_operator(store.sessions, Role.UNIT_HANDLER, unit_id=units["traffic"])), 404),
        (auth(make_operator(store.sessions, Role.UNIT_HANDLER, unit_id=units["sanitation"])), 201),
        (auth(make_operator(store.sessions, Role.DISPATCHER)), 201),
        (device_auth(scene.device_key), 201),
    ]
    for seed, (headers, status) in enumerate(cases):
        response = upload(client, scene.case_id, image_bytes(seed=seed), headers, kind="handling")
        assert response.status_code == status, (headers, response.text)
    assert (
        client.post(
            "/api/v1/cases/999999/evidence",
            files={"file": ("a.jpg", image_bytes(), "image/jpeg")},
            data={"kind": "handling"},
            headers=auth(scene.leader),
        ).status_code
        == 404
    )
