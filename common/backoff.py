"""Exponential backoff with "equal jitter", shared by every retry loop.

After the n-th failure in a row the ceiling is ``min(cap_s, base_s * 2**(n-1))`` and the wait is drawn
uniformly from its upper half ``[ceiling/2, ceiling]``: many clients that failed together (boxes that lost
the case store, cameras behind one switch, deliveries to one unit) come back spread out instead of in
lock-step, and never sooner than half the ceiling, so never in a tight loop.
"""

from __future__ import annotations

import random
from collections.abc import Callable

# 2.0 ** 1024 raises OverflowError; every cap is reached long before this many doublings.
_MAX_DOUBLINGS = 1023


def backoff_s(
    failures: int, *, base_s: float, cap_s: float, rng: Callable[[], float] = random.random
) -> float:
    """Seconds to wait after ``failures`` failed attempts in a row (1 for the first failure).

    ``rng`` returns a float in [0, 1) (``random.random``, or a seeded ``Random(...).random``); it is called
    once per delay, as ``random.Random.uniform`` would, so a seeded generator gives the same delays.
    """
    doublings = min(max(failures - 1, 0), _MAX_DOUBLINGS)
    ceiling = min(cap_s, base_s * 2.0**doublings)
    return ceiling / 2 + rng() * ceiling / 2


class Backoff:
    """:func:`backoff_s` that counts the failures itself: :meth:`next_delay` after each, :meth:`reset` on
    success. The first delay is drawn under ``min_s``, then the ceiling doubles up to ``max_s``."""

    def __init__(self, min_s: float, max_s: float, rng: random.Random | None = None) -> None:
        self.min_s = min_s
        self.max_s = max_s
        self.attempt = 0  # failures so far
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        self.attempt += 1
        return backoff_s(self.attempt, base_s=self.min_s, cap_s=self.max_s, rng=self._rng.random)

    def reset(self) -> None:
        self.attempt = 0
