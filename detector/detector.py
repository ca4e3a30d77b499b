"""The detector: BGR frames in, :class:`Detections` in frame pixels out."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from detector.card import ModelCard
from detector.decoders import DECODERS
from detector.detections import Detections
from detector.loader import LoadedModel, load_model
from detector.model_info import SUPPORTED_INPUT_TYPES, check_image_input
from detector.nms import batched_nms, top_k_indices
from detector.preprocess import Letterbox, Preprocessor
from detector.session import SessionSettings

log = logging.getLogger(__name__)


class Detector:
    """An ONNX object detector described by a model card.

    Args:
        model: a model card (``.yaml``) or an ONNX file (Ultralytics metadata fills the card).
        provider: ``cpu`` (default), ``cuda``, ``tensorrt`` or ``openvino``; falls back to CPU with a warning.
        confidence, iou, max_detections: override the card's thresholds.
        intra_op_threads, inter_op_threads: ONNX Runtime thread pools (None: its defaults).
        settings: the whole session configuration (threads, spinning, providers with options, fallback);
            when given it wins over ``provider`` and the thread arguments.
        warmup: run once on a dummy tensor so the first real frame is not slow.
    """

    def __init__(
        self,
        model: str | Path,
        *,
        provider: str = "cpu",
        confidence: float | None = None,
        iou: float | None = None,
        max_detections: int | None = None,
        intra_op_threads: int | None = None,
        inter_op_threads: int | None = None,
        settings: SessionSettings | None = None,
        warmup: bool = True,
    ) -> None:
        self.loaded: LoadedModel = load_model(
            model,
            provider=provider,
            intra_op_threads=intra_op_threads,
            inter_op_threads=inter_op_threads,
            settings=settings,
        )
        card = self.loaded.card
        # A class's working threshold below the card's confidence must still see its boxes.
        lowest = min([card.thresholds.confidence, *card.thresholds.classes.values()])
        self.confidence = lowest if confidence is None else confidence
        self.iou = card.thresholds.iou if iou is None else iou
        self.max_detections = card.thresholds.max_detections if max_detections is None else max_detections
        self.session = self.loaded.session
        image_input = check_image_input(self.loaded.info)
        self.input_name = image_input.name
        self.output_name = self.loaded.info.outputs[0].name
        batch_dim = image_input.shape[0]
        self.fixed_batch: int | None = batch_dim if isinstance(batch_dim, int) else None
        self.preprocessor = Preprocessor(card.input, dtype=SUPPORTED_INPUT_TYPES[image_input.dtype])
        self._decode = DECODERS[card.layout]
        self._strides = tuple(card.strides)
        if warmup:
            self.warmup()

    @property
    def card(self) -> ModelCard:
        return self.loaded.card

    @property
    def class_names(self) -> list[str]:
        return self.loaded.card.classes

    @property
    def providers(self) -> list[str]:
        return list(self.session.get_providers())

    def warmup(self) -> None:
        """One run on a zero tensor: allocates ORT's buffers and kernels before the first real frame."""
        h, w = self.card.input.size_hw
        dummy = np.zeros((self.fixed_batch or 1, 3, h, w), dtype=self.preprocessor.dtype)
        self.session.run([self.output_name], {self.input_name: dummy})

    def __call__(self, frame: npt.NDArray[np.uint8]) -> Detections:
        """Detect objects in one HxWx3 uint8 BGR frame."""
        return self.detect_batch([frame])[0]

    def detect_batch(
        self, frames: Sequence[npt.NDArray[np.uint8]], max_scale: Sequence[float | None] | None = None
    ) -> list[Detections]:
        """Detect objects in several frames, in one ONNX Runtime call per model batch.

        ``max_scale``: per frame, the most it may be enlarged to fit the model's input (1.0: never, so a
        model of dynamic input size runs a small frame at its own size); None: frames fill the input."""
        step = self.fixed_batch or max(len(frames), 1)
        results: list[Detections] = []
        for start in range(0, len(frames), step):
            chunk = frames[start : start + step]
            caps = None if max_scale is None else max_scale[start : start + step]
            tensor, boxes = self.preprocessor(
                chunk, batch_size=self.fixed_batch, first_index=start, max_scale=caps
            )
            output = self.session.run([self.output_name], {self.input_name: tensor})[0]
            input_hw = (tensor.shape[2], tensor.shape[3])
            results.extend(self._postprocess(output[i], boxes[i], input_hw) for i in range(len(chunk)))
        return results

    def _postprocess(
        self, output: npt.NDArray[np.float32], box: Letterbox, input_hw: tuple[int, int]
    ) -> Detections:
        if output.dtype != np.float32:
            output = output.astype(np.float32)
        found = self._decode(output, self.confidence, input_hw=input_hw, strides=self._strides)
        if found.needs_nms:
            keep = batched_nms(
                found.xyxy,
                found.confidence,
                found.class_id,
                iou_threshold=self.iou,
                max_detections=self.max_detections,
            )
        else:
            keep = top_k_indices(found.confidence, self.max_detections)
        xyxy = box.boxes_to_frame(found.xyxy[keep])
        return Detections(xyxy=xyxy, confidence=found.confidence[keep], class_id=found.class_id[keep])
