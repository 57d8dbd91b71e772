"""What the built-in strategies share: which bars they follow, their history and the ATR."""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field

from tradeguard import Bar, PluginSettings
from tradeguard.core.bars import true_ranges


class StrategySettings(PluginSettings):
    symbols: list[str] = Field(default_factory=list, description="symbols it trades; empty = any")
    timeframe: str = Field(default="H1", description="the bars it reads")
    atr_period: int = Field(default=14, ge=2, le=200)


def history(cfg: StrategySettings, bar: Bar, runtime: Any, count: int) -> np.ndarray | None:
    """The last ``count`` bars of ``bar``'s series if the strategy follows it and they are all there."""
    if bar.timeframe != cfg.timeframe or (cfg.symbols and bar.symbol not in cfg.symbols):
        return None
    bars = runtime.bars.get(bar.symbol, bar.timeframe, count)
    return bars if len(bars) >= count else None


def average_true_range(bars: np.ndarray, period: int) -> float:
    """The mean true range of the last ``period`` bars."""
    return float(true_ranges(bars[-period - 1 :]).mean())
