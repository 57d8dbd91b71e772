"""The example plugins, tested against a real tradeguard runtime."""

from __future__ import annotations

from tradeguard import Bar
from tradeguard.testing import T0, make_runtime, signal

from tradeguard_example.checks import MaxSpread
from tradeguard_example.strategy import MomentumStrategy


def test_max_spread_refuses_a_wide_spread_signal() -> None:
    rt = make_runtime(("max_spread", MaxSpread()), settings={"max_spread": {"max_points": 15}})
    d = rt.decide(signal(metadata={"spread_points": 16}))
    assert [(r.code, r.plugin) for r in d.reasons] == [("spread_too_wide", "max_spread")]


def test_momentum_signals_in_the_bar_direction() -> None:
    rt = make_runtime(("example_momentum", MomentumStrategy()))
    bar = Bar(symbol="EURUSD", timeframe="H1", time=T0, open=1.1000, high=1.1042, low=1.0998, close=1.1040, spread=7)
    (s,) = rt.hooks.collect("generate_signals", bar=bar, runtime=rt)[0][1]
    assert (s.side.value, s.stop_loss, s.metadata) == ("buy", 1.0998, {"spread_points": 7})
