"""Risk guard limits at and around each threshold."""

from __future__ import annotations

from tradeguard import OrderIntent
from tradeguard.plugins.risk.risk_guard import RiskGuard
from tradeguard.plugins.risk.sizing import PositionSizing
from tradeguard.testing import T0, make_runtime, signal


def runtime(**cfg: object):  # type: ignore[no-untyped-def]
    return make_runtime(("risk_guard", RiskGuard()), ("position_sizing", PositionSizing()),
                        settings={"risk_guard": cfg})  # fmt: skip


def test_max_open_positions_counts_what_is_open() -> None:
    rt = runtime(max_open_positions=2, max_positions_per_symbol=5)
    assert rt.decide(signal(signal_id="1")).approved
    assert rt.decide(signal(signal_id="2", symbol="GBPUSD")).approved
    d = rt.decide(signal(signal_id="3", symbol="USDJPY", price=150.0, stop_loss=149.0))
    assert not d.approved and d.reasons[0].code == "max_open_positions"
    assert d.reasons[0].message == "max_open_positions: 2 open, limit 2"


def test_per_symbol_limit() -> None:
    rt = runtime(max_open_positions=10, max_positions_per_symbol=1)
    assert rt.decide(signal(signal_id="1")).approved
    d = rt.decide(signal(signal_id="2"))
    assert d.reasons[0].message == "max_open_positions: 1 open on EURUSD, limit 1 per symbol"
    assert rt.decide(signal(signal_id="3", symbol="GBPUSD")).approved


def test_volume_limit_at_and_above() -> None:
    rt = runtime(max_volume_per_order=0.1)
    assert rt.decide(signal(signal_id="1")).approved  # 0.1 == limit
    rt = runtime(max_volume_per_order=0.09)
    d = rt.decide(signal(signal_id="1"))
    assert d.reasons[0].message == "volume_above_maximum: 0.1 lots > limit 0.09"


def test_exposure_reducing_orders_are_never_vetoed() -> None:
    rt = runtime(max_open_positions=0, max_volume_per_order=0.01)
    close = OrderIntent(symbol="EURUSD", side="sell", volume=5, price=1.1, position_ticket=3, created_at=T0)
    assert rt.pipeline.veto(close) is None
