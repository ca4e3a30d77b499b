"""Credentials: operator passwords (argon2), operator tokens and device keys (random, stored as sha256).

Tokens and device keys are 256-bit random secrets, so a fast hash is enough to store them safely;
passwords are low-entropy and get argon2.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from api.models import ApiToken, Device, Role, User, utcnow

_hasher = PasswordHasher()
DEVICE_KEY_PREFIX = "swd"
TOKEN_PREFIX = "swt"


def hash_password(password: str) -> str:
    if len(password) < 8:
        raise ValueError("password too short: at least 8 characters")
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def sha256_hex(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedDeviceKey:
    device: Device
    key: str  # shown once, never stored


def create_device(session: Session, name: str) -> IssuedDeviceKey:
    """A device with a fresh key ``swd_<key_id>_<secret>``; only the secret's hash is stored."""
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    device = Device(name=name, key_id=key_id, key_hash=sha256_hex(secret))
    session.add(device)
    session.flush()
    return IssuedDeviceKey(device, f"{DEVICE_KEY_PREFIX}_{key_id}_{secret}")


@dataclass(frozen=True)
class DeviceIdentity:
    """Who a valid device key belongs to (read on every device request, so not an ORM entity)."""

    id: int
    name: str
    last_seen_at: dt.datetime | None


_DEVICE_BY_KEY_ID = select(Device.id, Device.name, Device.key_hash, Device.active, Device.last_seen_at).where(
    Device.key_id == bindparam("key_id")
)


def authenticate_device(session: Session, key: str) -> DeviceIdentity | None:
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != DEVICE_KEY_PREFIX:
        return None
    row = session.connection().execute(_DEVICE_BY_KEY_ID, {"key_id": parts[1]}).first()
    if row is None or not row.active:
        return None
    if not hmac.compare_digest(row.key_hash, sha256_hex(parts[2])):
        return None
    return DeviceIdentity(row.id, row.name, row.last_seen_at)


def touch_device(session: Session, device_id: int, now: dt.datetime) -> None:
    session.connection().execute(update(Device).where(Device.id == device_id).values(last_seen_at=now))


def create_user(
    session: Session,
    *,
    username: str,
    password: str,
    role: Role,
    unit_id: int | None = None,
    display_name: str = "",
) -> User:
    if role is Role.UNIT_HANDLER and unit_id is None:
        raise ValueError("a unit handler needs a unit")
    user = User(
        username=username,
        password_hash=hash_password(password),
        role=role.value,
        unit_id=unit_id,
        display_name=display_name or username,
    )
    session.add(user)
    session.flush()
    return user


def issue_token(session: Session, user: User, ttl_hours: float) -> tuple[str, ApiToken]:
    token = f"{TOKEN_PREFIX}_{secrets.token_urlsafe(32)}"
    row = ApiToken(
        user_id=user.id, token_hash=sha256_hex(token), expires_at=utcnow() + dt.timedelta(hours=ttl_hours)
    )
    session.add(row)
    session.flush()
    return token, row


def authenticate_token(session: Session, token: str) -> User | None:
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == sha256_hex(token)))
    if row is None or row.revoked or row.expires_at <= utcnow() or not row.user.active:
        return None
    return row.user


def login(session: Session, username: str, password: str) -> User | None:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        _hasher.hash("timing-equaliser")  # same work whether or not the user exists
        return None
    if not user.active or not verify_password(user.password_hash, password):
        return None
    return user
