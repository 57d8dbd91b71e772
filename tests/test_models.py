"""Models refuse bad input with an error that names the field."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from tradeguard import (
    Alert,
    Bar,
    Fill,
    HaltEvent,
    Job,
    KillState,
    OrderIntent,
    Reason,
    Side,
    Targets,
)
from tradeguard.models import AccountSnapshot
from tradeguard.testing import T0, signal


def _error_fields(exc: pytest.ExceptionInfo[ValidationError]) -> set[str]:
    return {".".join(str(p) for p in e["loc"]) for e in exc.value.errors()}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("price", math.nan),
        ("price", math.inf),
        ("price", -1.0),
        ("price", 0.0),
        ("stop_loss", math.nan),
        ("take_profit", -math.inf),
        ("side", "long"),
        ("symbol", ""),
        ("symbol", "   "),
        ("bar_time", datetime(2024, 1, 1, 10)),
        ("created_at", datetime(2024, 1, 1, 10)),
        ("confidence", 1.5),
        ("confidence", math.nan),
        ("timeframe", "H5"),
        ("risk_hint", 0.0),
    ],
)
def test_signal_refuses_bad_field_and_names_it(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as exc:
        signal(**{field: value})
    assert field in _error_fields(exc)


def test_signal_accepts_upper_case_side_and_derives_a_stable_id() -> None:
    a = signal(side="BUY")
    b = signal(side="buy")
    assert a.side is Side.BUY
    assert a.signal_id == b.signal_id and len(a.signal_id) == 20
    assert signal(side="sell").signal_id != a.signal_id
    assert signal(signal_id="mine").signal_id == "mine"


def test_models_are_immutable() -> None:
    s = signal()
    with pytest.raises(ValidationError):
        s.price = 2.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("volume", 0.0),
        ("volume", -0.1),
        ("volume", math.nan),
        ("side", "flat"),
        ("symbol", ""),
        ("created_at", datetime(2024, 1, 1)),
    ],
)
def test_order_intent_refuses_bad_field(field: str, value: object) -> None:
    fields = {"symbol": "EURUSD", "side": "buy", "volume": 0.1, "created_at": T0, field: value}
    with pytest.raises(ValidationError) as exc:
        OrderIntent(**fields)
    assert field in _error_fields(exc)


def test_fill_refuses_negative_volume_and_nan_price() -> None:
    base = {
        "deal_ticket": 1,
        "order_ticket": 1,
        "position_id": 1,
        "symbol": "EURUSD",
        "side": "sell",
        "volume": 0.1,
        "price": 1.1,
        "time": T0,
    }
    for field, value in (("volume", -1.0), ("price", math.nan), ("deal_ticket", 0), ("time", datetime(2024, 1, 1))):
        with pytest.raises(ValidationError) as exc:
            Fill(**{**base, field: value})
        assert field in _error_fields(exc)


def test_bar_refuses_inverted_range_and_nan() -> None:
    ok = {"symbol": "EURUSD", "timeframe": "H1", "time": T0, "open": 1.1, "high": 1.2, "low": 1.0, "close": 1.15}
    Bar(**ok)
    with pytest.raises(ValidationError, match=r"high 1\.05 is below"):
        Bar(**{**ok, "high": 1.05})
    with pytest.raises(ValidationError) as exc:
        Bar(**{**ok, "close": math.nan})
    assert "close" in _error_fields(exc)


def test_targets_halt_alert_and_job_validate() -> None:
    with pytest.raises(ValidationError) as exc:
        Targets(stop_loss=math.nan)
    assert "stop_loss" in _error_fields(exc)
    with pytest.raises(ValidationError, match="not ACTIVE"):
        HaltEvent(time=T0, trigger="manual", message="x", state=KillState.ACTIVE)
    with pytest.raises(ValidationError) as exc:
        Alert(time=T0, channel="PAGER", severity="CRITICAL", module="m", error_code="e", message="x")
    assert "channel" in _error_fields(exc)
    with pytest.raises(ValidationError, match="positive interval"):
        Job(name="j", every=timedelta(0), run=lambda rt: None)


def test_reason_code_must_be_snake_case_with_optional_qualifier() -> None:
    assert Reason(code="plugin_error:risk_guard").base == "plugin_error"
    with pytest.raises(ValidationError):
        Reason(code="Daily Loss")


@given(
    price=st.floats(allow_nan=True, allow_infinity=True),
    volume=st.floats(allow_nan=True, allow_infinity=True),
)
def test_order_intent_accepts_exactly_finite_positive_numbers(price: float, volume: float) -> None:
    valid = math.isfinite(price) and price > 0 and math.isfinite(volume) and volume > 0
    try:
        order = OrderIntent(symbol="EURUSD", side="buy", volume=volume, price=price, created_at=datetime.now(UTC))
    except ValidationError:
        assert not valid
    else:
        assert valid and order.volume == volume


def _loss_pct_by_definition(anchor: float, equity: float) -> float:
    """The drawdown percentage as first written: an anchor that shows as 0.00 is none."""
    return round(max(0.0, anchor - equity) / anchor * 100, 4) if round(anchor, 2) > 0 else 0.0


money = st.floats(allow_nan=True, allow_infinity=True, width=64)
near_half_cent = st.sampled_from([0.005, 0.004999999999999999, 0.005000000000000001, 0.0, -0.0, -0.005, 0.01])


@given(st.one_of(money, near_half_cent), st.one_of(money, near_half_cent))
def test_loss_pct_is_its_definition_bit_for_bit(anchor: float, equity: float) -> None:
    """The fast form (no decimal round trip on the anchor, no rounding of a zero loss) gives the very same
    double, NaN and the sign of zero included, around the half-cent anchor too."""
    got, expected = AccountSnapshot.loss_pct(anchor, equity), _loss_pct_by_definition(anchor, equity)
    assert (math.isnan(got) and math.isnan(expected)) or (
        got == expected and math.copysign(1, got) == math.copysign(1, expected)
    )
