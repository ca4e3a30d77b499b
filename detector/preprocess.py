"""Letterboxing frames into a reused input tensor, and mapping boxes back to frame pixels."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import cv2
import numpy as np
import numpy.typing as npt

from detector.card import InputSpec
from detector.errors import FrameError

MAX_CACHED_SHAPES = 8  # reused buffers per shape; bounded because rectangular inputs and frame sizes vary


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


def fill_outside(
    chw: npt.NDArray[np.floating], top: int, left: int, height: int, width: int, value: np.floating
) -> None:
    """Set ``chw`` (C, H, W) outside the rectangle (top, left, height, width) to ``value``: the padding."""
    chw[:, :top] = value
    chw[:, top + height :] = value
    chw[:, top : top + height, :left] = value
    chw[:, top : top + height, left + width :] = value


def reused_buffer(
    cache: dict[tuple[int, ...], npt.NDArray[Any]], shape: tuple[int, ...], dtype: npt.DTypeLike
) -> npt.NDArray[Any]:
    """A buffer of ``shape`` kept in ``cache`` between calls; the cache is bounded for varying sizes."""
    buffer = cache.get(shape)
    if buffer is None:
        if len(cache) >= MAX_CACHED_SHAPES:
            cache.clear()
        buffer = cache[shape] = np.empty(shape, dtype)
    return buffer


def check_frame(frame: object, index: int = 0) -> npt.NDArray[np.uint8]:
    """A frame must be a non-empty HxWx3 uint8 BGR array (OpenCV / PyAV ``bgr24`` convention)."""
    if not isinstance(frame, np.ndarray):
        raise FrameError(
            f"frame {index}: expected a numpy array (HxWx3 uint8 BGR), got {type(frame).__name__}"
        )
    if frame.size == 0:
        raise FrameError(f"frame {index}: empty frame (shape {frame.shape}), expected HxWx3 uint8 BGR")
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise FrameError(f"frame {index}: shape {frame.shape}, expected HxWx3 (three colour channels, BGR)")
    if frame.dtype != np.uint8:
        raise FrameError(f"frame {index}: dtype {frame.dtype}, expected uint8 (0-255 BGR pixels)")
    return frame


@dataclass
class _Buffers:
    """One thread's reused buffers, by shape: tensors, resized images, de-interleaved planes."""

    tensors: dict[tuple[int, ...], npt.NDArray[Any]] = field(default_factory=dict)
    images: dict[tuple[int, ...], npt.NDArray[Any]] = field(default_factory=dict)
    planars: dict[tuple[int, ...], npt.NDArray[Any]] = field(default_factory=dict)


class Preprocessor:
    """Fills a preallocated NCHW tensor from BGR frames according to a model card's input spec.

    Per frame: resize into a reused buffer, de-interleave it with ``cv2.split`` (SIMD) into reused
    planes, then convert them into the tensor in one contiguous pass (a cast, or a table lookup for
    ``v / 255``); the padding is filled, never converted. A strided uint8->float transpose of a padded
    canvas costs 2-3x as much (over 10x for float16).
    """

    def __init__(self, spec: InputSpec, dtype: npt.DTypeLike = np.float32) -> None:
        self.spec = spec
        self.dtype = np.dtype(dtype)
        # Divide, not multiply by 1/255: the reciprocal is one ulp off for half the pixel values, and
        # dividing gives the very tensor Ultralytics feeds (same outputs, box for box, at any threshold).
        self._divisor = np.array(255.0 if spec.pixel_range == "0-1" else 1.0, dtype=self.dtype)
        self._pad = np.divide(np.uint8(spec.pad_value), self._divisor, dtype=self.dtype)
        # The same divide, tabulated for all 256 pixel values: cv2.LUT then converts in one exact pass.
        self._table = np.divide(np.arange(256, dtype=np.uint8), self._divisor, dtype=self.dtype)
        self._split_order = (2, 1, 0) if spec.channel_order == "rgb" else (0, 1, 2)  # split yields B, G, R
        # the reused buffers belong to the calling thread: inference workers share one preprocessor
        self._local = threading.local()

    def _buffers(self) -> _Buffers:
        """This thread's buffer caches."""
        buffers: _Buffers | None = getattr(self._local, "buffers", None)
        if buffers is None:
            buffers = self._local.buffers = _Buffers()
        return buffers

    def input_hw(self, frame_hw: tuple[int, int], max_scale: float | None = None) -> tuple[int, int]:
        """Input size for a frame: the card's size, or the smallest stride-multiple rectangle if dynamic.

        ``max_scale``: the frame is enlarged by at most this factor (1.0: never; a dynamic model then runs
        a small frame at its own size, rounded up to the stride); None: it fills the card's size."""
        target_h, target_w = self.spec.size_hw
        if not self.spec.dynamic:
            return target_h, target_w
        r = _scale(target_h / frame_hw[0], target_w / frame_hw[1], max_scale)
        new_h, new_w = max(round(frame_hw[0] * r), 1), max(round(frame_hw[1] * r), 1)
        s = self.spec.stride
        return new_h + (target_h - new_h) % s, new_w + (target_w - new_w) % s

    def place(
        self, frame_hw: tuple[int, int], input_hw: tuple[int, int], max_scale: float | None = None
    ) -> Letterbox:
        """Where a frame of ``frame_hw`` sits inside an input of ``input_hw`` (enlarged at most
        ``max_scale`` times; None: as much as fits)."""
        in_h, in_w = input_hw
        r = _scale(in_h / frame_hw[0], in_w / frame_hw[1], max_scale)
        new_h, new_w = max(round(frame_hw[0] * r), 1), max(round(frame_hw[1] * r), 1)
        if self.spec.letterbox == "center":
            pad_x, pad_y = round((in_w - new_w) / 2 - 0.1), round((in_h - new_h) / 2 - 0.1)
        else:
            pad_x = pad_y = 0
        return Letterbox(frame_hw, (new_h, new_w), pad_x, pad_y)

    def resize(self, frame: npt.NDArray[np.uint8], box: Letterbox) -> npt.NDArray[np.uint8]:
        """``frame`` at its letterboxed size, in a reused buffer (``frame`` itself when already that size)."""
        if box.resized_hw == box.frame_hw:
            return frame
        new_h, new_w = box.resized_hw
        buffer = reused_buffer(self._buffers().images, (new_h, new_w, 3), np.uint8)
        resized = cv2.resize(frame, (new_w, new_h), dst=buffer, interpolation=cv2.INTER_LINEAR)
        return cast(npt.NDArray[np.uint8], resized)  # ``buffer`` itself when OpenCV wrote in place

    def to_chw(self, image: npt.NDArray[np.uint8], box: Letterbox, out: npt.NDArray[np.floating]) -> None:
        """Write the resized HxWx3 ``image`` into ``out`` (3, H, W): the card's order, range and padding."""
        h, w = box.resized_hw
        planar = reused_buffer(self._buffers().planars, (3, h, w), np.uint8)
        cv2.split(image, [planar[c] for c in self._split_order])  # fills the planes in place
        region = out[:, box.pad_y : box.pad_y + h, box.pad_x : box.pad_x + w]
        if self.spec.pixel_range == "0-255":
            np.copyto(region, planar, casting="unsafe")  # exact: every uint8 value is representable
        else:
            for plane, target in zip(planar, region, strict=True):
                written = cv2.LUT(plane, self._table, dst=target)
                if written is not target:  # an OpenCV build that copies strided views instead of filling them
                    target[...] = written
        fill_outside(out, box.pad_y, box.pad_x, h, w, self._pad)

    def letterbox(
        self, frame: npt.NDArray[np.uint8], input_hw: tuple[int, int]
    ) -> tuple[npt.NDArray[np.uint8], Letterbox]:
        """The padded HxWx3 BGR input image of one frame (to look at; the tensor path never builds it)."""
        box = self.place((frame.shape[0], frame.shape[1]), input_hw)
        canvas = np.full((*input_hw, 3), self.spec.pad_value, np.uint8)
        h, w = box.resized_hw
        canvas[box.pad_y : box.pad_y + h, box.pad_x : box.pad_x + w] = self.resize(frame, box)
        return canvas, box

    def __call__(
        self,
        frames: Sequence[npt.NDArray[np.uint8]],
        batch_size: int | None = None,
        first_index: int = 0,
        max_scale: Sequence[float | None] | None = None,
    ) -> tuple[npt.NDArray[np.floating], list[Letterbox]]:
        """Tensor (batch_size or len(frames), 3, H, W) and one :class:`Letterbox` per frame.

        Rows past ``len(frames)`` (padding up to a fixed model batch) are left as they are.
        ``first_index`` numbers the frames in error messages when a caller splits a longer batch.
        ``max_scale``: per frame, the most it may be enlarged (see :meth:`input_hw`); None: fill.
        """
        checked = [check_frame(f, first_index + i) for i, f in enumerate(frames)]
        caps = list(max_scale) if max_scale is not None else [None] * len(checked)
        if len(caps) != len(checked):
            raise ValueError(f"{len(caps)} max_scale values for {len(checked)} frames")
        shapes = [self.input_hw((f.shape[0], f.shape[1]), cap) for f, cap in zip(checked, caps, strict=True)]
        input_hw = (max(h for h, _ in shapes), max(w for _, w in shapes))
        shape = (batch_size or len(checked), 3, *input_hw)
        tensor = reused_buffer(self._buffers().tensors, shape, self.dtype)
        boxes = []
        for i, frame in enumerate(checked):
            box = self.place((frame.shape[0], frame.shape[1]), input_hw, caps[i])
            self.to_chw(self.resize(frame, box), box, tensor[i])
            boxes.append(box)
        return tensor, boxes


def _scale(scale_h: float, scale_w: float, max_scale: float | None) -> float:
    """The letterbox factor: the largest that fits both sides, capped at ``max_scale`` when given."""
    fit = min(scale_h, scale_w)
    return fit if max_scale is None else min(fit, max_scale)
