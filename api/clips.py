"""Evidence clips (kind ``clip``): MP4s of a camera's own video, remuxed by the edge box without
re-encoding (:mod:`pipeline.clips`). Persons in them are NOT blurred, so only the roles that may see
unredacted video get them (:data:`CLIP_ROLES`: the shift leader who files, the dispatcher who sends a
unit, the admin); a viewer and a unit handler (who works from the redacted pictures and goes to the place)
do not, and the case page does not offer them the clip. Every time a clip is opened it is recorded in the
case's audit trail (``clip_viewed``).

An upload is accepted only as a whole MP4 within ``clip_max_bytes`` (an ``ftyp`` box first) whose first
video frame decodes, at most ``clip_max_pixels`` a frame and ``clip_max_s`` long.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import av
import av.error

from api.actors import Actor
from api.errors import Forbidden, InvalidInput, PayloadTooLarge
from api.models import Role

CLIP_CONTENT_TYPE = "video/mp4"
CLIP_ROLES = frozenset({Role.ADMIN, Role.SHIFT_LEADER, Role.DISPATCHER})
_FTYP = b"ftyp"


@dataclass(frozen=True)
class CheckedClip:
    content_type: str
    width: int
    height: int
    duration_s: float


def may_see_clips(actor: Actor) -> bool:
    return actor.role in CLIP_ROLES


def require_clip_role(actor: Actor) -> None:
    if not may_see_clips(actor):
        raise Forbidden(
            "evidence clips are unredacted video: only shift leaders, dispatchers and admins may see them"
        )


def check_clip(data: bytes, max_bytes: int, *, max_pixels: int, max_s: float) -> CheckedClip:
    """Accept ``data`` only if it is an MP4 with a video stream whose first frame decodes."""
    if len(data) > max_bytes:
        raise PayloadTooLarge(
            f"evidence clip is larger than the limit of {max_bytes} bytes", field="file", max_bytes=max_bytes
        )
    if len(data) < 12 or data[4:8] != _FTYP:
        raise InvalidInput(
            f"not an MP4 (no 'ftyp' box at the start: {data[:12].hex()}); an evidence clip must be MP4",
            field="file",
        )
    try:
        with av.open(io.BytesIO(data), "r", format="mp4") as container:
            if not container.streams.video:
                raise InvalidInput("the MP4 has no video stream", field="file")
            stream = container.streams.video[0]
            width, height = stream.codec_context.width, stream.codec_context.height
            if width * height > max_pixels:
                raise PayloadTooLarge(
                    f"clip is {width}x{height} pixels, more than the limit of {max_pixels}",
                    field="file",
                    max_pixels=max_pixels,
                )
            duration_s = float(container.duration or 0) / av.time_base
            if duration_s > max_s:
                raise InvalidInput(f"clip is {duration_s:.1f} s long, more than {max_s:g} s", field="file")
            frame = next(container.decode(stream), None)
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise InvalidInput(f"the MP4 does not decode: corrupt or truncated ({exc})", field="file") from exc
    if frame is None:
        raise InvalidInput("the MP4 holds no decodable video frame", field="file")
    return CheckedClip(CLIP_CONTENT_TYPE, int(width), int(height), duration_s)
