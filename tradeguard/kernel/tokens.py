"""Bearer tokens for the operator's desk: random, shown once, stored only as a hash.

A token is 256 random bits, so a plain SHA-256 of it cannot be brute-forced and is cheap to check on every
request (the operator secret, which a person chooses, gets scrypt instead). ``tradeguard token create``
prints the token once and the settings line that holds its hash; the control API compares hashes in
constant time and never shows either.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from typing import Literal

from pydantic import Field, field_validator

from tradeguard.kernel.schema import PluginSettings

Scope = Literal["read", "control"]
PREFIX = "tgt_"


class TokenEntry(PluginSettings):
    """One token's hash and what it may do: ``read`` (status, decisions) or ``control`` (the actions too)."""

    hash: str = Field(description="sha256$<hex> from `tradeguard token create`")
    scopes: list[Scope] = Field(default=["read"], min_length=1)

    @field_validator("hash")
    @classmethod
    def _form(cls, value: str) -> str:
        algorithm, _, digest = value.partition("$")
        if algorithm != "sha256" or len(digest) != 64:
            raise ValueError("not a token hash (sha256$ and 64 hex digits: tradeguard token create makes one)")
        return value


def new_token() -> tuple[str, str]:
    """``(token, its hash)``: show the token once, keep only the hash."""
    token = PREFIX + secrets.token_urlsafe(32)
    return token, token_hash(token)


def token_hash(token: str) -> str:
    return "sha256$" + hashlib.sha256(token.encode()).hexdigest()


def holder(tokens: Mapping[str, TokenEntry], presented: str) -> tuple[str, tuple[Scope, ...]] | None:
    """The name and scopes of the token presented, or None; every entry is compared in constant time."""
    digest = token_hash(presented)
    found = None
    for name, entry in tokens.items():
        if hmac.compare_digest(entry.hash, digest):
            found = (name, tuple(entry.scopes))
    return found
