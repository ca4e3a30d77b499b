"""Frames in, :class:`Detections` out: ONNX Runtime sessions, letterboxing, output decoders and NMS."""

from detector.card import InputSpec, Layout, ModelCard, Thresholds
from detector.detections import Detections
from detector.detector import Detector
from detector.errors import (
    ChecksumMismatchError,
    DetectorError,
    FrameError,
    ModelCardError,
    ModelFileError,
    ModelInputError,
    UnknownLayoutError,
)

__all__ = [
    "ChecksumMismatchError",
    "Detections",
    "Detector",
    "DetectorError",
    "FrameError",
    "InputSpec",
    "Layout",
    "ModelCard",
    "ModelCardError",
    "ModelFileError",
    "ModelInputError",
    "Thresholds",
    "UnknownLayoutError",
]
