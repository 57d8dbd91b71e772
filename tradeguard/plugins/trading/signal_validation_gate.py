"""Signal validation gate (SIG): refuse signals that must not trade, with every reason at once.

A signal that fails several checks gets all of them back, so a strategy author fixes them in one
round. Checks (each off when its setting is empty or zero):

* minimum confidence; allowed symbols;
* staleness: older than ``max_age_seconds`` or ``max_age_bars`` of runtime-clock (broker) time;
* structure: the signal's bar has closed; the level it relies on is confirmed
  (``metadata["level_confirmed"]``);
* timeframe coherence: the side agrees with the higher timeframe's trend (close vs its moving
  average, from the broker's bars: no look-ahead);
* symbol tradable now (trade mode), the spread ceiling and its market open (the quote fresh), per symbol;
* cooldown per symbol and direction, and a cap on signals per rolling window;
* trading hours (UTC, by weekday) and news blackout windows.
"""

from __future__ import annotations

from collections import deque
from datetime import datetime, time, timedelta

from pydantic import Field, field_validator

from tradeguard import ConfiguredPlugin, PluginSettings, Reason, Runtime, Signal, hookimpl
from tradeguard.models import TIMEFRAME_SECONDS

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
TRADE_MODE_DISABLED, TRADE_MODE_LONGONLY, TRADE_MODE_SHORTONLY, TRADE_MODE_CLOSEONLY = 0, 1, 2, 3


def _hours(entry: str) -> tuple[set[int], time, time]:
    """``"mon-fri 07:00-20:00"`` or ``"07:00-20:00"`` (every day) -> (weekdays, start, end) in UTC."""
    parts = entry.lower().split()
    days = set(range(7))
    if len(parts) == 2:
        first, _, last = parts[0].partition("-")
        a, b = DAYS.index(first[:3]), DAYS.index((last or first)[:3])
        days = set(range(a, b + 1)) if a <= b else set(range(a, 7)) | set(range(b + 1))
    start, _, end = parts[-1].partition("-")
    return days, time.fromisoformat(start), time.fromisoformat(end)


class SignalGateSettings(PluginSettings):
    min_confidence: float = Field(default=0.0, ge=0.0, le=1.0, description="signals below this are refused")
    symbols: list[str] = Field(default_factory=list, description="tradable symbols; empty = any")
    max_age_seconds: float = Field(default=0.0, ge=0.0, description="older signals are stale; 0 = off")
    max_age_bars: int = Field(default=0, ge=0, description="signals older than this many bars are stale; 0 = off")
    require_closed_bar: bool = Field(default=True, description="the signal's bar must have closed")
    require_level_confirmed: bool = Field(default=False, description="metadata level_confirmed must be true")
    higher_timeframe: str = Field(default="", description="trend filter timeframe, e.g. H4; empty = off")
    trend_period: int = Field(default=20, ge=2, le=500, description="moving average length of the trend filter")
    check_trade_mode: bool = Field(default=True, description="refuse when the symbol's trade mode forbids it")
    check_trading_allowed: bool = Field(
        default=True, description="refuse while the terminal or the account does not allow expert trading"
    )
    max_spread_points: int = Field(default=0, ge=0, description="spread ceiling in points; 0 = off")
    max_quote_age_seconds: float = Field(
        default=0.0, ge=0.0, description="the symbol's market is closed when its quote is older; 0 = off"
    )
    cooldown_seconds: float = Field(default=0.0, ge=0.0, description="per symbol and direction; 0 = off")
    max_signals: int = Field(default=0, ge=0, description="signals passed per window; 0 = off")
    window_seconds: float = Field(default=3600.0, gt=0, description="the window of max_signals")
    trading_hours: list[str] = Field(default_factory=list, description='UTC, e.g. ["mon-fri 07:00-20:00"]')
    blackouts: list[str] = Field(default_factory=list, description='news windows, "start/end" ISO times with zone')

    @field_validator("trading_hours")
    @classmethod
    def _valid_hours(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                _hours(entry)
            except (ValueError, IndexError) as exc:
                raise ValueError(f"{entry!r}: expected like 'mon-fri 07:00-20:00' ({exc})") from None
        return value

    @field_validator("blackouts")
    @classmethod
    def _valid_blackouts(cls, value: list[str]) -> list[str]:
        for entry in value:
            start, _, end = entry.partition("/")
            try:
                a, b = datetime.fromisoformat(start), datetime.fromisoformat(end)
            except ValueError as exc:
                raise ValueError(f"{entry!r}: expected 'start/end' ISO datetimes ({exc})") from None
            if a.tzinfo is None or b.tzinfo is None or b <= a:
                raise ValueError(f"{entry!r}: both ends need a time zone and end must follow start")
        return value

    @field_validator("higher_timeframe")
    @classmethod
    def _valid_tf(cls, value: str) -> str:
        if value and value not in TIMEFRAME_SECONDS:
            raise ValueError(f"{value!r} is not an MT5 timeframe")
        return value


def _reason(code: str, message: str) -> Reason:
    return Reason.trusted(code=code, message=f"{code}: {message}", plugin="")


class SignalValidationGate(ConfiguredPlugin):
    settings_model = SignalGateSettings
    stage = 4

    def __init__(self) -> None:
        super().__init__()
        self._last: dict[tuple[str, str], datetime] = {}
        self._passed: deque[datetime] = deque()

    @hookimpl
    def tradeguard_startup(self, runtime: Runtime) -> None:
        super().tradeguard_startup(runtime)
        self._hours = [_hours(e) for e in self.cfg.trading_hours]
        self._blackouts = [tuple(datetime.fromisoformat(x) for x in e.split("/")) for e in self.cfg.blackouts]

    @hookimpl
    def validate_signal(self, signal: Signal, runtime: Runtime) -> list[Reason]:
        cfg = self.cfg
        now = runtime.clock.now()
        found: list[Reason] = []
        if signal.confidence < cfg.min_confidence:
            found.append(
                _reason("confidence_below_minimum", f"{signal.confidence:.3f} < minimum {cfg.min_confidence:.3f}")
            )
        if cfg.symbols and signal.symbol not in cfg.symbols:
            found.append(_reason("symbol_not_allowed", f"{signal.symbol} not in {', '.join(cfg.symbols)}"))
        bar_seconds = TIMEFRAME_SECONDS[signal.timeframe]
        age = (now - signal.created_at).total_seconds()
        if cfg.max_age_seconds and age > cfg.max_age_seconds:
            found.append(_reason("stale_signal", f"age {age:.0f} s > limit {cfg.max_age_seconds:.0f} s"))
        bars_old = (now - signal.bar_time).total_seconds() / bar_seconds - 1  # its own bar closing is age 0
        if cfg.max_age_bars and bars_old > cfg.max_age_bars:
            found.append(_reason("stale_signal", f"{bars_old:.1f} bars old > limit {cfg.max_age_bars}"))
        if cfg.require_closed_bar and signal.bar_close > now + timedelta(seconds=1):
            found.append(_reason("bar_not_closed", f"bar {signal.bar_time.isoformat()} closes after {now.isoformat()}"))
        if cfg.require_level_confirmed and not signal.metadata.get("level_confirmed", False):
            found.append(_reason("level_not_confirmed", "metadata level_confirmed is not true"))
        if cfg.higher_timeframe:
            found.extend(self._trend(signal, runtime))
        if cfg.check_trading_allowed:
            found.extend(self._trading_allowed(runtime))
        if cfg.check_trade_mode or cfg.max_spread_points or cfg.max_quote_age_seconds:
            found.extend(self._market(signal, runtime))
        found.extend(self._calendar(signal, now))
        if not found:
            found.extend(self._pace(signal, now))
        return found

    def _trend(self, signal: Signal, runtime: Runtime) -> list[Reason]:
        cfg = self.cfg
        rates = runtime.broker.rates(signal.symbol, cfg.higher_timeframe, cfg.trend_period)
        if len(rates) < cfg.trend_period:
            return [
                _reason(
                    "trend_disagrees",
                    f"only {len(rates)} {cfg.higher_timeframe} bars for a {cfg.trend_period}-bar trend",
                )
            ]
        average = float(rates["close"].mean())
        last = float(rates["close"][-1])
        up = last > average
        if up != (signal.side.sign > 0):
            trend = f"{cfg.higher_timeframe} {'up' if up else 'down'}trend"
            detail = f"close {last:.5f} vs {cfg.trend_period}-bar mean {average:.5f}"
            return [_reason("trend_disagrees", f"{signal.side.value} against the {trend} ({detail})")]
        return []

    def _trading_allowed(self, runtime: Runtime) -> list[Reason]:
        """Held while the terminal's Algo Trading button is off, or the account may not trade by expert: the
        broker would refuse each order (10027, 10026); no order is sent to hear it."""
        broker = runtime.broker
        terminal, account = broker.terminal(), broker.account()
        if not terminal.trade_allowed:
            return [_reason("trading_disabled", "Algo Trading is off in the terminal (its toolbar button)")]
        if not (account.trade_allowed and account.trade_expert):
            return [_reason("trading_disabled", "the account does not allow expert trading now")]
        return []

    def _market(self, signal: Signal, runtime: Runtime) -> list[Reason]:
        cfg = self.cfg
        spec = runtime.broker.symbol_spec(signal.symbol)
        found = []
        mode = spec.trade_mode
        buy = signal.side.sign > 0
        if cfg.check_trade_mode and (
            mode in (TRADE_MODE_DISABLED, TRADE_MODE_CLOSEONLY)
            or (mode == TRADE_MODE_LONGONLY and not buy)
            or (mode == TRADE_MODE_SHORTONLY and buy)
        ):
            found.append(
                _reason("symbol_not_tradable", f"{signal.symbol} trade mode {mode} refuses a new {signal.side.value}")
            )
        if cfg.max_spread_points or cfg.max_quote_age_seconds:
            quote = runtime.broker.quote(signal.symbol)
            spread = round(quote.spread / spec.point)
            if cfg.max_spread_points and spread > cfg.max_spread_points:
                found.append(_reason("spread_too_wide", f"{spread} points > ceiling {cfg.max_spread_points}"))
            age = (runtime.clock.now() - quote.time).total_seconds()
            if cfg.max_quote_age_seconds and age > cfg.max_quote_age_seconds:  # per symbol: gold's break, a holiday
                found.append(
                    _reason(
                        "market_closed",
                        f"{signal.symbol}'s last quote is {age:.0f} s old > {cfg.max_quote_age_seconds:g} s",
                    )
                )
        return found

    def _calendar(self, signal: Signal, now: datetime) -> list[Reason]:
        found = []
        if self._hours and not any(
            now.weekday() in days and start <= now.time() < end for days, start, end in self._hours
        ):
            found.append(
                _reason(
                    "outside_trading_hours",
                    f"{now.strftime('%a %H:%M')} UTC is outside {', '.join(self.cfg.trading_hours)}",
                )
            )
        for start, end in self._blackouts:
            if start <= now < end:
                window = f"{start.isoformat()}/{end.isoformat()}"
                found.append(_reason("news_blackout", f"{now.isoformat()} inside {window}"))
        return found

    def _pace(self, signal: Signal, now: datetime) -> list[Reason]:
        """Cooldown and the rolling cap count only signals that passed every other check."""
        cfg = self.cfg
        key = (signal.symbol, signal.side.value)
        last = self._last.get(key)
        if cfg.cooldown_seconds and last is not None and (now - last).total_seconds() < cfg.cooldown_seconds:
            wait = cfg.cooldown_seconds - (now - last).total_seconds()
            return [
                _reason(
                    "cooldown_active",
                    f"{key[0]} {key[1]} passed {int((now - last).total_seconds())} s ago; {wait:.0f} s to go",
                )
            ]
        while self._passed and (now - self._passed[0]).total_seconds() >= cfg.window_seconds:
            self._passed.popleft()
        if cfg.max_signals and len(self._passed) >= cfg.max_signals:
            return [
                _reason(
                    "too_many_signals",
                    f"{len(self._passed)} in the last {cfg.window_seconds:.0f} s, limit {cfg.max_signals}",
                )
            ]
        self._last[key] = now
        self._passed.append(now)
        return []
