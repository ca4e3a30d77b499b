"""Real MP4 evidence clips for store and console tests: the first seconds of real footage remuxed (the
camera's own H.264, no re-encoding), as an edge box's pipeline.clips makes them."""

from __future__ import annotations

import io
from pathlib import Path

import av


def clip_bytes(video: Path, seconds: float = 2.0) -> bytes:
    """The packets of ``video``'s first ``seconds`` (from its first keyframe) as a faststart MP4."""
    buffer = io.BytesIO()
    with av.open(str(video)) as source:
        stream = source.streams.video[0]
        packets = []
        for packet in source.demux(stream):
            if packet.size == 0 or packet.pts is None:
                continue
            if not packets and not packet.is_keyframe:
                continue
            if float(packet.pts * stream.time_base) > seconds:
                break
            packets.append(packet)
        with av.open(buffer, "w", format="mp4") as output:
            out = output.add_stream_from_template(stream)
            for packet in packets:
                packet.stream = out
                output.mux(packet)
    return buffer.getvalue()
