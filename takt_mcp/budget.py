"""The optional daily spend cap (TAKT_BUDGET_USD), kept on disk across restarts."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

from takt_mcp.store import open_private_cache

logger = logging.getLogger(__name__)


class BudgetExceededError(Exception):
    """A call would take today's spend over TAKT_BUDGET_USD."""


def today() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d")


class SpendTracker:
    """Spend in USD per UTC day, in its own owner-only store."""

    def __init__(self, path: Path, daily_budget_usd: float) -> None:
        self.path = path
        self.daily_budget_usd = daily_budget_usd
        self._cache = open_private_cache(path, "spend record", eviction_policy="none")

    def spent(self, day: str | None = None) -> float:
        return float(self._cache.get(f"spend:{day or today()}", 0.0))

    def check(self, estimate_usd: float) -> None:
        """Raise BudgetExceededError when the estimate would exceed today's budget."""
        spent = self.spent()
        if spent + estimate_usd > self.daily_budget_usd:
            raise BudgetExceededError(
                f"Daily budget reached: ${spent:.4f} spent today (UTC) of "
                f"${self.daily_budget_usd:.2f} (TAKT_BUDGET_USD), and this call may cost up "
                f"to ${estimate_usd:.4f}. Wait until tomorrow (UTC) or raise the budget."
            )

    def record(self, cost_usd: float) -> None:
        key = f"spend:{today()}"
        with self._cache.transact():
            self._cache.set(key, self.spent() + cost_usd)
        logger.debug("recorded $%.6f; today's spend is $%.6f", cost_usd, self.spent())

    def close(self) -> None:
        self._cache.close()
