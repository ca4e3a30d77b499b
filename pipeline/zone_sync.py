"""Zones from the case store: poll ``GET /api/v1/devices/me/config`` (a :class:`contract.DeviceConfig`)
with the device key and an ETag (304 while nothing changed), turn the store's zones into
:class:`ZoneConfig`, cache the last good answer.

Which zones a camera runs with: the store's when the store has any for it, else the ones in the local YAML
(the fallback, also while the store is unreachable and no cache exists). A store answer that cannot be used is
logged and ignored: the previous zones stay. Applying zones is the daemon's job (between two frames, in the
rules thread): this module only fetches and validates.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import httpx
from pydantic import ValidationError

from common.files import write_atomically
from contract import paths
from contract.device_config import DeviceConfig, DeviceModel, DeviceZone, Suppression
from contract.schedule import ScheduleError, windows_to_text
from pipeline.case_reports import EventCodes
from pipeline.config import CameraConfig, ZoneConfig
from pipeline.errors import ZoneError, ZoneSyncError
from pipeline.zones import CameraZones

log = logging.getLogger(__name__)

CameraZoneMap = dict[str, tuple[ZoneConfig, ...]]
ReferenceMap = dict[tuple[str, str], str]  # (camera, zone) -> sha256 of the operator's reference image


class RequestLike(Protocol):
    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response: ...


def _store_zone(camera: str, zone: DeviceZone, timezone: str) -> ZoneConfig | None:
    """One store zone as the daemon's zone; ``None`` for a zone without rules or static change (it judges
    nothing)."""
    where = f"camera {camera} zone {zone.code}"
    if not zone.rules and zone.static_change is None:
        log.debug("%s has no rules: it judges nothing and is left out", where)
        return None
    rules = {}
    for violation, rule in zone.rules.items():
        try:
            schedule = windows_to_text([window.model_dump() for window in rule.schedule])
        except ScheduleError as exc:
            raise ZoneSyncError(f"{where}: rules.{violation}.schedule: {exc}") from exc
        rules[violation] = {
            "dwell_s": rule.dwell_s,
            "schedule": schedule,
            "min_confidence": rule.min_confidence,
        }
    try:
        return ZoneConfig.model_validate(
            {
                "id": zone.code,
                "place": zone.place,
                "polygon": zone.polygon,
                "anchor": zone.anchor,
                "rules": rules,
                "timezone": timezone,
                "static_change": zone.static_change,
            }
        )
    except ValidationError as exc:
        raise ZoneSyncError(f"{where}: {_problems(exc)}") from exc


def _problems(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())


def parse_device_config(document: Any) -> DeviceConfig:
    """The store's answer as the contract's model; :class:`ZoneSyncError` naming each field otherwise."""
    if isinstance(document, DeviceConfig):
        return document
    try:
        return DeviceConfig.model_validate(document)
    except ValidationError as exc:
        raise ZoneSyncError(f"the store's device configuration is not usable: {_problems(exc)}") from exc


def zones_from_store(document: Any, local: Sequence[CameraConfig]) -> CameraZoneMap:
    """The zones each local camera runs with, given the store's device configuration ``document``.

    Raises :class:`ZoneSyncError` naming camera, zone and field when any part cannot be used: a partly
    valid answer is not applied, so a camera never runs with half of what an operator saved. Store zones
    keep the store's time zone for their schedules (the camera's YAML one applies to YAML zones only).
    """
    config = parse_device_config(document)
    from_store: dict[str, list[ZoneConfig]] = {}
    for store_camera in config.cameras:
        converted = [_store_zone(store_camera.code, zone, config.timezone) for zone in store_camera.zones]
        from_store[store_camera.code] = [zone for zone in converted if zone is not None]
    result: CameraZoneMap = {}
    for camera in local:
        zones = from_store.get(camera.id) or list(camera.zones)  # nothing in the store: the YAML's
        ids = [zone.id for zone in zones]
        if len(set(ids)) != len(ids):
            raise ZoneSyncError(f"camera {camera.id}: zone codes repeat: {', '.join(ids)}")
        try:
            CameraZones(camera.id, zones)  # the limits the rules engine enforces
        except ZoneError as exc:
            raise ZoneSyncError(str(exc)) from exc
        result[camera.id] = tuple(zones)
    unknown = sorted(set(from_store) - {camera.id for camera in local})
    if unknown:
        log.debug("store cameras without a stream on this box (not in its YAML): %s", ", ".join(unknown))
    return result


def references_from_store(document: Any) -> ReferenceMap:
    """(camera, zone) -> sha256 of the empty reference an operator set in the store, where one is set."""
    config = parse_device_config(document)
    return {
        (camera.code, zone.code): zone.reference_sha256
        for camera in config.cameras
        for zone in camera.zones
        if zone.reference_sha256 is not None
    }


class ZoneSync:
    """Polls the store for this box's zones. Not thread-safe: one thread calls :meth:`poll`."""

    def __init__(
        self,
        client: RequestLike,
        cameras: Sequence[CameraConfig],
        cache: Path | None,
        *,
        event_codes: EventCodes | None = None,
        on_suppressions: Callable[[list[Suppression]], None] | None = None,
        on_models: Callable[[list[DeviceModel]], None] | None = None,
    ) -> None:
        self.client = client
        self.cameras = list(cameras)
        self.cache = cache
        self.event_codes = event_codes  # checked against the store's violation types on every answer
        self.on_suppressions = on_suppressions  # the false-alarm memory (pipeline.suppressions)
        self.on_models = on_models  # the model rollout (pipeline.model_updates)
        self.suppressions: list[Suppression] = []  # of the last good answer
        self.etag: str | None = None
        # Of the last good answer (poll or cache): the references a store-sync thread downloads.
        self.references: ReferenceMap = {}
        self._store_down = False

    def cached(self) -> CameraZoneMap | None:
        """The zones of the last good answer saved on disk; ``None`` without a usable cache."""
        if self.cache is None or not self.cache.is_file():
            return None
        try:
            saved = json.loads(self.cache.read_text(encoding="utf-8"))
            zones = self._take(saved["config"])
        except (OSError, ValueError, KeyError, TypeError, ZoneSyncError) as exc:
            log.warning("zone cache %s is not usable (%s); starting with the YAML's zones", self.cache, exc)
            return None
        self.etag = saved.get("etag")
        log.info("zones from the cache %s (the store's as of its last answer)", self.cache)
        return zones

    def poll(self) -> CameraZoneMap | None:
        """New zones when the store answers with a changed, valid configuration; else ``None`` (unchanged,
        unreachable, refused or invalid: each logged, the previous zones stay)."""
        headers = {"If-None-Match": self.etag} if self.etag else {}
        try:
            response = self.client.request("GET", paths.DEVICE_CONFIG, headers=headers)
        except httpx.TransportError as exc:
            if not self._store_down:
                log.warning("zone sync: the store is unreachable (%s); keeping the current zones", exc)
            self._store_down = True
            return None
        self._store_down = False
        if response.status_code == 304:
            return None
        if response.status_code != 200:
            log.warning("zone sync: the store answered %d: %s", response.status_code, response.text[:200])
            return None
        etag = response.headers.get("ETag")
        try:
            document = response.json()
            zones = self._take(document)
        except (ValueError, ZoneSyncError) as exc:
            log.error("zone sync: the store's zones are not usable, keeping the current ones: %s", exc)
            self.etag = etag  # do not log the same broken version on every poll
            return None
        self.etag = etag
        self._save(document, etag)
        return zones

    def _take(self, document: Any) -> CameraZoneMap:
        """A usable answer, parsed once: its zones (returned), and its event codes checked, suppressions
        handed on and references noted (raises ZoneSyncError before any of that for an unusable one)."""
        config = parse_device_config(document)
        zones = zones_from_store(config, self.cameras)
        if self.event_codes is not None:
            self.event_codes.check(config.violation_types)
        # expired suppressions are not sent; the filter also checks expiry
        self.suppressions = list(config.suppressions)
        if self.on_suppressions is not None:
            self.on_suppressions(self.suppressions)
        self.references = references_from_store(config)
        if self.on_models is not None:
            self.on_models(list(config.models))
        return zones

    def _save(self, document: Any, etag: str | None) -> None:
        if self.cache is None:
            return
        try:
            text = json.dumps({"etag": etag, "config": document}, ensure_ascii=False)
            write_atomically(self.cache, text.encode("utf-8"), prefix=".zones-", durable=False)
        except OSError as exc:
            log.warning("zone cache %s not written: %s", self.cache, exc)
