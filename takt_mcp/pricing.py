"""Estimated cost in USD from token usage and a per-model price table."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from takt_mcp.schemas import Usage

TOKENS_PER_MILLION = 1_000_000


class Price(BaseModel):
    """List prices in USD per million tokens."""

    # A misspelt key would otherwise fall back to the input price unnoticed.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cache_read: float | None = Field(None, ge=0, description="Defaults to the input price.")
    cache_write: float | None = Field(None, ge=0, description="Defaults to the input price.")


# NOTE: vendor list prices as published in 2025 for models whose prices were
# known when this table was written; newer models are deliberately absent and
# report "unknown" until the user adds them with TAKT_PRICES.
BUILTIN_PRICES: dict[str, Price] = {
    "claude-opus-4": Price(input=15, output=75, cache_read=1.5, cache_write=18.75),
    "claude-sonnet-4": Price(input=3, output=15, cache_read=0.3, cache_write=3.75),
    "claude-3-5-haiku": Price(input=0.8, output=4, cache_read=0.08, cache_write=1),
    "gpt-4o-mini": Price(input=0.15, output=0.6, cache_read=0.075),
    "gpt-4o": Price(input=2.5, output=10, cache_read=1.25),
    "gpt-4.1-mini": Price(input=0.4, output=1.6, cache_read=0.1),
    "gpt-4.1": Price(input=2, output=8, cache_read=0.5),
    "gpt-5-mini": Price(input=0.25, output=2, cache_read=0.025),
    "gpt-5": Price(input=1.25, output=10, cache_read=0.125),
}


class PricingError(Exception):
    """The TAKT_PRICES file cannot be used; the message names the file and the fix."""


class PriceTable:
    """Prices by model id; the longest matching prefix wins, so dated ids match."""

    def __init__(self, prices: dict[str, Price]) -> None:
        self._prices = prices

    @classmethod
    def load(cls, override_file: Path | None) -> PriceTable:
        prices = dict(BUILTIN_PRICES)
        if override_file is not None:
            prices.update(_read_override(override_file))
        return cls(prices)

    def price(self, model: str) -> Price | None:
        matches = [name for name in self._prices if model == name or model.startswith(name + "-")]
        return self._prices[max(matches, key=len)] if matches else None

    def cost(self, model: str, usage: Usage) -> float | None:
        """Return the cost of `usage` in USD, or None when the model's price is unknown."""
        price = self.price(model)
        if price is None:
            return None
        cache_read = price.input if price.cache_read is None else price.cache_read
        cache_write = price.input if price.cache_write is None else price.cache_write
        total = (
            usage.input_tokens * price.input
            + usage.output_tokens * price.output
            + usage.cache_read_tokens * cache_read
            + usage.cache_write_tokens * cache_write
        )
        return round(total / TOKENS_PER_MILLION, 6)


def _read_override(path: Path) -> dict[str, Price]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise PricingError(f"TAKT_PRICES={path}: cannot read the price file: {error}") from None
    if not isinstance(data, dict):
        raise PricingError(
            f"TAKT_PRICES={path}: expected a JSON object mapping model ids to prices, e.g. "
            '{"my-model": {"input": 1.0, "output": 2.0}} (USD per million tokens).'
        )
    prices = {}
    for model, entry in data.items():
        try:
            prices[str(model)] = Price.model_validate(entry)
        except ValidationError as error:
            raise PricingError(
                f"TAKT_PRICES={path}: invalid price for {model!r}: "
                f"{error.errors()[0]['msg']}. Give input and output in USD per million tokens."
            ) from None
    return prices
