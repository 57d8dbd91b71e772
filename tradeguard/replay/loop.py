"""Replay: the whole control plane over the emulator, bar by bar, on the runtime's replay clock.

Each closed bar: the clock moves to the broker's time, the bar joins the runtime's history, due
jobs run (account capture, fills, reconciliation, SLA, trailing stops), then the strategies speak
and every signal goes through the one pipeline to the one execution engine. The same code runs
live; only the clock and the terminal differ.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from pydantic import ValidationError

from tradeguard.broker.emulator.terminal import Terminal
from tradeguard.broker.types import BrokerError, OrderRefused
from tradeguard.errors import StartupError
from tradeguard.kernel.clock import ReplayClock
from tradeguard.kernel.runtime import Runtime
from tradeguard.kernel.service import ServiceManager
from tradeguard.models import TIMEFRAME_SECONDS, AlertChannel, Bar, Severity
from tradeguard.ports import Broker


@dataclass
class SymbolSummary:
    """One symbol's part of a replay: its bars and signals, and from the journal its deals, closed trades
    and net result (profit, commission and swap, in the account currency)."""

    bars: int = 0
    signals: int = 0
    approved: int = 0
    fills: int = 0
    trades: int = 0
    net: float = 0.0
    swap: float = 0.0


@dataclass
class ReplaySummary:
    bars: int = 0
    signals: int = 0
    approved: int = 0
    fills: int = 0
    start_balance: float = 0.0
    final_balance: float = 0.0
    final_equity: float = 0.0
    max_drawdown_pct: float = 0.0
    rejections: Counter[str] = field(default_factory=Counter)
    first_bar: str = ""
    last_bar: str = ""
    kill_switch: str = "ACTIVE"
    interrupted: bool = False  # stopped on request before the data ended
    symbols: dict[str, SymbolSummary] = field(default_factory=dict)  # the book, symbol by symbol


def replay(
    rt: Runtime,
    *,
    start: int | None = None,
    end: int | None = None,
    progress: Callable[[ReplaySummary], None] | None = None,
    every: int = 250,
    stop: Any = None,
) -> ReplaySummary:
    """Run ``rt`` (built with a replay clock and the emulator) over its data; ``start``/``end`` are epoch
    seconds of bar open times (UTC) bounding the bars that are traded (earlier ones only build history).
    ``stop`` (a ``threading.Event``; SIGINT/SIGTERM set it) ends the replay between two bars, never in the
    middle of one's orders, and the runtime still stops cleanly."""
    broker = rt.broker
    terminal, clock = rt.emulator(), rt.clock
    if terminal is None:
        raise TypeError("replay needs broker.module = 'emulator'")
    if not isinstance(clock, ReplayClock):
        raise TypeError("replay needs the runtime built with a replay clock")
    market = terminal.market
    timeframe = next(k for k, v in TIMEFRAME_SECONDS.items() if v == market.bar_seconds)
    summary = ReplaySummary(start_balance=broker.account().balance)
    summary.symbols = {symbol: SymbolSummary() for symbol in market.symbols}
    _warn_strategies_elsewhere(rt, timeframe)
    clock.set(broker.now())
    rt.start()
    peak = broker.account().equity
    step = timedelta(seconds=market.bar_seconds)
    first = last = None
    for symbol, raw in terminal.replay_bars():
        if stop is not None and stop.is_set():
            summary.interrupted = True
            break
        bar = _bar(broker, symbol, timeframe, raw)
        when, epoch = bar.time, bar.epoch
        clock.set(max(clock.now(), when + step))
        rt.bars.append(bar)
        if end is not None and epoch > end:
            break
        rt.run_jobs()
        summary.bars += 1
        part = summary.symbols[symbol]
        part.bars += 1
        first, last = first or when, when
        if start is None or epoch >= start:
            for decision in rt.on_bar(bar):
                summary.signals += 1
                summary.approved += decision.approved
                summary.rejections.update(r.base for r in decision.reasons)
                part.signals += 1  # the strategies speak on a symbol's bar about that symbol
                part.approved += decision.approved
        equity = terminal.equity()  # the emulator's own figure, not an API call: this is the summary's bookkeeping
        peak = max(peak, equity)
        summary.max_drawdown_pct = max(summary.max_drawdown_pct, (peak - equity) / peak * 100 if peak else 0.0)
        if progress is not None and summary.bars % every == 0:
            progress(summary)
    summary.first_bar, summary.last_bar = (first.isoformat(), last.isoformat()) if first and last else ("", "")
    rt.execution.poll_fills()
    rt.stop()
    account = broker.account()
    summary.final_balance, summary.final_equity = account.balance, account.equity
    latched = rt.store.kill_state()
    if latched is not None and latched[0] != "ACTIVE":
        summary.kill_switch = f"{latched[0]} since {latched[3][:16]} ({latched[1]}: {latched[2]})"
    journal = rt.execution.journal
    fills = journal.fills() if journal is not None else []
    summary.fills = len(fills)
    for fill in fills:
        part = summary.symbols.setdefault(fill.symbol, SymbolSummary())
        part.fills += 1
        part.trades += bool(fill.outcome and fill.outcome.trade_closed)
        part.net = round(part.net + fill.profit + fill.commission + fill.swap, 2)
        part.swap = round(part.swap + fill.swap, 2)
    return summary


def run_live(rt: Runtime, stop: Any) -> int:
    """The long-running loop: poll the broker for closed bars, run due jobs, until ``stop`` is set.

    Against a terminal the runtime keeps the wall clock. Over a simulated market (``runtime.clock``:
    by default the built-in emulator, in process or served, outside live; any market when set to ``market``)
    it keeps the market's time
    instead, as a replay does: staleness, trading hours, order timeouts and latencies are then judged
    on the market's scale, not 2017 against today. A served market's time is its latest quote's.

    ``stop`` is a ``threading.Event`` (SIGINT/SIGTERM set it). On the way out the pipeline is held
    (no new orders), plugins are told (``tradeguard_shutdown``) and the journal is flushed.
    Returns the number of bars handled.
    """
    cfg = rt.settings.runtime
    broker = rt.broker
    _selected(broker, cfg.symbols)
    terminal = rt.emulator()  # in process: its market keeps its own time
    simulated = terminal is not None
    stepper = None
    market_time: Callable[[], datetime] = broker.now
    if terminal is not None:
        _replayed_symbols_only(cfg.symbols, terminal.market.symbols)
        stepper = terminal.replay_step if cfg.emulator_ticks_per_poll else None
        market_time = partial(_market_time, broker, terminal)
    follows = cfg.clock == "market" or (cfg.clock == "auto" and (simulated or _served_emulator(rt)))
    market = ReplayClock(market_time()) if follows else None
    _warn_strategies_elsewhere(rt, cfg.timeframe)
    if market is not None:
        rt.use_clock(market)
    rt.start()
    seen: dict[str, int] = {}
    for symbol in cfg.symbols:  # bars closed before the start are history, not signals
        closed = broker.rates(symbol, cfg.timeframe, 400)[:-1]
        seen[symbol] = int(closed["time"][-1]) if len(closed) else 0
        for raw in closed:
            bar = _checked_bar(rt, symbol, cfg.timeframe, raw)
            if bar is not None:
                rt.bars.append(bar)
    handled = 0
    unreachable = False  # the last bar poll failed: said once, and once again when the terminal answers
    service = ServiceManager()
    service.ready(f"trading {', '.join(cfg.symbols)} {cfg.timeframe}")  # started: aligned with the broker
    try:
        while not stop.is_set():
            service.watchdog()  # from this loop only: a stuck loop stops the pings
            if stepper is not None and not stepper(cfg.emulator_ticks_per_poll):
                rt.log.warning("the emulator's market data has ended: stopping", extra={"bars": handled})
                break
            if market is not None:
                market.set(max(market.now(), market_time()))
            for symbol in cfg.symbols:
                try:
                    rates = broker.rates(symbol, cfg.timeframe, 50)
                except (BrokerError, OSError, EOFError) as exc:  # the link is lost: the jobs go on (health reconnects)
                    if not unreachable:
                        unreachable = True
                        rt.log.warning(f"bars not read, the terminal is out of reach: {exc}", extra={"bars": handled})
                    break
                if unreachable:
                    unreachable = False
                    rt.log.warning("the terminal answers again: bars resume", extra={"bars": handled})
                for raw in rates[:-1]:  # the last bar is still forming
                    if int(raw["time"]) > seen[symbol]:
                        seen[symbol] = int(raw["time"])
                        bar = _checked_bar(rt, symbol, cfg.timeframe, raw)
                        if bar is None:
                            continue
                        rt.bars.append(bar)
                        rt.on_bar(bar)
                        handled += 1
            rt.run_jobs()
            left = cfg.poll_seconds  # waited in slices: a long poll never starves the watchdog of this loop's pings
            while left > 0 and not stop.is_set():
                step = min(left, service.watchdog_every or left)
                stop.wait(step)
                left -= step
                service.watchdog()
    finally:
        service.stopping(f"stopping after {handled} bars")
        rt.hold("shutdown")
        rt.stop()
    return handled


def _market_time(broker: Broker, terminal: Terminal) -> datetime:
    """Where the in-process emulator's market is, in UTC: its latest tick, published or withheld (a stale
    feed must still age against it)."""
    return broker.to_utc(terminal.now_msc() / 1000)


def _bar(broker: Any, symbol: str, timeframe: str, raw: Any, *, trusted: bool = True) -> Bar:
    """A bar from an MT5 rates record; ``trusted`` only for data validated on loading (the emulator's)."""
    t, o, h, lo, c, volume, spread = raw.item()[:7]  # one conversion of the numpy record, not seven
    return (Bar.trusted if trusted else Bar)(
        symbol=symbol,
        timeframe=timeframe,
        time=broker.to_utc(t),
        open=o,
        high=h,
        low=lo,
        close=c,
        tick_volume=volume,
        spread=spread,
        real_volume=0,
    )


def _checked_bar(rt: Runtime, symbol: str, timeframe: str, raw: Any) -> Bar | None:
    """A terminal's bar, validated: a NaN or inconsistent price is alerted and the bar left out, never traded."""
    try:
        return _bar(rt.broker, symbol, timeframe, raw, trusted=False)
    except ValidationError as exc:
        rt.alert(
            channel=AlertChannel.HEALTH,
            severity=Severity.ERROR,
            module="runtime",
            error_code="bad_bar",
            symbol=symbol,
            message=f"{symbol} {timeframe} bar left out: {exc.errors()[0]['loc']} {exc.errors()[0]['msg']}",
        )
        return None


def _warn_strategies_elsewhere(rt: Runtime, timeframe: str) -> None:
    """Warn of each strategy whose settings follow another timeframe than the bars it will be handed: it
    would stay silent the whole run (D1 data replayed into H1 strategies read as "0 signals")."""
    for impl in rt.pm.hook.generate_signals.get_hookimpls():
        name = impl.plugin_name
        own = getattr(rt.settings[name], "timeframe", None) if name in rt.settings else None
        if isinstance(own, str) and own != timeframe:
            rt.log.warning(
                f"{name} follows {own} bars, these are {timeframe}: it will not signal; set "
                f"{name}.timeframe = {timeframe!r}",
                extra={"plugin": name},
            )


def _served_emulator(rt: Runtime) -> bool:
    """The built-in emulator served to mt5linux (``tradeguard emulator serve``), outside live: its market, 2017
    by default, keeps its own time as the in-process one does. Live keeps the wall clock whatever answers."""
    from tradeguard.broker.constants import TERMINAL_NAME

    if rt.settings.env == "live":
        return False
    return rt.broker.terminal().name == TERMINAL_NAME


def _selected(broker: Broker, symbols: list[str], sleep: Callable[[float], None] = time.sleep) -> None:
    """Every followed symbol in the terminal's Market Watch before anything runs, with a first quote: quotes
    come only once a symbol is selected (a second or so later). One the terminal cannot select, or that shows
    no quote within five seconds, stops start-up, named."""
    for symbol in symbols:
        try:
            broker.symbol_spec(symbol)  # selects it on first use
        except (OrderRefused, BrokerError) as exc:
            raise StartupError(
                f"runtime.symbols: {symbol} cannot be selected in the terminal's Market Watch: {exc}"
            ) from None
        for attempt in range(11):
            try:
                broker.quote(symbol)
                break
            except BrokerError as exc:
                if attempt == 10:
                    raise StartupError(f"runtime.symbols: {symbol} shows no quote after selecting it: {exc}") from None
                sleep(0.5)


def _replayed_symbols_only(symbols: list[str], replayed: list[str]) -> None:
    """The in-process emulator has bars for the symbols it replays only: following another would stop the run at
    its first poll with the terminal's bare "not found"."""
    missing = [s for s in symbols if s not in replayed]
    if missing:
        raise StartupError(
            f"runtime.symbols = {list(symbols)}: the in-process emulator replays {', '.join(replayed)} only "
            f"(broker.emulator.data); {', '.join(missing)} has no data: follow the replayed symbols, or serve "
            "other data"
        )


#: order_send answers the execution engine re-sends after (a fresh price, a pause)
_RESENT = ("REQUOTE", "PRICE_CHANGED", "PRICE_OFF", "TOO_MANY_REQUESTS")
#: the gate's refusals while the terminal says it cannot trade
_HELD = ("trading_disabled", "market_closed", "not_aligned", "terminal_disconnected", "stale_quote")


def fault_handling(rt: Runtime) -> dict[str, Any]:
    """What the emulator injected in this replay, and how the control plane handled it, from the engine's own
    counts and the journal: re-sent, resolved by a lookup at the broker, unknown until certainly absent,
    refused by the broker, held at the gate. Empty without fault injection."""
    terminal = rt.emulator()
    if terminal is None or not terminal.faults.injected:
        return {}
    retcodes = rt.metrics.series("tradeguard_execution_retcodes")
    answers: dict[str, float] = {}
    if retcodes is not None:
        for metric in retcodes.collect():
            for sample in metric.samples:
                if sample.name.endswith("_total"):
                    answers[sample.labels["retcode"]] = sample.value
    store = rt.sqlite_store()

    def count(sql: str) -> int:
        return int(store.query(sql)[0][0])

    refused: dict[str, int] = dict(
        (str(reason), int(n))
        for reason, n in store.query(
            "SELECT substr(message, 1, instr(message, ':') - 1), COUNT(*) FROM order_events "
            "WHERE from_state = 'new' AND to_state = 'rejected' AND retcode IS NOT NULL GROUP BY 1"
        )
    )
    held = Counter[str]()
    for (reasons,) in store.query("SELECT reasons FROM decisions WHERE approved = 0"):
        held.update(code for code in _HELD if code in reasons)
    return {
        "injected": dict(sorted(terminal.faults.injected.items())),
        "handled": {
            "re-sent (requote, price changed, too many requests)": int(sum(answers.get(k, 0) for k in _RESENT)),
            "resolved by a lookup at the broker (found: filled)": count(
                "SELECT COUNT(*) FROM order_events WHERE message LIKE '%found at the broker%' AND to_state = 'filled'"
            ),
            "unknown, then certainly absent (rejected after the SLA)": count(
                "SELECT COUNT(*) FROM order_events WHERE message LIKE 'not found at the broker%'"
            ),
            "refused by the broker (journaled rejected)": sum(refused.values()),
            "held at the gate (signals refused while the terminal could not trade)": sum(held.values()),
        },
        "refused_by": dict(sorted(refused.items())),
        "held_by": dict(sorted(held.items())),
    }
