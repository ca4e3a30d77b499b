"""Resolve a model reference (a card or a bare .onnx) into a checked card and a ready session."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detector.card import ModelCard, is_card_path, merge_card, read_card_fields, sha256_of
from detector.decoders import expected_output_shape, output_matches_layout
from detector.errors import ChecksumMismatchError, ModelFileError, UnknownLayoutError
from detector.model_info import ModelInfo, base_card_fields, layout_input_defaults, model_info_from_session
from detector.session import SessionSettings, check_model_file, create_session


@dataclass(frozen=True)
class LoadedModel:
    card: ModelCard
    card_path: Path | None
    info: ModelInfo
    session: Any


def load_model(
    reference: str | Path,
    *,
    provider: str = "cpu",
    intra_op_threads: int | None = None,
    inter_op_threads: int | None = None,
    settings: SessionSettings | None = None,
) -> LoadedModel:
    """Load ``reference`` (``models/x.yaml`` or ``x.onnx``), verifying checksum and output layout."""
    reference = Path(reference)
    card_path = reference if is_card_path(reference) else None
    card_fields: dict[str, Any] = read_card_fields(reference) if card_path else {}
    onnx_path = Path(card_fields.get("path", reference))
    check_model_file(onnx_path)
    if card_fields.get("sha256"):
        found = sha256_of(onnx_path)
        if found != card_fields["sha256"]:
            raise ChecksumMismatchError(
                onnx_path, expected=card_fields["sha256"], found=found, card=card_path
            )
    session = create_session(
        onnx_path,
        provider=provider,
        intra_op_threads=intra_op_threads,
        inter_op_threads=inter_op_threads,
        settings=settings,
    )
    info = model_info_from_session(onnx_path, session)
    base = base_card_fields(info)
    layout = card_fields.get("layout", base.get("layout"))
    base["input"] = {**layout_input_defaults(layout), **base["input"]}
    card = merge_card(base, card_fields, card_path=card_path, source=onnx_path)
    check_output_layout(card, info)
    return LoadedModel(card=card, card_path=card_path, info=info, session=session)


def check_output_layout(card: ModelCard, info: ModelInfo) -> None:
    if len(info.outputs) != 1:
        names = ", ".join(f"{t.name} {list(t.shape)}" for t in info.outputs)
        raise UnknownLayoutError(
            info.path, f"expected a single output tensor, found {len(info.outputs)}: {names}"
        )
    shape = info.outputs[0].shape
    if not output_matches_layout(shape, card.layout, len(card.classes)):
        raise UnknownLayoutError(
            info.path,
            f"output '{info.outputs[0].name}' has shape {list(shape)}, expected "
            f"{expected_output_shape(card.layout, len(card.classes))} for layout '{card.layout.value}' "
            f"with {len(card.classes)} classes",
        )


__all__ = ["LoadedModel", "ModelFileError", "load_model"]
