"""No log call passes an ``extra`` key that LogRecord owns: such a call raises at run time."""

from __future__ import annotations

import ast
import logging

from .conftest import REPO

RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def test_no_extra_key_shadows_a_log_record_attribute() -> None:
    offenders = []
    for path in (REPO / "tradeguard").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.keyword) and node.arg == "extra" and isinstance(node.value, ast.Dict):
                for key in node.value.keys:
                    if isinstance(key, ast.Constant) and key.value in RESERVED:
                        offenders.append(f"{path.relative_to(REPO)}:{key.lineno} {key.value!r}")
    assert offenders == []
