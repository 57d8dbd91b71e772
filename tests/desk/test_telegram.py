"""Telegram commands against a local HTTP server that speaks the Bot API (getUpdates, sendMessage), with a real
`tradeguard run`: the configured chat is obeyed and every action recorded with its chat and user; /flatten
waits for a YES; another chat is ignored and alerted; there is no /reset."""

from __future__ import annotations

import json
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ..helpers import start_trading

TOKEN = "123456:bot-token-for-tests"
CHAT, USER, STRANGER = 4242, 777, 999


class BotApi:
    """The Bot API, as much as the bot uses: updates queued by the test, messages the bot sent recorded."""

    def __init__(self) -> None:
        self.updates: list[dict[str, Any]] = []
        self.sent: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self._next = 1
        self.lock = threading.Lock()

    def say(self, text: str, chat: int = CHAT, user: int = USER, age: float = 0.0) -> None:
        with self.lock:
            sender = {"id": user, "username": "trader"}
            message = {"chat": {"id": chat}, "from": sender, "text": text, "date": int(time.time() - age)}
            self.updates.append({"update_id": self._next, "message": message})
            self._next += 1

    def replies(self) -> list[str]:
        with self.lock:
            return [m["text"] for m in self.sent]


@contextmanager
def bot_api() -> Iterator[tuple[BotApi, int]]:
    api = BotApi()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"] or 0)) or b"{}")
            api.paths.append(self.path.split("/bot", 1)[0])
            if self.path.endswith("/getUpdates"):
                deadline = time.monotonic() + min(float(body.get("timeout", 0)), 1.0)
                while True:
                    with api.lock:
                        ready = [u for u in api.updates if u["update_id"] >= body.get("offset", 0)]
                    if ready or time.monotonic() > deadline:
                        break
                    time.sleep(0.05)
                result: Any = ready
            else:
                with api.lock:
                    api.sent.append(body)
                result = {"message_id": len(api.sent)}
            payload = json.dumps({"ok": True, "result": result}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield api, server.server_address[1]
    finally:
        server.shutdown()


def wait_reply(api: BotApi, count: int, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while len(api.replies()) < count:
        assert time.monotonic() < deadline, f"no reply #{count}: {api.replies()}"
        time.sleep(0.05)
    return api.replies()[count - 1]


def query(db: Path, sql: str) -> list[tuple]:
    with closing(sqlite3.connect(db)) as con:
        return con.execute(sql).fetchall()


def test_the_bot_obeys_its_chat_asks_before_flattening_and_records_who(tmp_path: Path) -> None:
    with bot_api() as (api, port):
        proc = start_trading(
            tmp_path,
            f'[default.telegram_commands]\nbot_token = "{TOKEN}"\nchat_ids = [{CHAT}]\n'
            f'api_url = "http://127.0.0.1:{port}"\npoll_seconds = 1\n',
        )
        db = tmp_path / "var" / "tradeguard.db"
        try:
            deadline = time.monotonic() + 120
            while not (db.exists() and query(db, "SELECT 1 FROM fills LIMIT 1")):
                assert time.monotonic() < deadline and proc.poll() is None, "the process did not trade"
                time.sleep(0.2)
            api.say("/halt", age=3600)  # queued an hour ago, while the process was down: never acted on
            api.say("/status")
            assert wait_reply(api, 1).startswith("kill switch ACTIVE")
            api.say("/halt", chat=STRANGER, user=STRANGER)  # another chat: ignored
            api.say("/reset")
            assert "not here" in wait_reply(api, 2)
            assert query(db, "SELECT COUNT(*) FROM kill_switch_events") == [(0,)]  # the stranger's /halt did nothing
            api.say("/stopentry news at 14:30")
            assert wait_reply(api, 3) == "REDUCE_ONLY by telegram:trader"
            api.say("/flatten end of day")
            assert wait_reply(api, 4).startswith("Reply YES within 60 s")
            api.say("yes")
            assert wait_reply(api, 5).startswith("flatten: sent:")
            api.say("/positions")
            assert wait_reply(api, 6) == "none open"
            for command in ("/daily", "/alerts", "/help"):
                api.say(command)
            assert "today" in wait_reply(api, 7) and wait_reply(api, 9).startswith("/status")
            events = query(db, "SELECT to_state, operator, via, auth, message FROM kill_switch_events")
            assert events[0] == (
                "REDUCE_ONLY",
                "telegram:trader",
                "telegram",
                f"chat {CHAT} user {USER}",
                "news at 14:30",
            )
            deadline = time.monotonic() + 10  # the chain is written behind
            while not any(
                '"via":"telegram"' in r[0] and f"chat {CHAT} user {USER}" in r[0]
                for r in query(db, "SELECT record FROM audit WHERE kind = 'operator_action'")
            ):
                assert time.monotonic() < deadline, "the flatten was not chained"
                time.sleep(0.2)
            alerts = [r[0] for r in query(db, "SELECT record FROM alert_outbox")] + [
                line for line in (tmp_path / "run.log").read_text().splitlines() if "telegram_stranger" in line
            ]
            assert alerts and any(f"chat {STRANGER}" in a for a in alerts)
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err[-2000:]
        assert TOKEN not in (tmp_path / "run.log").read_text() + err
        assert all(m["chat_id"] != STRANGER for m in api.sent)  # nothing said to a stranger
