"""Typed errors of the edge daemon; each message names what is wrong and where."""

from __future__ import annotations


class PipelineError(Exception):
    """Base of every error raised by :mod:`pipeline`."""
