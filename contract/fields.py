"""Constrained field types shared by the wire models (and by the store's own resources).

Each string type lists its constraints before the number check: the other order drops the pattern from the
JSON schema, so the OpenAPI document would accept values the server refuses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, StringConstraints, WithJsonSchema


def quoted(what: str, example: str) -> Callable[[Any], Any]:
    """Reject numbers where a string is meant: YAML reads ``0505`` as 325 and ``13:30`` as 810."""

    def check(value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            raise ValueError(
                f"{what} must be a string, got the number {value!r}: quote it in YAML ('{example}'), "
                f"unquoted values such as {example} are read as numbers"
            )
        return value

    return check


CODE_PATTERN = r"^[^\s/\\?#%]+$"
EVENT_CODE_PATTERN = r"^[0-9A-Za-z_.\-]+$"
PIPELINE_TYPE_PATTERN = r"^[a-z][a-z0-9_]*$"
IDEMPOTENCY_KEY_PATTERN = r"^[A-Za-z0-9_.:\-]+$"

Code = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=CODE_PATTERN),
    BeforeValidator(quoted("a code", "110101001001001")),
    Field(description="A code or key: 1-64 characters, no spaces, '/', '\\', '?', '#' or '%'."),
]
EventCode = Annotated[
    str,
    StringConstraints(min_length=1, max_length=16, pattern=EVENT_CODE_PATTERN),
    BeforeValidator(quoted("an event code", "0505")),
    Field(description="Event code of a violation type, e.g. 0505 (GB/T 30428 family; cities renumber)."),
]
PipelineType = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=PIPELINE_TYPE_PATTERN),
    Field(description="The pipeline's violation type, e.g. illegal_parking."),
]
HHMM = Annotated[
    str,
    StringConstraints(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$"),
    BeforeValidator(quoted("a time", "13:30")),
    Field(description="Local time HH:MM (00:00-23:59)."),
]
IsoWeekday = Annotated[int, Field(ge=1, le=7, description="ISO weekday: 1 Monday ... 7 Sunday.")]
Coordinate = Annotated[float, Field(ge=0.0, le=1.0)]
# A normalised [x, y] point. Its schema says "two numbers in 0..1" without prefixItems, which some OpenAPI
# tools (schemathesis) reject in response schemas.
Point = Annotated[
    tuple[Coordinate, Coordinate],
    WithJsonSchema(
        {
            "type": "array",
            "items": {"type": "number", "minimum": 0, "maximum": 1},
            "minItems": 2,
            "maxItems": 2,
        }
    ),
]
Confidence = Annotated[float, Field(ge=0.0, le=1.0)]
IdempotencyKey = Annotated[
    str,
    StringConstraints(min_length=8, max_length=128, pattern=IDEMPOTENCY_KEY_PATTERN),
    Field(description="Minted once by the edge box; the store stores each key once."),
]
