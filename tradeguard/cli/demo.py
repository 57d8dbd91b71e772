"""A replay-free walk through the pipeline: a handful of signals on real EURUSD prices.

The prices are the first bars of the shipped EURUSD H1 sample (2017-04-19). Each signal is
chosen to show one behaviour: an approval, a refused low-confidence signal, a stop on the wrong
side, a signal with no stop, an ATR-derived stop, and the kill switch after a manual halt.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta

from tradeguard.kernel.clock import ReplayClock
from tradeguard.kernel.runtime import Runtime
from tradeguard.models import Decision, Signal

_T0 = datetime(2017, 4, 19, 9, tzinfo=UTC)


def demo_overrides() -> dict[str, dict[str, object]]:
    """The demo asks the gate for a minimum confidence so that one signal shows a gate refusal, keeps its
    log lines to warnings so the table stays readable, and journals into a fresh folder each run."""
    return {
        "signal_validation_gate": {"min_confidence": 0.5},
        "logging": {"level": "WARNING"},
        "runtime": {"data_dir": tempfile.mkdtemp(prefix="tradeguard-demo-")},
    }


def run_demo(rt: Runtime) -> list[tuple[str, Decision]]:
    """Start ``rt`` on a replay clock at the sample's first bar and decide the demo signals."""
    clock = ReplayClock(_T0)
    rt.use_clock(clock)
    rt.start()

    def signal(hour: int, side: str, price: float, **kw: object) -> Signal:
        t = _T0 + timedelta(hours=hour)
        clock.set(t + timedelta(hours=1))
        return Signal(
            strategy="demo",
            symbol="EURUSD",
            side=side,
            bar_time=t,
            created_at=t + timedelta(hours=1),
            price=price,
            **kw,
        )

    rows = [
        ("buy, own stop", signal(0, "buy", 1.07219, stop_loss=1.07050, confidence=0.8)),
        ("sell, low confidence 0.05", signal(1, "sell", 1.07260, stop_loss=1.07450, confidence=0.05)),
        ("sell, stop below entry", signal(2, "sell", 1.07192, stop_loss=1.07000)),
        ("buy, no stop, no ATR", signal(3, "buy", 1.07202)),
        ("sell, ATR stop", signal(4, "sell", 1.07180, atr=0.00120, risk_hint=0.5)),
    ]
    decisions = [(label, rt.decide(s)) for label, s in rows]
    rt.request_halt("manual", "operator halt from the demo", source="demo")
    decisions.append(("buy after manual halt", rt.decide(signal(5, "buy", 1.07300, stop_loss=1.07100))))
    rt.stop()
    return decisions
