"""Procedural street scenes with YOLO labels, and demo videos with scripted incidents.

Everything is drawn with numpy and OpenCV from a seed: the same seed gives the same pixels and labels.
The classes, in this fixed order (YOLO class ids 0..7), are :data:`CLASSES`.
"""

from __future__ import annotations

CLASSES: tuple[str, ...] = ("car", "truck", "bus", "motorcycle", "bicycle", "person", "stall", "garbage")
CLASS_ID: dict[str, int] = {name: index for index, name in enumerate(CLASSES)}
