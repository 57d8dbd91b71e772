"""Alert manager against real destinations: local HTTP and SMTP servers, a real SQLite outbox."""

from __future__ import annotations

import socket
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from tradeguard.plugins.alerting.alert_manager import AlertManager
from tradeguard.store.sqlite import Store
from tradeguard.testing import make_runtime

from ...receiver import Receiver


def runtime(db: Path, destinations: dict[str, Any], **cfg: Any) -> Any:
    settings = {
        "dedup_seconds": 300,
        "critical_rate_limit_seconds": 30,
        "poll_seconds": 0.02,
        "retry_seconds": 0.05,
        "destinations": destinations,
        **cfg,
    }
    return make_runtime(("alert_manager", AlertManager()), store=Store(db), settings={"alert_manager": settings})


def wait_until(check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out waiting for delivery"
        time.sleep(0.02)


def outbox(db: Path, column: str) -> list[Any]:
    return [r[0] for r in Store(db).query(f"SELECT {column} FROM alert_outbox ORDER BY id")]


def raise_alert(
    rt: Any, severity: str = "ERROR", code: str = "order_unknown", symbol: str = "EURUSD", message: str = "m"
) -> None:
    rt.alert(
        channel="EXECUTION",
        severity=severity,
        module="execution_engine",
        error_code=code,
        message=message,
        symbol=symbol,
    )


def test_dedup_counts_repeats_and_summarises_them_when_the_window_ends(tmp_path: Path, receiver: Receiver) -> None:
    rt = runtime(tmp_path / "a.db", {"hook": {"kind": "webhook", "url": receiver.url + "/alerts"}})
    try:
        for n in range(5):
            raise_alert(rt, message=f"attempt {n}")
            rt.clock.advance(timedelta(seconds=30))
        raise_alert(rt, code="other")  # another key is not held back
        wait_until(lambda: len(receiver.posts) == 2)
        assert [p[1]["message"] for p in receiver.posts] == ["attempt 0", "m"]
        rt.clock.advance(timedelta(seconds=300))
        rt.scheduler.run_due(rt)
        wait_until(lambda: len(receiver.posts) == 3)
        summary = receiver.posts[2][1]
        assert summary["message"].startswith("4 more order_unknown alert(s) held back by the dedup window")
        assert summary["message"].endswith("last: attempt 4") and summary["context"]["suppressed"] == 4
        assert (
            rt.metrics.registry.get_sample_value(
                "tradeguard_alerts_total", {"destination": "-", "outcome": "suppressed"}
            )
            == 4
        )
    finally:
        rt.stop()


def test_critical_rate_limit_is_per_type_and_never_silent(tmp_path: Path, receiver: Receiver) -> None:
    rt = runtime(tmp_path / "r.db", {"hook": {"kind": "webhook", "url": receiver.url}}, dedup_seconds=0)
    try:
        for symbol in ("EURUSD", "GBPUSD", "USDJPY"):  # three keys, one CRITICAL type
            raise_alert(rt, "CRITICAL", "connection_lost", symbol)
        raise_alert(rt, "CRITICAL", "margin_call", "EURUSD")  # another type passes
        wait_until(lambda: len(receiver.posts) == 2)
        rt.clock.advance(timedelta(seconds=31))
        raise_alert(rt, "CRITICAL", "connection_lost", "EURUSD")  # window over: summary, then this one
        wait_until(lambda: len(receiver.posts) == 4)
        messages = [p[1]["message"] for p in receiver.posts]
        assert messages[2].startswith("2 more connection_lost alert(s) held back by the rate limit window")
        assert receiver.posts[2][1]["severity"] == "CRITICAL"
    finally:
        rt.stop()


def test_a_critical_alert_survives_a_failing_channel_and_a_restart(tmp_path: Path, receiver: Receiver) -> None:
    receiver.script = {"": [(500, {})] * 1000}  # the destination is down
    db = tmp_path / "c.db"
    rt = runtime(db, {"hook": {"kind": "webhook", "url": receiver.url}}, retry_seconds=0.05)
    raise_alert(rt, "CRITICAL", "max_drawdown", message="equity down 10%")
    wait_until(lambda: outbox(db, "attempts") and outbox(db, "attempts")[0] >= 2)
    rt.stop()
    row = Store(db).query("SELECT status, last_error FROM alert_outbox")[0]
    assert (row[0], row[1]) == ("pending", "webhook: HTTP 500") and not receiver.posts
    receiver.script = {}  # the destination is back; a new process delivers what the old one could not
    rt = runtime(db, {"hook": {"kind": "webhook", "url": receiver.url}})
    try:
        wait_until(lambda: receiver.posts)
        assert receiver.posts[0][1]["message"] == "equity down 10%"
        wait_until(lambda: outbox(db, "status") == ["sent"])
    finally:
        rt.stop()


def test_rows_are_dead_lettered_after_max_attempts(tmp_path: Path, receiver: Receiver) -> None:
    receiver.script = {"": [(503, {})] * 1000}
    db = tmp_path / "d.db"
    rt = runtime(db, {"hook": {"kind": "webhook", "url": receiver.url}}, max_attempts=3, retry_seconds=0.01)
    try:
        raise_alert(rt)
        wait_until(lambda: outbox(db, "status") == ["dead"])
        assert outbox(db, "attempts") == [3]
        assert (
            rt.metrics.registry.get_sample_value("tradeguard_alerts_total", {"destination": "hook", "outcome": "dead"})
            == 1
        )
    finally:
        rt.stop()


def test_slack_telegram_and_alertmanager_payloads_and_telegram_429(tmp_path: Path, receiver: Receiver) -> None:
    receiver.script = {
        "/bot123:SECRET/sendMessage": [(429, {"ok": False, "error_code": 429, "parameters": {"retry_after": 1}})]
    }
    destinations = {
        "slack": {"kind": "slack", "url": receiver.url + "/slack"},
        "tg": {"kind": "telegram", "api_url": receiver.url, "bot_token": "123:SECRET", "chat_id": "-100"},
        "am": {"kind": "alertmanager", "url": receiver.url, "min_severity": "CRITICAL"},
    }
    db = tmp_path / "s.db"
    rt = runtime(db, destinations, retry_seconds=60)  # only retry_after can bring the 429'd row back soon
    try:
        raise_alert(rt, "CRITICAL", "connection_lost", message="terminal gone")
        wait_until(lambda: len(receiver.posts) == 3)
        slack = next(body for path, body in receiver.posts if path == "/slack")
        assert slack["text"] == "[CRITICAL] EXECUTION execution_engine/connection_lost EURUSD: terminal gone"
        tg = next(body for path, body in receiver.posts if path == "/bot123:SECRET/sendMessage")
        assert tg == {"chat_id": "-100", "text": slack["text"]}
        am = next(body for path, body in receiver.posts if path == "/api/v2/alerts")
        assert am[0]["labels"] == {
            "alertname": "tradeguard_connection_lost",
            "severity": "critical",
            "channel": "EXECUTION",
            "module": "execution_engine",
            "symbol": "EURUSD",
        }
        assert am[0]["annotations"]["summary"] == "terminal gone"
        rows = [
            tuple(r)
            for r in Store(db).query("SELECT channel, attempts, status, last_error FROM alert_outbox ORDER BY id")
        ]
        (tg,) = [r for r in rows if r[0] == "tg"]  # the 429's error is kept until a retry delivers it, then cleared
        assert tg in (("tg", 1, "pending", "telegram: HTTP 429 rate limited"), ("tg", 2, "sent", ""))
        assert all(err == "" for name, _, status, err in rows if status == "sent") and "SECRET" not in str(rows)
        raise_alert(rt, "ERROR", "order_rejected")  # below the Alertmanager destination's min_severity
        wait_until(lambda: len(receiver.posts) == 5)
        assert sum(1 for path, _ in receiver.posts if path == "/api/v2/alerts") == 1
    finally:
        rt.stop()


def test_smtp_delivers_the_alert_as_an_email(tmp_path: Path) -> None:
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Message

    class Inbox(Message):
        def __init__(self) -> None:
            super().__init__()
            self.mail: list[Any] = []

        def handle_message(self, message: Any) -> None:
            self.mail.append(message)

    inbox = Inbox()
    with socket.socket() as probe:  # aiosmtpd needs a concrete port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    smtpd = Controller(inbox, hostname="127.0.0.1", port=port)
    smtpd.start()
    try:
        dest = {
            "kind": "smtp",
            "smtp_host": "127.0.0.1",
            "smtp_port": port,
            "starttls": False,
            "sender": "tradeguard@desk.test",
            "to": ["ops@desk.test"],
        }
        rt = runtime(tmp_path / "m.db", {"mail": dest})
        try:
            raise_alert(rt, "CRITICAL", "max_drawdown", message="equity down 10%")
            wait_until(lambda: inbox.mail)
        finally:
            rt.stop()
        mail = inbox.mail[0]
        assert mail["To"] == "ops@desk.test" and "max_drawdown" in mail["Subject"]
        assert "equity down 10%" in mail.get_payload()
    finally:
        smtpd.stop()


def test_dedup_counts_the_runtime_clock_not_the_wall_clock(tmp_path: Path, receiver: Receiver) -> None:
    """In a replay the runtime's clock is the market's: repeats minutes apart in market time are each raised, as
    live, however fast the replay runs; repeats inside the window are held, however slowly (issue 24, item 6)."""
    rt = runtime(tmp_path / "clock.db", {"hook": {"kind": "webhook", "url": receiver.url}}, dedup_seconds=300)
    try:
        manager = rt.pm.get_plugin("alert_manager")
        raise_alert(rt, message="first")
        rt.clock.advance(timedelta(minutes=10))  # ten market minutes, a few microseconds of wall time
        raise_alert(rt, message="second")
        rt.clock.advance(timedelta(minutes=1))
        raise_alert(rt, message="held")  # a minute after the second: inside its window
        time.sleep(0.5)  # half a second of wall time: a window on the wall clock would still be open
        assert manager.windows and [w.suppressed for w in manager.windows.values()] == [1]
        wait_until(lambda: len(receiver.posts) >= 2)
        assert [body["message"] for _, body in receiver.posts] == ["first", "second"]
    finally:
        rt.stop()
