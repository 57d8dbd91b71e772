"""Position sizing rounds down to the step and never sizes up to the minimum."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradeguard.plugins.risk.sizing import PositionSizing, floor_to_step
from tradeguard.testing import make_runtime, signal


def decide(cfg: dict, **sig: object):  # type: ignore[no-untyped-def]
    return make_runtime(("position_sizing", PositionSizing()), settings={"position_sizing": cfg}).decide(signal(**sig))


@pytest.mark.parametrize(
    ("cfg", "hint", "expected"),
    [
        ({"fixed_lots": 0.1}, None, 0.1),
        ({"fixed_lots": 0.1}, 0.5, 0.05),
        ({"fixed_lots": 0.1}, 3.0, 0.1),  # the hint cannot exceed max_risk_hint = 1
        ({"fixed_lots": 0.1, "max_risk_hint": 2.0}, 3.0, 0.2),
        ({"fixed_lots": 0.3, "volume_step": 0.1}, None, 0.3),  # 0.3 / 0.1 is 2.9999... in binary
        ({"fixed_lots": 0.129}, None, 0.12),  # rounds down, never up
        ({"fixed_lots": 5.0, "volume_max": 2.0}, None, 2.0),
    ],
)
def test_size(cfg: dict, hint: float | None, expected: float) -> None:
    d = decide(cfg, risk_hint=hint)
    assert d.approved and d.volume == expected


def test_size_below_minimum_is_refused_not_raised() -> None:
    d = decide({"fixed_lots": 0.1, "volume_min": 0.1}, risk_hint=0.5)
    assert not d.approved and d.reasons[0].code == "volume_below_minimum"
    assert d.reasons[0].message == "volume_below_minimum: 0.05 lots rounds to 0.05 < minimum 0.1"


def test_min_above_max_is_a_settings_error() -> None:
    from tradeguard import ConfigError

    with pytest.raises(ConfigError, match=r"volume_min 5\.0 > volume_max 1\.0"):
        decide({"volume_min": 5.0, "volume_max": 1.0})


@given(volume=st.floats(min_value=0.0, max_value=1000.0), step=st.sampled_from([0.01, 0.1, 1.0, 0.001]))
def test_floor_to_step_is_on_step_and_never_above(volume: float, step: float) -> None:
    out = floor_to_step(volume, step)
    assert out <= volume + 1e-9
    assert abs(round(out / step) * step - out) < 1e-9
    assert volume - out < step + 1e-9
