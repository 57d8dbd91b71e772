"""runtime.alert(): the fast path builds the same Alert as full validation, and bad parts are named."""

from __future__ import annotations

import pydantic
import pytest

from tradeguard import Alert, AlertChannel, Severity
from tradeguard.testing import T0, make_runtime


def test_the_fast_path_gives_the_validated_alert() -> None:
    rt = make_runtime()
    fast = rt.alert(
        channel="risk", severity="critical", module="m", error_code="e", message="x", symbol="EURUSD", equity=1.5
    )
    assert fast == Alert(
        time=T0,
        channel="RISK",
        severity="CRITICAL",
        module="m",
        error_code="e",
        message="x",
        symbol="EURUSD",
        context={"equity": 1.5},
    )
    assert fast.channel is AlertChannel.RISK and fast.severity is Severity.CRITICAL


@pytest.mark.parametrize(
    ("field", "parts"),
    [
        ("channel", {"channel": "PAGER"}),
        ("severity", {"severity": "LOUD"}),
        ("message", {"message": None}),
        ("symbol", {"symbol": 7}),
    ],
)
def test_bad_parts_are_refused_naming_the_field(field: str, parts: dict[str, object]) -> None:
    rt = make_runtime()
    kwargs = {"channel": "RISK", "severity": "ERROR", "module": "m", "error_code": "e", "message": "x", **parts}
    with pytest.raises(pydantic.ValidationError, match=field):
        rt.alert(**kwargs)  # type: ignore[arg-type]
