"""Documentation that users rely on cannot drift from the code."""

from __future__ import annotations

import re
import tomllib

from pydantic import BaseModel

from tradeguard import reasons
from tradeguard.kernel.settings import KERNEL_TABLES

from .conftest import REPO


def builtin_models() -> dict[str, type[BaseModel]]:
    from tradeguard.kernel.plugins import candidates

    models = dict(KERNEL_TABLES)
    for name, ep in candidates().items():
        plugin = ep.load()() if ep.value.startswith("tradeguard.") else None
        if hasattr(plugin, "tradeguard_settings"):  # some built-ins have no settings of their own
            models[name] = plugin.tradeguard_settings()
    return models


def _check_documented(text: str, header: str, model: type[BaseModel]) -> None:
    assert f"[{header}]" in text, f"[{header}] missing from settings.toml"
    section = text.split(f"[{header}]", 1)[1].split("\n[", 1)[0]
    for key, info in model.model_fields.items():
        if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
            inline = re.search(rf"^{key} = \{{(.*)\}}", section, re.M)  # a row of a table: key = {{ ... }}
            if inline is None:
                _check_documented(text, f"{header}.{key}", info.annotation)
                continue
            for inner in info.annotation.model_fields:
                assert re.search(rf"\b{inner} =", inline.group(1)), f"{header}.{key}.{inner} missing from its row"
        assert re.search(rf"^#?\s*{key} =", section, re.M), f"{header}.{key} missing from settings.toml"
        before = re.split(rf"^#?\s*{key} =", section, maxsplit=1, flags=re.M)[0].rstrip().splitlines()
        assert before and before[-1].lstrip().startswith("#"), f"{header}.{key} has no comment above it"


def test_settings_toml_documents_every_key_with_a_comment() -> None:
    text = (REPO / "settings.toml").read_text()
    tomllib.loads(text)  # it parses
    for table, model in builtin_models().items():
        _check_documented(text, f"default.{table}", model)


def test_reason_table_in_docs_matches_the_code() -> None:
    assert reasons.markdown_table() in (REPO / "docs" / "reasons.md").read_text()


def test_every_reason_code_is_snake_case() -> None:
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", code) for code in reasons.REASONS)
