"""Bounded request bodies, refused before the framework spends disk or memory on them.

Starlette spools a multipart upload to a temporary file and FastAPI reads a JSON body into memory before
a route runs, so a route's own size check comes after the disk or memory is spent. This pure-ASGI
middleware stands in front of the framework:

- a Content-Length over the route's limit gets 413 at once: the app never runs, no byte is read;
- every body is counted as it streams (chunked, or longer than its Content-Length said) and gets 413 as
  soon as it passes the limit;
- a slow body gets 408: no byte for ``body_idle_timeout_s``, or not complete after
  ``body_total_timeout_s``;
- upload routes (every route with a File parameter) run at most ``uploads_per_client`` at once per
  credential and ``uploads_total`` at once per process; more get 429 with Retry-After before a byte of
  the body is read. The credential is counted as sent, before it is checked, so a wrong key has its own
  count and cannot use up a device's.

Limits: the larger of ``evidence_max_bytes`` and ``clip_max_bytes`` (evidence clips share the evidence
route; each route still checks its own limit) plus ``multipart_overhead_bytes`` on upload routes,
``body_max_bytes`` elsewhere, read from the settings per request. The refusals have the API's error shape
and close the connection, so the rest of the body is never read.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, TypeGuard

import anyio
from fastapi import FastAPI
from fastapi.params import File
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.datastructures import Headers
from starlette.requests import cookie_parser
from starlette.routing import BaseRoute, compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.settings import Settings

RETRY_AFTER_S = 2  # an upload takes about this long on a local network
MODEL_ROUTES = "/api/v1/models"  # uploads of ONNX files: their own, larger limit
_TOKEN_COOKIE = "streetwatch_token"  # api.deps.TOKEN_COOKIE (not imported: deps pulls in the database)


def install(app: FastAPI, settings: Settings) -> None:
    """Put the limits in front of ``app``; call after every router is included (upload routes are found
    by their File parameters)."""
    app.add_middleware(BodyLimits, settings=settings, upload_routes=upload_routes(app))


@dataclass(frozen=True)
class UploadRoute:
    methods: frozenset[str]
    path_regex: re.Pattern[str]
    model: bool = False  # a model file (api.model_registry): model_max_bytes instead of evidence_max_bytes


def upload_routes(app: FastAPI) -> tuple[UploadRoute, ...]:
    """The routes that take a file: they get the evidence limit and the upload concurrency bounds."""
    found = []
    for context in iter_route_contexts(app.routes):  # with their routers' prefixes
        route = context.original_route
        if _takes_file(route) and context.path:
            model = context.path.startswith(MODEL_ROUTES)
            found.append(UploadRoute(frozenset(route.methods or ()), compile_path(context.path)[0], model))
    return tuple(found)


def _takes_file(route: BaseRoute) -> TypeGuard[APIRoute]:
    return isinstance(route, APIRoute) and any(
        isinstance(field.field_info, File) for field in route.dependant.body_params
    )


class _Refused(Exception):
    """The body broke a limit; raised into the app from ``receive`` so that it stops reading."""

    def __init__(self, status: int, code: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.extra = status, code, detail, extra


def _too_large(limit: int) -> _Refused:
    return _Refused(
        413, "payload_too_large", f"request body is larger than the limit of {limit} bytes", max_bytes=limit
    )


class UploadSlots:
    """Uploads in progress, per credential and in all. One event loop runs the middleware: no lock."""

    def __init__(self) -> None:
        self._per_client: Counter[str] = Counter()
        self._total = 0

    def take(self, client: str, *, per_client: int, total: int) -> _Refused | None:
        """Take a slot for ``client``, or return why not."""
        if self._per_client[client] >= per_client:
            return self._busy(f"{per_client} uploads with this credential are already in progress, the limit")
        if self._total >= total:
            return self._busy(f"the store is receiving {total} uploads, its limit")
        self._per_client[client] += 1
        self._total += 1
        return None

    def give_back(self, client: str) -> None:
        self._total -= 1
        self._per_client[client] -= 1
        if self._per_client[client] <= 0:
            del self._per_client[client]  # bounded: only clients with an upload in progress are kept

    @staticmethod
    def _busy(why: str) -> _Refused:
        return _Refused(
            429, "too_many_requests", f"{why}; retry in {RETRY_AFTER_S} s", retry_after_s=RETRY_AFTER_S
        )


class _CountedBody:
    """``receive`` that counts body bytes and times the body, raising :class:`_Refused` past a limit."""

    def __init__(self, receive: Receive, limit: int, idle_s: float, total_s: float) -> None:
        self._receive, self._limit, self._idle_s, self._total_s = receive, limit, idle_s, total_s
        self._received = 0
        self._complete = False
        self._deadline: float | None = None
        self.refusal: _Refused | None = None

    async def receive(self) -> Message:
        if self.refusal is not None:
            raise self.refusal
        if self._complete:  # after the body only a disconnect can come: wait for it as long as it takes
            return await self._receive()
        now = time.monotonic()
        self._deadline = self._deadline or now + self._total_s
        message: Message | None = None
        with anyio.move_on_after(min(self._idle_s, self._deadline - now)):
            message = await self._receive()
        if message is None:
            self.refusal = _Refused(
                408, "request_timeout", "request body arrived too slowly: send it without pauses"
            )
            raise self.refusal
        if message["type"] != "http.request":
            self._complete = True  # http.disconnect
            return message
        self._received += len(message.get("body", b""))
        if self._received > self._limit:
            self.refusal = _too_large(self._limit)
            raise self.refusal
        self._complete = not message.get("more_body", False)
        return message


class BodyLimits:
    """The middleware (see the module docstring)."""

    def __init__(self, app: ASGIApp, *, settings: Settings, upload_routes: tuple[UploadRoute, ...]) -> None:
        self.app = app
        self.settings = settings
        self.upload_routes = upload_routes
        self.slots = UploadSlots()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        settings = self.settings
        route = self._upload_route(scope)
        upload = route is not None
        file_limit = (
            settings.model_max_bytes
            if route is not None and route.model
            else max(settings.evidence_max_bytes, settings.clip_max_bytes)
        )
        limit = file_limit + settings.multipart_overhead_bytes if upload else settings.body_max_bytes
        headers = Headers(scope=scope)
        if _content_length(headers) > limit:
            await _answer(send, _too_large(limit))  # before reading a byte
            return
        if not upload:
            await self._bounded(scope, receive, send, limit)
            return
        client = _client_key(headers)
        busy = self.slots.take(client, per_client=settings.uploads_per_client, total=settings.uploads_total)
        if busy is not None:
            await _answer(send, busy)
            return
        try:
            await self._bounded(scope, receive, send, limit)
        finally:
            self.slots.give_back(client)

    def _upload_route(self, scope: Scope) -> UploadRoute | None:
        return next(
            (
                route
                for route in self.upload_routes
                if scope["method"] in route.methods and route.path_regex.match(scope["path"])
            ),
            None,
        )

    async def _bounded(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        """Run the app on a counted body; when the body is refused, answer the refusal instead of whatever
        the app made of the broken body (FastAPI turns it into a 400)."""
        settings = self.settings
        body = _CountedBody(receive, limit, settings.body_idle_timeout_s, settings.body_total_timeout_s)
        started = answered = False

        async def guarded_send(message: Message) -> None:
            nonlocal started, answered
            if body.refusal is None or started:
                started = started or message["type"] == "http.response.start"
                await send(message)
            elif not answered:
                answered = True
                await _answer(send, body.refusal)

        try:
            await self.app(scope, body.receive, guarded_send)
        except Exception:
            if body.refusal is None or started:
                raise
        if body.refusal is not None and not started and not answered:
            await _answer(send, body.refusal)


def _content_length(headers: Headers) -> int:
    """The declared length, 0 when absent; the server itself refuses a malformed one."""
    value = headers.get("content-length", "")
    return int(value) if value.isdigit() else 0


def _client_key(headers: Headers) -> str:
    """Who is uploading, as sent (unchecked): a digest of the device key, token or console cookie."""
    credential = (
        headers.get("x-device-key")
        or headers.get("authorization")
        or cookie_parser(headers.get("cookie", "")).get(_TOKEN_COOKIE)
        or ""
    )
    return hashlib.sha256(credential.encode()).hexdigest()


async def _answer(send: Send, refusal: _Refused) -> None:
    body = json.dumps({"detail": refusal.detail, "code": refusal.code, **refusal.extra}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),  # the rest of the body is never read
    ]
    if refusal.status == 429:
        headers.append((b"retry-after", str(RETRY_AFTER_S).encode()))
    await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
