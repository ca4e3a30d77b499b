"""The endpoints an edge box calls, relative to the store's base URL (all with ``X-Device-Key``)."""

from __future__ import annotations

API = "/api/v1"
CASES = f"{API}/cases"  # POST a CaseReport -> IngestResult
INCIDENT_UPDATES = f"{API}/cases/incident-updates"  # POST an IncidentUpdate -> UpdateResult
DEVICE_CONFIG = f"{API}/devices/me/config"  # GET -> DeviceConfig (ETag, 304 while unchanged)
DEVICE_CASES = f"{API}/devices/me/cases"  # GET ?status=resolved -> page of DeviceCase
DEVICE_KEY_HEADER = "X-Device-Key"


def case_evidence(case_id: int) -> str:
    """POST multipart ``file`` + ``kind`` (+ optional ``score``): an evidence image for a case."""
    return f"{CASES}/{case_id}/evidence"


def case_action(case_id: int, action: str) -> str:
    """POST a DeviceActionBody: ``verify`` or ``rework`` after verification by camera."""
    return f"{CASES}/{case_id}/actions/{action}"


def camera_health(camera: str) -> str:
    """PUT a CameraHealth for one of the device's cameras."""
    return f"{API}/devices/me/cameras/{camera}/health"


# PUT a CameraHealthBatch: every camera of the box in one request -> CameraHealthBatchResult (404 or 405
# from a store older than this route: send camera_health per camera instead)
CAMERAS_HEALTH = f"{API}/devices/me/cameras/health"


def camera_snapshot(camera: str) -> str:
    """PUT multipart ``file``: the camera's latest frame (JPEG) for the zone editor."""
    return f"{API}/devices/me/cameras/{camera}/snapshot"


def device_reference(sha256: str) -> str:
    """GET the image an operator set as a zone's empty reference (DeviceZone.reference_sha256)."""
    return f"{API}/devices/me/references/{sha256}"


def device_model(version_id: int) -> str:
    """GET the ONNX file of a model version assigned to this device (HTTP Range resumes a download)."""
    return f"{API}/devices/me/models/{version_id}"


MODEL_COMPARISONS = f"{API}/devices/me/model-comparisons"  # POST a ModelComparisonReport (shadow vs live)
