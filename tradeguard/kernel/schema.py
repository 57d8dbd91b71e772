"""The base of every settings table (kernel and plugins): a leaf module anything may import."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, ValidationInfo


class PluginSettings(BaseModel):
    """Base for a settings table: immutable, strict types, unknown keys refused."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def validated_for_live(info: ValidationInfo, *, trading: bool = False) -> bool:
    """Whether a table is being validated for the live environment; with ``trading``, for a process that
    trades there (the operator's commands, ``kill`` above all, are built with ``trading=False``)."""
    context = info.context or {}
    return context.get("env") == "live" and (not trading or context.get("trading", True))
