"""Telegram commands (issue 29): the desk in a chat, for a trader away from any screen but a phone.

The bot long-polls the Bot API (``getUpdates``, httpx) in a thread of its own and answers only the chat ids
configured; a message from any other chat is ignored and alerted. Commands:

* ``/status``, ``/positions``, ``/daily``, ``/alerts``: what the journal says;
* ``/stopentry`` (REDUCE_ONLY) and ``/halt``: latched at once, as ``tradeguard kill`` would;
* ``/flatten``: asks for a confirmation reply (``YES``, from the same person, within ``confirm_seconds``), then
  the trading loop closes every position of ours.

Every action is recorded with the chat and the user who sent it (operator ``telegram:<user>``, via
``telegram``, auth ``chat <id> user <id>``): alerted and chained in the audit trail like any other. There is
no ``/reset``: its operator secret would stay in the chat's history.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import Field, SecretStr, field_validator

from tradeguard import ConfiguredPlugin, Job, KillState, PluginSettings, Runtime, Severity, SQLiteStore, hookimpl
from tradeguard.plugins.desk.desk import Caller, Desk

log = logging.getLogger("tradeguard.telegram_commands")
HELP = (
    "/status  the kill switch, the account, the terminal\n"
    "/positions  what is open\n"
    "/daily  today's result against the limit\n"
    "/alerts  the latest alerts\n"
    "/stopentry [reason]  REDUCE_ONLY: exits and stops only\n"
    "/halt [reason]  HALTED: no new orders\n"
    "/flatten [reason]  close every position (asks for a YES first)"
)


class TelegramCommandsSettings(PluginSettings):
    bot_token: SecretStr = Field(default=SecretStr(""), description="the bot's token (.secrets.toml); empty: off")
    chat_ids: list[int] = Field(default_factory=list, description="the only chats whose commands are obeyed")
    api_url: str = Field(default="https://api.telegram.org", description="the Bot API (a local Bot API server)")
    poll_seconds: int = Field(default=25, ge=1, le=50, description="getUpdates long-poll timeout")
    confirm_seconds: float = Field(default=60.0, gt=0, description="how long /flatten waits for its YES")
    user_ids: list[int] = Field(
        default_factory=list, description="if set, only these users (in those chats) may act; reading stays open"
    )

    @field_validator("api_url")
    @classmethod
    def _https(cls, value: str) -> str:
        """The token travels in the URL: in clear text only to a Bot API server on this machine."""
        url = urlsplit(value)
        if url.scheme != "https" and url.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("https:// (the bot's token is in every request's URL), or a local Bot API server")
        return value


class TelegramCommands(ConfiguredPlugin):
    settings_model = TelegramCommandsSettings
    stage = 6

    def __init__(self) -> None:
        super().__init__()
        self.rt: Runtime
        self.desk: Desk
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._confirming: dict[tuple[int, int], tuple[float, str]] = {}  # (chat, user) -> (asked at, reason)
        self._strangers: set[int] = set()
        self._started = time.time()

    @hookimpl
    def tradeguard_startup(self, runtime: Runtime) -> None:
        super().tradeguard_startup(runtime)
        self.rt = runtime
        self.desk = Desk(runtime, "telegram_commands")
        self._started = time.time()
        cfg = self.cfg
        if not (cfg.bot_token.get_secret_value() and cfg.chat_ids):
            return
        if not isinstance(runtime.store, SQLiteStore) or runtime.role != "trading":
            return
        self._thread = threading.Thread(target=self._poll, name="tradeguard-telegram", daemon=True)
        self._thread.start()

    @hookimpl
    def tradeguard_shutdown(self, runtime: Runtime) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=self.cfg.poll_seconds + 5)

    @hookimpl
    def periodic_jobs(self, runtime: Runtime) -> list[Job]:
        if self._thread is None:
            return []
        return [
            Job(
                name="telegram_commands.alerts",
                every=timedelta(seconds=1),
                run=lambda rt: self.desk.say_alerts(),
                wall_clock=True,
            )
        ]

    # -- the Bot API ----------------------------------------------------------------------------------

    def _url(self, method: str) -> str:
        return f"{self.cfg.api_url.rstrip('/')}/bot{self.cfg.bot_token.get_secret_value()}/{method}"

    def _scrub(self, text: str) -> str:
        return text.replace(self.cfg.bot_token.get_secret_value(), "<redacted>")

    def _poll(self) -> None:
        offset, pause = 0, 1.0
        with httpx.Client(timeout=self.cfg.poll_seconds + 10) as http:
            while not self._stopping.is_set():
                try:
                    answer = http.post(
                        self._url("getUpdates"),
                        json={"offset": offset, "timeout": self.cfg.poll_seconds, "allowed_updates": ["message"]},
                    )
                    answer.raise_for_status()
                    updates = answer.json().get("result", [])
                    pause = 1.0
                except (httpx.HTTPError, ValueError) as exc:
                    log.warning("telegram getUpdates failed", extra={"error": self._scrub(str(exc))})
                    self._stopping.wait(pause)
                    pause = min(30.0, pause * 2)
                    continue
                for update in updates if isinstance(updates, list) else []:
                    try:
                        offset = max(offset, int(update.get("update_id", 0)) + 1)
                        message = update.get("message") or {}
                        reply = self.handle(message)
                        if reply:
                            self._send(http, int(message["chat"]["id"]), reply)
                    except Exception:  # one bad update must not end the bot: logged, then the next one
                        log.error("telegram update not handled", exc_info=True)

    def _send(self, http: httpx.Client, chat: int, text: str) -> None:
        try:
            http.post(self._url("sendMessage"), json={"chat_id": chat, "text": text}).raise_for_status()
        except httpx.HTTPError as exc:
            log.warning("telegram sendMessage failed", extra={"error": self._scrub(str(exc))})

    # -- the commands ---------------------------------------------------------------------------------

    def handle(self, message: dict[str, Any]) -> str:
        """The reply to one message ('' for none)."""
        chat = int((message.get("chat") or {}).get("id", 0))
        sender = message.get("from") or {}
        user = int(sender.get("id", 0))
        text = str(message.get("text") or "").strip()
        sent = float(message.get("date", 0))
        if sent < self._started - 5:  # queued while the process was down: never acted on hours later
            return ""
        if chat not in self.cfg.chat_ids:
            if chat not in self._strangers:  # said once per chat, not once per message
                self._strangers.add(chat)
                self.desk.alert(Severity.WARNING, "telegram_stranger", f"telegram: a message from chat {chat} ignored")
            return ""
        who = Caller(
            name=f"telegram:{sender.get('username') or user}",
            scopes=("read", "control"),
            via="telegram",
            auth=f"chat {chat} user {user}",
        )
        command, _, rest = text.partition(" ")
        command = command.split("@", 1)[0].lower()  # /status@tradeguard_bot in a group
        reason = rest.strip() or f"{command} from telegram"
        log.info("telegram command", extra={"command": command, "chat": chat, "user": user})
        acting = command in ("/flatten", "/stopentry", "/halt", "yes")
        if acting and self.cfg.user_ids and user not in self.cfg.user_ids:
            self.desk.alert(Severity.WARNING, "telegram_refused", f"telegram: {command} from user {user} refused")
            return "not allowed: this user may read, not act"
        pending = self._confirming.pop((chat, user), None)
        if pending is not None and command == "yes":
            if sent - pending[0] > self.cfg.confirm_seconds:  # by the messages' own times, not when they arrived
                return "too late: send /flatten again"
            done = self.desk.order("flatten", {}, pending[1], who)
            return f"flatten: {done['result']}"
        if command == "/flatten":
            self._confirming[(chat, user)] = (sent, reason)
            return f"Reply YES within {self.cfg.confirm_seconds:g} s to close every position of ours ({reason})."
        if command == "/stopentry":
            return str(self.desk.latch(KillState.REDUCE_ONLY, reason, who)["result"])
        if command == "/halt":
            return str(self.desk.latch(KillState.HALTED, reason, who)["result"])
        if command == "/reset":
            return "not here: a reset needs the operator secret, which would stay in this chat. Use the console or CLI."
        reading = {
            "/status": self._status,
            "/positions": self._positions,
            "/daily": self._daily,
            "/alerts": self._alerts,
        }
        return reading.get(command, lambda: HELP)()

    def _status(self) -> str:
        s = self.desk.status()
        k, a, h = s["kill_switch"], s["account"], s["health"]
        lines = [f"kill switch {k['state']}" + (f" ({k['trigger']}: {k['message']})" if k["trigger"] else "")]
        if a:
            lines.append(f"equity {a['equity']:,.2f} {a['currency']}, drawdown today {a['daily_drawdown_pct']:.2f}%")
        lines.append(f"{len(s['open_positions'])} positions open, {len(s['pending_orders'])} orders pending")
        if h:
            lines.append(f"terminal {h.get('status', '?')}")
        return "\n".join(lines)

    def _positions(self) -> str:
        held = self.desk.status()["open_positions"]
        return "\n".join(f"{p['position_id']} {p['symbol']} {p['side']} {p['volume']:g}" for p in held) or "none open"

    def _daily(self) -> str:
        s = self.desk.status()
        a, limit = s["account"], s["limits"]["daily_loss_limit_pct"]
        if not a:
            return "no account snapshot yet"
        result = a["equity"] - a["day_start_equity"]
        cap = f" of the {limit:g}% limit" if limit else " (no daily limit)"
        return f"today {result:+,.2f} {a['currency']}: drawdown {a['daily_drawdown_pct']:.2f}%{cap}"

    def _alerts(self) -> str:
        alerts = self.desk.status()["recent_alerts"]
        return "\n".join(f"{x['time'][:19]} {x['severity']} {x['message']}" for x in alerts) or "no alerts"
