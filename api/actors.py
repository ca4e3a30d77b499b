"""Who is acting: an operator, a device or the system itself. Services take an Actor, never a request."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.models import Camera, Device, Role, User


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


def display_names(session: Session, labels: Iterable[str]) -> dict[str, str]:
    """What people call the actors behind audit labels: a user's display name (``user:zhao`` -> 赵敏), a
    device's cameras' names (``device:demo-box`` -> 人民路口东), else the bare name. ``system`` and labels of
    unknown kinds are left out: the console words those itself."""
    wanted: dict[str, set[str]] = {"user": set(), "device": set()}
    for label in labels:
        kind, _, name = label.partition(":")
        if kind in wanted and name:
            wanted[kind].add(name)
    names: dict[str, str] = {}
    if wanted["user"]:
        for username, display in session.execute(
            select(User.username, User.display_name).where(User.username.in_(wanted["user"]))
        ):
            names[f"user:{username}"] = display or username
    if wanted["device"]:
        cameras: dict[str, list[str]] = {}
        rows = session.execute(
            select(Device.name, Camera.name, Camera.code)
            .outerjoin(Camera, Camera.device_id == Device.id)
            .where(Device.name.in_(wanted["device"]))
            .order_by(Camera.code)
        )
        for device, camera_name, camera_code in rows:
            listed = cameras.setdefault(device, [])
            if camera_code is not None:
                listed.append(camera_name or camera_code)
        for device, listed in cameras.items():
            names[f"device:{device}"] = "、".join(listed) if listed else device
    for label in labels:
        kind, _, name = label.partition(":")
        if kind in wanted and name:
            names.setdefault(label, name)
    return names


def actor_name(session: Session, actor: Actor) -> str:
    """The name people know ``actor`` by (see :func:`display_names`); ``system`` for the system."""
    return display_names(session, [actor.label]).get(actor.label, actor.label)
