"""Every refusal the risk guard can give names its rule and the settings key that governs it (issue 24, item 7)."""

from __future__ import annotations

import ast
import inspect

from tradeguard.plugins.risk import rules
from tradeguard.plugins.risk.risk_guard import RiskGuardSettings
from tradeguard.plugins.risk.rules import RULES, SWITCHED_OFF_BY, reject


def refusals() -> list[tuple[str, str]]:
    """(reason code, settings key) of every ``reject`` call in the risk guard's rules."""
    found = []
    for node in ast.walk(ast.parse(inspect.getsource(rules))):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "reject":
            code, key = node.args[0], node.args[2]
            names = [n.value for n in ast.walk(code) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
            keys = [n.value for n in ast.walk(key) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
            found += [(c, k) for c, k in zip(names, keys, strict=True)]
    return found


def test_every_refusal_names_its_rule_and_a_real_key() -> None:
    pairs = refusals()
    assert len(pairs) >= 18 and len({c for c, _ in pairs}) >= 14  # every rule the guard has
    fields = set(RiskGuardSettings.model_fields)
    for code, key in pairs:
        assert key in fields, (code, key)
        message = reject(code, "what happened", key).message
        assert message.startswith(f"{code}: what happened") and f"rule {code}" in message
        assert f"risk_guard.{key}" in message
        if key in SWITCHED_OFF_BY:
            assert f"off with risk_guard.{key} = {SWITCHED_OFF_BY[key]}" in message


def test_the_stop_risk_left_of_todays_limit_names_the_daily_limit_not_the_switched_off_rule() -> None:
    """Found: "11992.00 lost if every stop is hit > the 500.00 left" with max_total_stop_risk_pct = 0."""
    codes = {c: k for c, k in refusals() if "left of today" in c or k == "daily_loss_limit_pct"}
    assert codes.get("daily_loss_limit") == "daily_loss_limit_pct"
    assert ("max_total_stop_risk", "daily_loss_limit_pct") not in refusals()


def test_each_rule_reads_keys_of_the_settings_and_every_key_it_refuses_by_is_its_own() -> None:
    fields = set(RiskGuardSettings.model_fields)
    for rule in RULES:
        assert rule.keys and set(rule.keys) <= fields, type(rule).__name__
        source = inspect.getsource(type(rule))
        named = {k for c, k in refusals() if f'"{c}"' in source and f'"{k}"' in source}
        assert named <= set(rule.keys), (type(rule).__name__, named - set(rule.keys))
