"""Logs: readable lines on a terminal, one JSON object per line for files and services; correlation ids and
secrets redacted; a warning repeated word for word is said once, then counted.

Library code logs through ``logging.getLogger("tradeguard....")`` and passes structured fields
as ``extra={...}``. ``signal_id``/``client_id`` are bound with :func:`correlate` for the span of
a decision or an order and appear on every line logged inside it. Values of secret-looking keys,
and any registered secret value wherever it appears in a message, are replaced.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Iterator
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tradeguard.kernel.settings import REDACTED, SECRET_KEY

_signal_id: ContextVar[str] = ContextVar("signal_id", default="")
_client_id: ContextVar[str] = ContextVar("client_id", default="")
_secret_values: set[str] = set()

#: LogRecord attributes that are not user fields.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def register_secret(value: str) -> None:
    """Never let this value appear in a log line (API tokens, passwords, webhook URLs with keys)."""
    if value and len(value) >= 4:
        _secret_values.add(value)


def bind_signal(signal_id: str) -> Token[str]:
    """Bind ``signal_id`` to every line logged until :func:`unbind_signal` (cheaper than ``correlate``)."""
    return _signal_id.set(signal_id)


def unbind_signal(token: Token[str]) -> None:
    _signal_id.reset(token)


def bind_client(client_id: str) -> Token[str]:
    """Bind ``client_id`` to every line logged until :func:`unbind_client`."""
    return _client_id.set(client_id)


def unbind_client(token: Token[str]) -> None:
    _client_id.reset(token)


@contextlib.contextmanager
def correlate(*, signal_id: str | None = None, client_id: str | None = None) -> Iterator[None]:
    tokens = []
    if signal_id is not None:
        tokens.append((_signal_id, _signal_id.set(signal_id)))
    if client_id is not None:
        tokens.append((_client_id, _client_id.set(client_id)))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def scrub(text: str) -> str:
    for secret in _secret_values:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def _clean(key: str, value: Any) -> Any:
    if SECRET_KEY.search(key):
        return REDACTED
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: _clean(str(k), v) for k, v in value.items()}
    return value


class JsonFormatter(logging.Formatter):
    """Render a record as one JSON line: time, level, logger, message, correlation, extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="microseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": scrub(record.getMessage()),
        }
        if sid := _signal_id.get():
            out["signal_id"] = sid
        if cid := _client_id.get():
            out["client_id"] = cid
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = _clean(key, value)
        if record.exc_info:
            out["exc"] = scrub(self.formatException(record.exc_info))
        return json.dumps(out, default=str)


class TextFormatter(JsonFormatter):
    """One readable line: time, level, logger, message, then the structured fields as key=value."""

    def format(self, record: logging.LogRecord) -> str:
        fields = json.loads(super().format(record))
        head = f"{fields.pop('ts')[11:19]} {fields.pop('level'):<8} {fields.pop('logger')}: {fields.pop('msg')}"
        exc = fields.pop("exc", "")
        tail = " ".join(f"{k}={v}" for k, v in fields.items())
        return f"{head}  {tail}".rstrip() + (f"\n{exc}" if exc else "")


class Collapsing(logging.Handler):
    """Says a warning (or worse) once, then counts its repeats instead of printing them, for ``window`` seconds: a
    repeat is the same logger, level, message and fields. The count is said when the window ends (at the next
    warning logged, or when logging stops). Below WARNING, and a line with a traceback, pass as they are."""

    def __init__(self, inner: logging.Handler, window: float = 60.0, limit: int = 1000) -> None:
        super().__init__()
        self.inner, self.window, self.limit = inner, window, limit
        #: key -> [window start, repeats, the last repeat]: at most ``limit`` keys, only the last minute's
        self._seen: dict[tuple[Any, ...], list[Any]] = {}

    @staticmethod
    def _key(record: logging.LogRecord) -> tuple[Any, ...]:
        fields = sorted((k, repr(v)) for k, v in record.__dict__.items() if k not in _STANDARD and k[:1] != "_")
        return (record.name, record.levelno, record.getMessage(), tuple(fields))

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno < logging.WARNING or record.exc_info:
            self.inner.handle(record)
            return
        self._sweep(record.created)
        key = self._key(record)
        seen = self._seen.get(key)
        if seen is not None:
            seen[1] += 1
            seen[2] = record
            return
        if len(self._seen) >= self.limit:  # a flood of distinct lines: the oldest window ends early
            self._end(next(iter(self._seen)))
        self._seen[key] = [record.created, 0, None]
        self.inner.handle(record)

    def _sweep(self, now: float) -> None:
        for key in [k for k, seen in self._seen.items() if now - seen[0] >= self.window]:
            self._end(key)

    def _end(self, key: tuple[Any, ...]) -> None:
        _, repeats, last = self._seen.pop(key)
        if repeats:
            summary = logging.makeLogRecord(
                {**last.__dict__, "msg": f"{last.getMessage()} (repeated {repeats} more times)", "args": None}
            )
            self.inner.handle(summary)

    def flush(self) -> None:
        self.inner.flush()

    def close(self) -> None:
        with self.lock:  # type: ignore[union-attr]  # (logging.Handler creates it in __init__)
            for key in list(self._seen):
                self._end(key)
        self.inner.close()
        super().close()


def configure(level: str = "INFO", file: str | Path = "", style: str = "auto") -> None:
    """Route the ``tradeguard`` logger tree to stderr or a file (idempotent). ``style``: "text" (readable lines),
    "json" (one object per line), or "auto": text on a terminal, JSON to a file or anything else (a service's
    journal, a pipe a collector reads)."""
    root = logging.getLogger("tradeguard")
    for old in list(root.handlers):
        if getattr(old, "_tradeguard", False):
            root.removeHandler(old)
            old.close()
    if file:
        Path(file).parent.mkdir(parents=True, exist_ok=True)
        inner: logging.Handler = logging.FileHandler(file, encoding="utf-8")
    else:
        inner = logging.StreamHandler(sys.stderr)
    text = style == "text" or (style == "auto" and not file and sys.stderr.isatty())
    inner.setFormatter(TextFormatter() if text else JsonFormatter())
    handler = Collapsing(inner)
    handler._tradeguard = True  # type: ignore[attr-defined]  # marks our handler for idempotent reconfigure
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
