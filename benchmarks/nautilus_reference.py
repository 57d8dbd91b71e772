"""The reference the replay target is worded against: NautilusTrader's backtest of an SMA-type crossover.

Runs NautilusTrader's own ``EMACross`` example strategy (fast 10, slow 30: the periods of tradeguard's
``ma_crossover``) in its ``BacktestEngine`` over an OHLC CSV (the one ``replay_throughput.py`` writes:
the shipped EURUSD H1 sample repeated with shifted times), one MID bar series, a hedging margin account.
Prints one JSON line: bars, seconds, bars/s, peak RSS MB, orders, positions.

NautilusTrader is not a tradeguard dependency (100 MB, its own pins): give it its own interpreter,

    python3 -m venv /tmp/nautilus && /tmp/nautilus/bin/pip install nautilus_trader==1.221.0
    python benchmarks/replay_throughput.py --nautilus /tmp/nautilus/bin/python

and ``replay_throughput.py`` runs this script beside its own configurations, round by round, so both
are measured on the same machine at the same time. Usage on its own: ``PYTHON nautilus_reference.py CSV``.

Portfolio mode: several files named ``SYMBOL_*.csv`` (``PYTHON nautilus_reference.py EURUSD_H1.csv GBPUSD_H1.csv
...``) give one instrument each, all on the one engine and its one clock, one EMACross per instrument: the
book tradeguard's portfolio configuration replays.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from decimal import Decimal
from pathlib import Path


def main(paths: list[str]) -> None:
    import pandas as pd
    from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
    from nautilus_trader.config import LoggingConfig
    from nautilus_trader.examples.strategies.ema_cross import EMACross, EMACrossConfig
    from nautilus_trader.model.currencies import USD
    from nautilus_trader.model.data import BarType
    from nautilus_trader.model.enums import AccountType, OmsType
    from nautilus_trader.model.identifiers import TraderId, Venue
    from nautilus_trader.model.objects import Money
    from nautilus_trader.persistence.wranglers import BarDataWrangler
    from nautilus_trader.test_kit.providers import TestInstrumentProvider

    engine = BacktestEngine(
        # no logging at all: over bars alone it cannot convert JPY or CHF profits and says so on every event
        BacktestEngineConfig(trader_id=TraderId("BENCH-001"), logging=LoggingConfig(bypass_logging=True))
    )
    engine.add_venue(
        venue=Venue("SIM"),
        oms_type=OmsType.HEDGING,
        account_type=AccountType.MARGIN,
        base_currency=USD,
        starting_balances=[Money(1_000_000, USD)],
        default_leverage=Decimal(30),
    )
    total = 0
    for path in paths:
        symbol = "EURUSD" if len(paths) == 1 else Path(path).name.split("_")[0]
        frame = pd.read_csv(path, index_col=0, parse_dates=True)
        frame.columns = [c.lower() for c in frame.columns]
        frame.index = pd.DatetimeIndex(frame.index, tz="UTC")
        volume = "volume" if "volume" in frame.columns else "tick_volume"
        frame = frame.rename(columns={volume: "volume"})
        instrument = TestInstrumentProvider.default_fx_ccy(symbol)
        engine.add_instrument(instrument)
        bar_type = BarType.from_str(f"{symbol}.SIM-1-HOUR-MID-EXTERNAL")
        bars = BarDataWrangler(bar_type, instrument).process(frame[["open", "high", "low", "close", "volume"]])
        engine.add_data(bars)
        total += len(bars)
        size = Decimal(100_000) if instrument.size_precision == 0 else Decimal(1)
        engine.add_strategy(
            EMACross(
                EMACrossConfig(
                    order_id_tag=symbol,
                    instrument_id=instrument.id,
                    bar_type=bar_type,
                    trade_size=size,
                    fast_ema_period=10,
                    slow_ema_period=30,
                    request_bars=False,
                )
            )
        )
    start = time.perf_counter()
    engine.run()
    seconds = time.perf_counter() - start
    print(
        json.dumps(
            {
                "bars": total,
                "seconds": seconds,
                "bars_per_second": total / seconds,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "orders": len(engine.cache.orders()),
                "positions": len(engine.cache.positions()),
            }
        )
    )


if __name__ == "__main__":
    if len(sys.argv) >= 2:
        main(sys.argv[1:])
    else:  # `make bench` runs every script bare: say how this one is meant to run
        print("nautilus_reference.py: run by `replay_throughput.py --nautilus PYTHON` (see its docstring)")
