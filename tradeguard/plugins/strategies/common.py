"""What the built-in strategies share: which bars they follow and their indicators per series."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from pydantic import Field

from tradeguard import Bar, PluginSettings, Runtime


class StrategySettings(PluginSettings):
    symbols: list[str] = Field(default_factory=list, description="symbols it trades; empty = any")
    timeframe: str = Field(default="H1", description="the bars it reads")
    atr_period: int = Field(default=14, ge=2, le=200)


class Indicators(Protocol):
    """A strategy's incremental state for one series, fed each closed bar once, oldest first."""

    warm_up: int  # the bars it needs before it can speak

    def update(self, high: float, low: float, close: float) -> None: ...


C = TypeVar("C", bound=StrategySettings)
S = TypeVar("S", bound=Indicators)


class Follower(Generic[C, S]):
    """A strategy's indicators for each series it follows, updated once per closed bar.

    A series met for the first time, or one with bars the indicators did not see (a restart, bars
    that only built history, the strategy switched off for a while), is rebuilt from the last
    ``warm_up`` bars the runtime holds, so the indicators always describe the runtime's history.
    New settings start every series afresh."""

    def __init__(self, make: Callable[[C], S]) -> None:
        self._make = make
        self._cfg: C | None = None
        self._series: dict[tuple[str, str], tuple[int, S]] = {}

    def feed(self, cfg: C, bar: Bar, runtime: Runtime) -> S | None:
        """``bar``'s series' indicators, updated with it; None if ``cfg`` does not follow the series."""
        if bar.timeframe != cfg.timeframe or (cfg.symbols and bar.symbol not in cfg.symbols):
            return None
        if cfg is not self._cfg:
            self._cfg, self._series = cfg, {}
        key = (bar.symbol, bar.timeframe)
        seen, known = runtime.bars.count(*key), self._series.get(key)
        if known is not None and known[0] == seen - 1:
            state = known[1]
            state.update(bar.high, bar.low, bar.close)
        else:
            state = self._make(cfg)
            for _time, _open, high, low, close, *_ in runtime.bars.get(*key, state.warm_up).tolist():
                state.update(high, low, close)
        self._series[key] = (seen, state)
        return state
