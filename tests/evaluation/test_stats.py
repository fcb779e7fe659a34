"""Bootstrap intervals and McNemar's exact test."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from takt_mcp.evaluation.stats import bootstrap, mcnemar_exact, percentile_interval, share


def test_mcnemar_without_discordant_pairs_is_one() -> None:
    assert mcnemar_exact(0, 0) == 1.0


def test_mcnemar_known_value() -> None:
    # Five discordant pairs all one way: 2 x (1/2)^5.
    assert mcnemar_exact(0, 5) == pytest.approx(0.0625)
    assert mcnemar_exact(1, 9) == pytest.approx(2 * 11 / 1024)


@given(st.integers(0, 60), st.integers(0, 60))
def test_mcnemar_symmetric_and_bounded(only_first: int, only_second: int) -> None:
    p_value = mcnemar_exact(only_first, only_second)

    assert 0 < p_value <= 1
    assert p_value == mcnemar_exact(only_second, only_first)


def test_mcnemar_balanced_counts_not_significant() -> None:
    assert mcnemar_exact(7, 7) == 1.0


def test_percentile_interval_of_known_values() -> None:
    values = [float(v) for v in range(101)]

    assert percentile_interval(values) == (2.0, 98.0)


def test_bootstrap_repeats_with_same_seed() -> None:
    outcomes = [True, False, True, True, False, False, True]

    first = bootstrap(outcomes, share, random.Random(1), 500)
    second = bootstrap(outcomes, share, random.Random(1), 500)

    assert first == second


def test_bootstrap_of_nothing_is_none() -> None:
    assert bootstrap([], share, random.Random(0)) is None


def test_bootstrap_drops_undefined_resamples() -> None:
    def only_with_true(sample: list[bool]) -> float | None:
        return 1.0 if any(sample) else None

    interval = bootstrap([True, False], only_with_true, random.Random(0), 200)

    assert interval == (1.0, 1.0)


@given(st.lists(st.booleans(), min_size=1, max_size=40), st.integers(0, 2**16))
def test_rate_interval_bounds(outcomes: list[bool], seed: int) -> None:
    interval = bootstrap(outcomes, share, random.Random(seed), 200)

    assert interval is not None
    low, high = interval
    assert 0 <= low <= high <= 1


def test_share_of_nothing_is_none() -> None:
    assert share([]) is None
    assert share([True, False, False, True]) == 0.5
