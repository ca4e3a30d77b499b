"""Letterboxing frames into a reused input tensor, and mapping boxes back to frame pixels."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from detector.card import InputSpec
from detector.errors import FrameError


@dataclass(frozen=True, slots=True)
class Letterbox:
    """Where one frame sits inside the input tensor (same rounding as Ultralytics' LetterBox)."""

    frame_hw: tuple[int, int]
    resized_hw: tuple[int, int]
    pad_x: int  # left padding, input pixels
    pad_y: int  # top padding, input pixels

    @property
    def gain_xy(self) -> tuple[float, float]:
        return self.resized_hw[1] / self.frame_hw[1], self.resized_hw[0] / self.frame_hw[0]

    def boxes_to_frame(self, xyxy: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Map (N, 4) input-pixel boxes back to clipped frame pixels, in place."""
        gain_x, gain_y = self.gain_xy
        xyxy[:, 0::2] -= self.pad_x
        xyxy[:, 1::2] -= self.pad_y
        xyxy[:, 0::2] /= gain_x
        xyxy[:, 1::2] /= gain_y
        np.clip(xyxy[:, 0::2], 0, self.frame_hw[1], out=xyxy[:, 0::2])
        np.clip(xyxy[:, 1::2], 0, self.frame_hw[0], out=xyxy[:, 1::2])
        return xyxy


def check_frame(frame: object, index: int = 0) -> npt.NDArray[np.uint8]:
    """A frame must be a non-empty HxWx3 uint8 BGR array (OpenCV / PyAV ``bgr24`` convention)."""
    if not isinstance(frame, np.ndarray):
        raise FrameError(f"frame {index}: expected a numpy array (HxWx3 uint8 BGR), got {type(frame).__name__}")
    if frame.size == 0:
        raise FrameError(f"frame {index}: empty frame (shape {frame.shape}), expected HxWx3 uint8 BGR")
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise FrameError(f"frame {index}: shape {frame.shape}, expected HxWx3 (three colour channels, BGR)")
    if frame.dtype != np.uint8:
        raise FrameError(f"frame {index}: dtype {frame.dtype}, expected uint8 (0-255 BGR pixels)")
    return frame


class Preprocessor:
    """Fills a preallocated NCHW tensor from BGR frames according to a model card's input spec."""

    def __init__(self, spec: InputSpec, dtype: npt.DTypeLike = np.float32) -> None:
        self.spec = spec
        self.dtype = np.dtype(dtype)
        self._scale = np.array(1.0 / 255.0 if spec.pixel_range == "0-1" else 1.0, dtype=self.dtype)
        self._tensors: dict[tuple[int, int, int], npt.NDArray[np.floating]] = {}
        self._canvases: dict[tuple[int, int], npt.NDArray[np.uint8]] = {}

    def input_hw(self, frame_hw: tuple[int, int]) -> tuple[int, int]:
        """Input size for a frame: the card's size, or the smallest stride-multiple rectangle if dynamic."""
        target_h, target_w = self.spec.size_hw
        if not self.spec.dynamic:
            return target_h, target_w
        r = min(target_h / frame_hw[0], target_w / frame_hw[1])
        new_h, new_w = max(round(frame_hw[0] * r), 1), max(round(frame_hw[1] * r), 1)
        s = self.spec.stride
        return new_h + (target_h - new_h) % s, new_w + (target_w - new_w) % s

    def _tensor(self, batch: int, hw: tuple[int, int]) -> npt.NDArray[np.floating]:
        key = (batch, *hw)
        tensor = self._tensors.get(key)
        if tensor is None:
            if len(self._tensors) > 8:  # bound the cache when rectangular shapes vary
                self._tensors.clear()
            tensor = self._tensors[key] = np.empty((batch, 3, *hw), dtype=self.dtype)
        return tensor

    def _canvas(self, hw: tuple[int, int]) -> npt.NDArray[np.uint8]:
        canvas = self._canvases.get(hw)
        if canvas is None:
            if len(self._canvases) > 8:
                self._canvases.clear()
            canvas = self._canvases[hw] = np.empty((*hw, 3), dtype=np.uint8)
        return canvas

    def letterbox(self, frame: npt.NDArray[np.uint8], input_hw: tuple[int, int]) -> tuple[npt.NDArray[np.uint8], Letterbox]:
        """Resize ``frame`` into a reused canvas of ``input_hw``, padded with the card's pad value."""
        frame_hw = (frame.shape[0], frame.shape[1])
        in_h, in_w = input_hw
        r = min(in_h / frame_hw[0], in_w / frame_hw[1])
        new_h, new_w = max(round(frame_hw[0] * r), 1), max(round(frame_hw[1] * r), 1)
        if self.spec.letterbox == "center":
            pad_x, pad_y = round((in_w - new_w) / 2 - 0.1), round((in_h - new_h) / 2 - 0.1)
        else:
            pad_x = pad_y = 0
        canvas = self._canvas(input_hw)
        canvas.fill(self.spec.pad_value)
        region = canvas[pad_y : pad_y + new_h, pad_x : pad_x + new_w]
        if (new_h, new_w) == frame_hw:
            region[...] = frame
        else:
            region[...] = cv2.resize(frame, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
        return canvas, Letterbox(frame_hw, (new_h, new_w), pad_x, pad_y)

    def __call__(
        self, frames: Sequence[npt.NDArray[np.uint8]], batch_size: int | None = None, first_index: int = 0
    ) -> tuple[npt.NDArray[np.floating], list[Letterbox]]:
        """Tensor (batch_size or len(frames), 3, H, W) and one :class:`Letterbox` per frame.

        Rows past ``len(frames)`` (padding up to a fixed model batch) are left as they are.
        ``first_index`` numbers the frames in error messages when a caller splits a longer batch.
        """
        checked = [check_frame(f, first_index + i) for i, f in enumerate(frames)]
        shapes = [self.input_hw((f.shape[0], f.shape[1])) for f in checked]
        input_hw = (max(h for h, _ in shapes), max(w for _, w in shapes))
        tensor = self._tensor(batch_size or len(checked), input_hw)
        boxes = []
        for i, frame in enumerate(checked):
            canvas, box = self.letterbox(frame, input_hw)
            chw = canvas.transpose(2, 0, 1)
            if self.spec.channel_order == "rgb":
                chw = chw[::-1]
            np.multiply(chw, self._scale, out=tensor[i], dtype=self.dtype)
            boxes.append(box)
        return tensor, boxes
