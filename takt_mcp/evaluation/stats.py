"""Bootstrap confidence intervals and McNemar's exact test, on the standard library only."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")

DEFAULT_RESAMPLES = 2000
CONFIDENCE = 0.95


def percentile_interval(values: list[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Return the central `confidence` interval of bootstrap values (percentile method)."""
    ordered = sorted(values)
    tail = (1 - confidence) / 2
    last = len(ordered) - 1
    return ordered[math.floor(tail * last)], ordered[math.ceil((1 - tail) * last)]


def bootstrap(
    items: Sequence[T],
    statistic: Callable[[Sequence[T]], float | None],
    rng: random.Random,
    resamples: int = DEFAULT_RESAMPLES,
) -> tuple[float, float] | None:
    """Return a percentile interval of `statistic` over resamples of `items` with replacement.

    Resamples where the statistic is undefined (None) are dropped; with no
    items, or no defined resample, there is no interval.
    """
    if not items:
        return None
    values = []
    for _ in range(resamples):
        value = statistic(rng.choices(items, k=len(items)))
        if value is not None:
            values.append(value)
    return percentile_interval(values) if values else None


def share(outcomes: Sequence[bool]) -> float | None:
    return sum(outcomes) / len(outcomes) if outcomes else None


def mcnemar_exact(only_first: int, only_second: int) -> float:
    """Return the two-sided exact McNemar p-value from the two discordant counts.

    Under the null hypothesis each discordant pair falls either way with
    probability 1/2, so the smaller count follows Binomial(b + c, 1/2).
    """
    discordant = only_first + only_second
    if discordant == 0:
        return 1.0
    smaller = min(only_first, only_second)
    tail: float = sum(math.comb(discordant, k) for k in range(smaller + 1)) / 2**discordant
    return min(1.0, 2 * tail)
