"""What the emulator keeps per symbol while the market moves: its live quote, the price levels whose
crossing needs the trade server's attention, and the aggregates its floating P&L is updated from on
every tick. Small slotted records: the replay loop reads and writes them on every tick.
"""

from __future__ import annotations

from dataclasses import dataclass

INF = float("inf")


@dataclass(slots=True)
class LiveQuote:
    """The symbol's current quote; a symbol without data stands still at its catalogue price."""

    bid: float
    ask: float
    time_msc: int = 0


@dataclass(slots=True)
class TriggerLevels:
    """A tick at or beyond one of these needs attention (a stop, a target, a pending order): below
    ``lo_bid`` or above ``hi_bid`` for the bid, likewise for the ask. Infinite when nothing waits."""

    lo_bid: float = -INF
    hi_bid: float = INF
    lo_ask: float = -INF
    hi_ask: float = INF


@dataclass(slots=True)
class OpenExposure:
    """The symbol's open positions summed, so floating P&L is one expression per tick: bought size and its
    cost (size x open price), sold size and its proceeds; the floating P&L last counted (account currency);
    their margin."""

    bought: float = 0.0
    bought_cost: float = 0.0
    sold: float = 0.0
    sold_proceeds: float = 0.0
    floating: float = 0.0
    margin: float = 0.0

    def pnl(self, bid: float, ask: float) -> float:
        """Floating P&L in the symbol's profit currency at ``bid``/``ask``."""
        return self.bought * bid - self.bought_cost + self.sold_proceeds - self.sold * ask
