"""What a model is shown of a camera's frame."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from pipeline.protocols import FrameLike


def detector_frame(frame: FrameLike) -> npt.NDArray[np.uint8]:
    """What the detector sees: the source's downscaled copy when it made one, else the full frame."""
    return frame.small if frame.small is not None else frame.image
