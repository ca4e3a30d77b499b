"""Typed errors of the detector package.

Every message says what was expected and what was found, and names the file it is about, so a user
reading a log line knows what to fix without opening the code.
"""

from __future__ import annotations

from pathlib import Path


class DetectorError(Exception):
    """Base of every error raised by :mod:`detector`."""


class ModelFileError(DetectorError):
    """The model file is missing, unreadable, or not an ONNX model."""

    def __init__(self, path: Path | str, problem: str) -> None:
        self.path = Path(path)
        super().__init__(f"{path}: {problem}")


class ChecksumMismatchError(ModelFileError):
    """The model file's sha256 differs from the one its card pins."""

    def __init__(self, path: Path | str, *, expected: str, found: str, card: Path | str | None) -> None:
        origin = f" (pinned by card {card})" if card else ""
        super().__init__(path, f"sha256 mismatch: expected {expected}{origin}, found {found}")
        self.expected = expected
        self.found = found


class ModelCardError(DetectorError):
    """The model card is not valid YAML or has a wrong field."""

    def __init__(self, path: Path | str, problem: str) -> None:
        self.path = Path(path)
        super().__init__(f"{path}: {problem}")


class UnknownLayoutError(ModelFileError):
    """The model's output tensor matches none of the layouts streetwatch decodes."""


class ModelInputError(ModelFileError):
    """The model's input tensor is not an image batch streetwatch can feed."""


class FrameError(DetectorError, ValueError):
    """A frame handed to the detector is empty or has the wrong dtype, shape or channels."""


class QuantizeError(DetectorError):
    """A model cannot be quantized (already INT8, no detection head found, quantization tools missing)."""
