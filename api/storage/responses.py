"""A stored blob as an HTTP response: the file itself from the local store (sendfile, ranges), a stream
of chunks from the database store (never the whole blob in memory)."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi.responses import FileResponse, Response, StreamingResponse

from api.errors import NotFound
from api.storage.base import BlobMissing, BlobRef, BlobStore
from api.storage.local import LocalBlobStore


def blob_response(
    store: BlobStore, ref: BlobRef, *, media_type: str, headers: Mapping[str, str], missing: str
) -> Response:
    """The blob's bytes; NotFound with the message ``missing`` when it is not stored."""
    if isinstance(store, LocalBlobStore):
        path = store.path(ref)
        if not path.is_file():
            raise NotFound(missing)
        return FileResponse(path, media_type=media_type, headers=dict(headers))
    try:
        stream = store.read(ref)
    except BlobMissing:
        raise NotFound(missing) from None
    return StreamingResponse(
        stream.chunks, media_type=media_type, headers={**headers, "Content-Length": str(stream.size)}
    )
