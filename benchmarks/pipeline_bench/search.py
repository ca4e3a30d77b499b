"""Searching the largest K that passes: doubling, then bisection."""

from __future__ import annotations

from typing import Any


class KSearch:
    """Largest K that passes: double from ``start`` until a failure (or ``max_k``), then bisect."""

    def __init__(self, start: int, max_k: int) -> None:
        self.max_k = max(1, max_k)
        self.start = min(max(1, start), self.max_k)
        self.passed = 0  # largest K that passed
        self.failed: int | None = None  # smallest K that failed
        self.tried: dict[int, bool] = {}

    def next_k(self) -> int | None:
        """The next K to try, or None when the search is done."""
        if not self.tried:
            return self.start
        if self.failed is None:  # still doubling
            if self.passed >= self.max_k:
                return None
            return min(self.passed * 2, self.max_k)
        if self.failed - self.passed <= 1:
            return None
        return (self.passed + self.failed) // 2

    def record(self, k: int, passed: bool) -> None:
        self.tried[k] = passed
        if passed:
            self.passed = max(self.passed, k)
        else:
            self.failed = k if self.failed is None else min(self.failed, k)

    @property
    def done(self) -> bool:
        return self.next_k() is None

    def result(self) -> dict[str, Any]:
        return {
            "cameras": self.passed,
            "first_failure": self.failed,
            "exact": self.done,
            "tried": {str(k): v for k, v in sorted(self.tried.items())},
        }
