"""Who is acting: an operator, a device or the system itself. Services take an Actor, never a request."""

from __future__ import annotations

from dataclasses import dataclass

from api.models import Role


@dataclass(frozen=True, slots=True)
class Actor:
    kind: str  # "user" | "device" | "system"
    id: int | None
    name: str
    role: Role | None = None  # operators only
    unit_id: int | None = None  # unit handlers: the unit they work for

    @property
    def label(self) -> str:
        """How the audit trail names the actor: ``user:alice``, ``device:box-1``, ``system``."""
        return "system" if self.kind == "system" else f"{self.kind}:{self.name}"

    @property
    def is_device(self) -> bool:
        return self.kind == "device"


SYSTEM = Actor(kind="system", id=None, name="system")
