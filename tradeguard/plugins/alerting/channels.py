"""Delivery channels: each turns one alert record into one message to one destination.

A channel raises :class:`DeliveryError` when the destination did not take the message;
``retry_after`` carries the destination's own back-off (Telegram's HTTP 429) when it gave one.
Credentials come from settings (``.secrets.toml`` or the environment) and never appear in errors.
"""

from __future__ import annotations

import logging
import smtplib
from email.message import EmailMessage
from typing import Any, Literal

import httpx
from pydantic import BaseModel, Field, SecretStr

from tradeguard.models import AlertChannel, Severity

log = logging.getLogger("tradeguard.alert.delivery")

Kind = Literal["log", "webhook", "slack", "telegram", "smtp", "alertmanager"]


class DeliveryError(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Destination(BaseModel):
    """One place alerts go, and which of them."""

    kind: Kind
    min_severity: Severity = Severity.WARNING
    channels: list[AlertChannel] = Field(default_factory=list, description="empty = every channel")
    url: str = ""
    bot_token: SecretStr = SecretStr("")
    chat_id: str = ""
    api_url: str = "https://api.telegram.org"
    smtp_host: str = ""
    smtp_port: int = 587
    starttls: bool = True
    username: str = ""
    password: SecretStr = SecretStr("")
    sender: str = ""
    to: list[str] = Field(default_factory=list)
    timeout_seconds: float = Field(default=10.0, gt=0)


SEVERITY_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.ERROR: 2, Severity.CRITICAL: 3}


def routes(dest: Destination, record: dict[str, Any]) -> bool:
    severity, channel = Severity(record["severity"]), AlertChannel(record["channel"])
    return SEVERITY_RANK[severity] >= SEVERITY_RANK[dest.min_severity] and (
        not dest.channels or channel in dest.channels
    )


def text(record: dict[str, Any]) -> str:
    where = f" {record['symbol']}" if record.get("symbol") else ""
    return (
        f"[{record['severity']}] {record['channel']} {record['module']}/{record['error_code']}{where}: "
        f"{record['message']}"
    )


def _post(dest: Destination, url: str, payload: Any, what: str) -> None:
    try:
        res = httpx.post(url, json=payload, timeout=dest.timeout_seconds)
    except httpx.HTTPError as exc:  # the URL may hold a token: name the kind, not the address
        raise DeliveryError(f"{what}: {type(exc).__name__}") from None
    if res.status_code == 429:
        retry = None
        try:
            retry = float(res.json().get("parameters", {}).get("retry_after"))
        except (ValueError, TypeError, AttributeError):
            retry = float(res.headers["Retry-After"]) if res.headers.get("Retry-After", "").isdigit() else None
        raise DeliveryError(f"{what}: HTTP 429 rate limited", retry_after=retry)
    if res.status_code >= 300:
        raise DeliveryError(f"{what}: HTTP {res.status_code}")


def send(dest: Destination, record: dict[str, Any]) -> None:
    """Deliver ``record`` (an alert's JSON form) to ``dest``; raise DeliveryError if it was not taken."""
    if dest.kind == "log":
        log.warning(text(record), extra={"alert": record})
    elif dest.kind == "webhook":
        _post(dest, dest.url, record, "webhook")
    elif dest.kind == "slack":
        _post(dest, dest.url, {"text": text(record)}, "slack")
    elif dest.kind == "telegram":
        url = f"{dest.api_url.rstrip('/')}/bot{dest.bot_token.get_secret_value()}/sendMessage"
        _post(dest, url, {"chat_id": dest.chat_id, "text": text(record)}, "telegram")
    elif dest.kind == "alertmanager":
        labels = {
            "alertname": f"tradeguard_{record['error_code']}",
            "severity": record["severity"].lower(),
            "channel": record["channel"],
            "module": record["module"],
            "symbol": record.get("symbol", ""),
        }
        _post(
            dest,
            f"{dest.url.rstrip('/')}/api/v2/alerts",
            [
                {
                    "labels": {k: v for k, v in labels.items() if v},
                    "annotations": {"summary": record["message"]},
                    "startsAt": record["time"],
                }
            ],
            "alertmanager",
        )
    else:
        _smtp(dest, record)


def _smtp(dest: Destination, record: dict[str, Any]) -> None:
    msg = EmailMessage()
    msg["Subject"] = text(record)[:200]
    msg["From"] = dest.sender
    msg["To"] = ", ".join(dest.to)
    msg.set_content(text(record) + "\n\n" + "\n".join(f"{k}: {v}" for k, v in record.get("context", {}).items()))
    try:
        with smtplib.SMTP(dest.smtp_host, dest.smtp_port, timeout=dest.timeout_seconds) as smtp:
            if dest.starttls:
                smtp.starttls()
            if dest.username:
                smtp.login(dest.username, dest.password.get_secret_value())
            smtp.send_message(msg)
    except (OSError, smtplib.SMTPException) as exc:
        raise DeliveryError(f"smtp: {type(exc).__name__}") from None
