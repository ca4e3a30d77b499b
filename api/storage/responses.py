"""A stored blob as an HTTP response: the file itself from the local store (sendfile; Starlette answers
Range and If-Range), a stream of chunks from the database store (never the whole blob in memory; one byte
range of it when asked, with the same answers: 206 with Content-Range, 416 outside the blob, 400 for a
header that names no byte range). Several ranges in one header get the whole blob from the database
store (200, as RFC 9110 allows) and a multipart answer from the local one."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header
from fastapi.responses import FileResponse, Response, StreamingResponse

from api.errors import ApiError, NotFound
from api.storage.base import BlobMissing, BlobRef, BlobStore, ByteRange, RangeNotSatisfiable
from api.storage.local import LocalBlobStore

_PART = re.compile(r"\s*([0-9]*)\s*-\s*([0-9]*)\s*")


class MalformedRange(ApiError):
    status_code = 400
    code = "bad_range"


class RangeOutside(ApiError):
    status_code = 416
    code = "range_not_satisfiable"

    def __init__(self, size: int) -> None:
        super().__init__(f"the range asked for is outside the {size} bytes of this file", size=size)
        self.headers = {"Content-Range": f"bytes */{size}"}


@dataclass(frozen=True)
class RangeRequest:
    """The request's Range and If-Range headers, for the database store (Starlette reads them itself for
    a local file)."""

    range: str | None = None
    if_range: str | None = None


def range_request(
    range_: Annotated[str | None, Header(alias="Range", include_in_schema=False)] = None,
    if_range: Annotated[str | None, Header(alias="If-Range", include_in_schema=False)] = None,
) -> RangeRequest:
    return RangeRequest(range_, if_range)


RangeDep = Annotated[RangeRequest, Depends(range_request)]


def parse_range(header: str) -> ByteRange | None:
    """The one byte range a Range header names, None when it names several; MalformedRange when it names
    none (read like Starlette's FileResponse: parts that are not ``a-b``, ``a-`` or ``-n`` are skipped)."""
    units, separator, spec = header.partition("=")
    if not separator or units.strip().lower() != "bytes":
        raise MalformedRange(f"Range {header[:100]!r}: only byte ranges (bytes=first-last) are served")
    ranges = []
    for part in spec.split(","):
        match = _PART.fullmatch(part)
        if match is None or match.groups() == ("", ""):
            continue
        first, last = match.groups()
        try:
            ranges.append(ByteRange(int(first) if first else None, int(last) if last else None))
        except ValueError as exc:
            raise MalformedRange(f"Range {header[:100]!r}: {exc}") from None
    if not ranges:
        raise MalformedRange(f"Range {header[:100]!r} names no byte range (bytes=first-last)")
    return ranges[0] if len(ranges) == 1 else None


def blob_response(
    store: BlobStore,
    ref: BlobRef,
    *,
    media_type: str,
    headers: Mapping[str, str],
    missing: str,
    ranges: RangeRequest | None = None,
) -> Response:
    """The blob's bytes, or the range of them ``ranges`` asks for; NotFound with the message ``missing``
    when it is not stored."""
    if isinstance(store, LocalBlobStore):
        path = store.path(ref)
        if not path.is_file():
            raise NotFound(missing)
        return FileResponse(path, media_type=media_type, headers=dict(headers))
    ranges = ranges or RangeRequest()
    byte_range = parse_range(ranges.range) if ranges.range is not None else None
    try:
        if byte_range is not None and ranges.if_range is not None:
            # resume only the same bytes the client holds part of; else it gets them all again
            whole = store.read(ref)
            if ranges.if_range != _etag(whole.etag):
                byte_range = None
        stream = store.read(ref, byte_range)
    except BlobMissing:
        raise NotFound(missing) from None
    except RangeNotSatisfiable as exc:
        raise RangeOutside(exc.size) from None
    answer = {**headers, "Accept-Ranges": "bytes", "Content-Length": str(stream.size)}
    if stream.etag is not None:
        answer["ETag"] = _etag(stream.etag)
    if byte_range is None:
        return StreamingResponse(stream.chunks, media_type=media_type, headers=answer)
    answer["Content-Range"] = f"bytes {stream.start}-{stream.start + stream.size - 1}/{stream.total}"
    return StreamingResponse(stream.chunks, status_code=206, media_type=media_type, headers=answer)


def _etag(value: str | None) -> str:
    return f'"{value}"' if value is not None else ""
