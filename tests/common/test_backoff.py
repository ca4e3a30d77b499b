from __future__ import annotations

import random

import pytest

from common.backoff import Backoff, backoff_s


@pytest.mark.parametrize(
    ("failures", "ceiling"),
    [(0, 2.0), (1, 2.0), (2, 4.0), (3, 8.0), (4, 10.0), (10_000, 10.0)],
)
def test_the_ceiling_doubles_per_failure_up_to_the_cap(failures: int, ceiling: float) -> None:
    assert backoff_s(failures, base_s=2.0, cap_s=10.0, rng=lambda: 0.0) == ceiling / 2
    assert backoff_s(failures, base_s=2.0, cap_s=10.0, rng=lambda: 1.0) == ceiling


def test_a_seeded_generator_gives_the_same_delays_as_uniform_over_the_upper_half() -> None:
    # Callers seeded random.Random and drew uniform(ceiling/2, ceiling): the same seed keeps its delays.
    mine, theirs = random.Random(7), random.Random(7)
    for failures in range(1, 12):
        ceiling = min(60.0, 1.0 * 2.0 ** (failures - 1))
        expected = theirs.uniform(ceiling / 2, ceiling)
        assert backoff_s(failures, base_s=1.0, cap_s=60.0, rng=mine.random) == expected


def test_backoff_counts_failures_and_starts_over_on_reset() -> None:
    backoff = Backoff(1.0, 60.0, random.Random(3))
    reference = random.Random(3)
    expected = [reference.uniform(c / 2, c) for c in (1.0, 2.0, 4.0)]
    assert [backoff.next_delay() for _ in range(3)] == expected
    backoff.reset()
    assert backoff.attempt == 0
    assert backoff.next_delay() == reference.uniform(0.5, 1.0)
