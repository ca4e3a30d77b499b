"""Typed errors of the dataset tooling (converters, reviewed-case export, evaluation, training).

Every message names the file, line, annotation or case it is about and says what was expected, so a
user reading one ``error:`` line knows what to fix.
"""

from __future__ import annotations


class DatasetError(Exception):
    """Base of every error raised by the dataset tooling."""


class LabelError(DatasetError):
    """A YOLO label file or dataset YAML is malformed (the message names the file and line)."""


class CocoError(DatasetError):
    """A COCO annotation file is malformed (the message names the annotation, image or category id)."""


class ExportError(DatasetError):
    """Reviewed cases cannot become a dataset: no evidence, an unmapped class, nothing to export."""


class TrainError(DatasetError):
    """Training cannot start or finish: the train extra is missing, bad arguments, Ultralytics failed."""
