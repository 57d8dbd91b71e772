"""Several symbols' feeds on one market clock: their ticks merged into one time-ordered stream.

Each symbol keeps its own :class:`Feed` (its bars and ticks, answered by ``copy_rates_*``/``copy_ticks_*`` up to
the tick the replay has reached for that symbol, never further). The merged stream is what the replay walks:
ticks in time order, those of one instant in symbol-name order, then in their feed's own order, so the same data
gives the same run. A symbol with no bar at a time has no tick then, and its quote ages.

The stream is held as plain lists (the replay reads one element of each per tick); their size is the number of
ticks of all symbols together, so memory grows with the data, not with symbols times data.
"""

from __future__ import annotations

import numpy as np

from tradeguard.broker.emulator.feed import Feed


class Market:
    def __init__(self, feeds: dict[str, Feed]) -> None:
        if not feeds:
            raise ValueError("no market data: name at least one symbol's file")
        lengths = {feed.bar_seconds for feed in feeds.values()}
        if len(lengths) > 1:
            spans = ", ".join(f"{name} {feed.bar_seconds} s" for name, feed in feeds.items())
            raise ValueError(f"the symbols' bars differ in length ({spans}): replay one timeframe")
        self.feeds = feeds
        self.symbols = list(feeds)
        self.bar_seconds = lengths.pop()
        which = np.concatenate([np.full(len(feed), k, dtype=np.int32) for k, feed in enumerate(feeds.values())])
        local = np.concatenate([np.arange(len(feed), dtype=np.int64) for feed in feeds.values()])
        times = np.concatenate([feed.time_msc for feed in feeds.values()])
        order = np.lexsort((local, which, times))  # by time, then symbol, then the feed's own order

        def merged(name: str) -> list:  # type: ignore[type-arg]
            return np.concatenate([getattr(feed, name) for feed in feeds.values()])[order].tolist()  # type: ignore[no-any-return]

        self.symbol_at: list[str] = [self.symbols[k] for k in which[order].tolist()]
        self.local_at: list[int] = local[order].tolist()
        self.time: list[int] = times[order].tolist()
        self.bid: list[float] = merged("bid")
        self.ask: list[float] = merged("ask")
        self.bar_end: list[bool] = merged("bar_end")
        self.bar_start: list[bool] = merged("bar_start")  # a bar's first tick may gap past a level
        #: each symbol's latest tick the replay has reached (its feed's index; -1: none yet)
        self.reached: dict[str, int] = dict.fromkeys(feeds, -1)

    def __len__(self) -> int:
        return len(self.time)

    def closed_bar(self, index: int) -> tuple[str, np.void]:
        """The symbol and bar that merged tick ``index`` (a bar's last tick) closes."""
        symbol = self.symbol_at[index]
        feed = self.feeds[symbol]
        return symbol, feed.bars[int(feed.bar_of_tick[self.local_at[index]])]

    def last_tick_of_bar(self, symbol: str, local: int) -> int:
        """The feed index of the last tick of the bar that ``symbol``'s tick ``local`` belongs to."""
        feed = self.feeds[symbol]
        bar = int(feed.bar_of_tick[local]) + 1
        return int(feed.first_tick[bar]) - 1 if bar < len(feed.first_tick) else len(feed) - 1

    def bar_times(self) -> np.ndarray:
        """Every bar open time of every symbol (server scale), sorted, each once."""
        return np.unique(np.concatenate([feed.bars["time"] for feed in self.feeds.values()]))

    def in_session(self, symbol: str, now_msc: int) -> bool:
        """Whether ``symbol`` is trading at ``now_msc``: its latest tick belongs to a bar that has not ended.
        A symbol without data (a standing quote) always is; one whose data has not started yet is not."""
        feed = self.feeds.get(symbol)
        if feed is None:
            return True
        local = self.reached[symbol]
        if local < 0:
            return False
        opened = int(feed.bars["time"][int(feed.bar_of_tick[local])]) * 1000
        return now_msc < opened + self.bar_seconds * 1000
