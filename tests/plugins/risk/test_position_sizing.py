"""Position sizing with hand-computed values across instruments with different tick values."""

from __future__ import annotations

from typing import Any

import pytest

from tradeguard import Rejected, Targets
from tradeguard.plugins.risk.position_sizing import PositionSizing, floor_to_step
from tradeguard.testing import signal


def size(
    runtime: Any, symbol: str, price: float, stop: float, emulator: dict | None = None, side: str = "buy", **cfg: Any
) -> float | Rejected:
    sizing = PositionSizing()
    hint = cfg.pop("hint", None)
    rt = runtime(("position_sizing", sizing), emulator=emulator, position_sizing=cfg)
    sig = signal(symbol=symbol, side=side, price=price, stop_loss=stop, risk_hint=hint)
    return sizing.size_position(sig, Targets(stop_loss=stop), rt)


@pytest.mark.parametrize(
    ("symbol", "price", "stop", "expected", "why"),
    [
        ("EURUSD", 1.0717, 1.0697, 0.5, "20 pips = 0.0020 / 0.00001 x 1.00 = 200 per lot; 100 / 200"),
        ("EURUSD", 1.0717, 1.0687, 0.33, "300 per lot: 0.3333 rounds down"),
        ("USDJPY", 150.012, 149.712, 0.5, "0.300 / 0.001 x 0.6667 (100000 x 0.001 / 150) = 200 per lot"),
        ("XAUUSD", 2000.25, 1990.25, 0.1, "10.00 / 0.01 x 1.00 (100 oz x 0.01) = 1000 per lot"),
        ("US500", 5000.5, 4980.5, 5.0, "20.0 / 0.01 x 0.01 (1 x 0.01) = 20 per lot; step 0.1"),
    ],
)
def test_fixed_fractional_risk_of_one_percent(
    runtime: Any, symbol: str, price: float, stop: float, expected: float, why: str
) -> None:
    assert size(runtime, symbol, price, stop, check_margin=False) == expected, why


def test_risk_hint_scales_within_the_cap(runtime: Any) -> None:
    assert size(runtime, "EURUSD", 1.0717, 1.0697, hint=0.5) == 0.25
    assert size(runtime, "EURUSD", 1.0717, 1.0697, hint=3.0) == 0.5  # capped at max_risk_hint 1
    assert size(runtime, "EURUSD", 1.0717, 1.0697, hint=3.0, max_risk_hint=2.0) == 1.0


def test_minimum_lot_above_budget_is_refused_never_sized_up(runtime: Any) -> None:
    out = size(runtime, "XAUUSD", 2000.25, 1800.25)  # 20,000 per lot: the budget buys 0.005 lots
    assert isinstance(out, Rejected) and out.reason == "volume_below_minimum"
    assert "budget 100.00 buys 0.0050 lots < minimum 0.01" in out.message


def test_balance_base_fixed_volatility_and_max(runtime: Any) -> None:
    assert size(runtime, "EURUSD", 1.0717, 1.0697, risk_base="balance", risk_pct=2.0) == 1.0
    assert size(runtime, "EURUSD", 1.0717, 1.0697, method="fixed", fixed_lots=0.37) == 0.37
    assert size(runtime, "EURUSD", 1.0717, 1.0697, risk_pct=50.0, max_lots=3.0) == 3.0
    sizing = PositionSizing()
    rt = runtime(("position_sizing", sizing), position_sizing={"method": "volatility", "volatility_target_pct": 0.5})
    sig = signal(symbol="EURUSD", price=1.0717, stop_loss=1.0697, atr=0.0010)  # 100 per lot per ATR; budget 50
    assert sizing.size_position(sig, Targets(stop_loss=1.0697), rt) == 0.5


def test_margin_limits_the_size(runtime: Any) -> None:
    # balance 500: 1 lot EURUSD needs 100000 / 100 EUR = 1000 EUR = 1071.60 USD; 500 carries 0.46 lots
    assert size(runtime, "EURUSD", 1.0717, 1.0697, emulator={"balance": 500.0}, method="fixed", fixed_lots=1.0) == 0.46
    out = size(runtime, "EURUSD", 1.0717, 1.0697, emulator={"balance": 5.0}, method="fixed", fixed_lots=1.0)
    assert isinstance(out, Rejected) and out.reason == "margin_insufficient"


def test_floor_to_step_never_rounds_up() -> None:
    assert floor_to_step(0.3, 0.1) == 0.3 and floor_to_step(0.129, 0.01) == 0.12 and floor_to_step(4.99, 0.1) == 4.9
