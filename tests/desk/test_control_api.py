"""The control API in a real runtime, over real HTTP: tokens and scopes, failed authentications rate-limited and
alerted, the console's CSRF, secrets never in a response, secure defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tradeguard.errors import ConfigError
from tradeguard.kernel.plugins import candidates
from tradeguard.kernel.tokens import new_token
from tradeguard.store.sqlite import Store
from tradeguard.testing import make_runtime

from ..helpers import Alerts

READER, READER_HASH = new_token()
CONTROLLER, CONTROLLER_HASH = new_token()
TOKENS = {
    "dashboard": {"hash": READER_HASH, "scopes": ["read"]},
    "alice": {"hash": CONTROLLER_HASH, "scopes": ["read", "control"]},
}


def desk(tmp_path: Path, alerts: Alerts | None = None, **settings: Any) -> Any:
    plugins = [(n, candidates()[n].load()()) for n in ("kill_switch", "control_api")]
    if alerts is not None:
        plugins.append(("alerts", alerts))
    cfg = {"control_api": {"port": 0, "tokens": TOKENS, **settings}}
    return make_runtime(*plugins, store=Store(tmp_path / "d.db"), settings=cfg)


def test_tokens_scopes_and_what_a_response_never_holds(tmp_path: Path) -> None:
    rt = desk(tmp_path)
    try:
        base = f"http://127.0.0.1:{rt.pm.get_plugin('control_api').port}"
        bodies = []
        with httpx.Client(base_url=base) as http:
            assert http.get("/api/status").status_code == 401
            assert http.get("/api/status", headers={"Authorization": "Bearer tgt_nope"}).status_code == 401
            reader = {"Authorization": f"Bearer {READER}"}
            status = http.get("/api/status", headers=reader)
            assert status.status_code == 200 and status.json()["kill_switch"]["state"] == "ACTIVE"
            refused = http.post("/api/actions/stop-entries", json={"reason": "x"}, headers=reader)
            assert refused.status_code == 403 and "scope control" in refused.text
            controller = {"Authorization": f"Bearer {CONTROLLER}"}
            done = http.post("/api/actions/stop-entries", json={"reason": "news at 14:30"}, headers=controller)
            assert done.status_code == 200 and done.json()["kill_switch"]["state"] == "REDUCE_ONLY"
            again = http.post("/api/actions/stop-entries", json={"reason": "again"}, headers=controller)
            assert again.json()["result"].startswith("already REDUCE_ONLY")
            assert http.post("/api/actions/halt", json={}, headers=controller).status_code == 422  # a reason is due
            assert http.get("/docs").status_code == 200 and "/api/actions/flatten" in http.get("/openapi.json").text
            bodies += [status.text, refused.text, done.text, again.text]
        events = rt.store.kill_events_after(0)
        assert (events[-1]["operator"], events[-1]["via"], events[-1]["auth"]) == ("alice", "api", "token alice")
        assert all(READER not in b and CONTROLLER not in b and READER_HASH not in b for b in bodies)
    finally:
        rt.stop()


def test_failed_authentications_are_rate_limited_and_alerted(tmp_path: Path) -> None:
    alerts = Alerts()
    rt = desk(tmp_path, alerts, failed_auth_limit=3)
    try:
        base = f"http://127.0.0.1:{rt.pm.get_plugin('control_api').port}"
        with httpx.Client(base_url=base) as http:
            codes = [
                http.get("/api/status", headers={"Authorization": f"Bearer guess{n}"}).status_code for n in range(5)
            ]
            assert codes == [401, 401, 401, 429, 429]
            right = http.get("/api/status", headers={"Authorization": f"Bearer {CONTROLLER}"})
            assert right.status_code == 200  # a token that verifies is never refused: no lock-out by a spammer
            spoofed = http.get("/api/status", headers={"Authorization": "Bearer x", "X-Forwarded-For": "10.9.9.9"})
            assert spoofed.status_code == 429  # a client cannot choose its own address
        rt.pm.get_plugin("control_api").desk.say_alerts()  # the trading loop's job says what the API thread saw
        assert [a.error_code for a in alerts.seen] == ["control_api_auth"]
        assert "3 failed authentications from 127.0.0.1" in alerts.seen[0].message
    finally:
        rt.stop()


def test_the_console_session_is_a_strict_cookie_and_its_actions_need_the_csrf_token(tmp_path: Path) -> None:
    rt = desk(tmp_path)
    try:
        base = f"http://127.0.0.1:{rt.pm.get_plugin('control_api').port}"
        with httpx.Client(base_url=base) as http:
            page = http.get("/")
            assert page.status_code == 200 and "tradeguard console" in page.text
            assert page.headers["x-frame-options"] == "DENY"
            login = http.post("/login", json={"token": CONTROLLER})
            cookie = login.headers["set-cookie"].lower()
            assert "httponly" in cookie and "samesite=strict" in cookie and CONTROLLER not in cookie
            csrf = login.json()["csrf"]
            assert http.get("/api/status").status_code == 200  # the cookie reads
            forged = http.post("/api/actions/halt", json={"reason": "from another site"})
            assert forged.status_code == 403 and "CSRF" in forged.text
            halted = http.post("/api/actions/halt", json={"reason": "desk"}, headers={"X-CSRF-Token": csrf})
            assert halted.status_code == 200 and rt.store.kill_state()[0] == "HALTED"
            assert rt.store.kill_events_after(0)[-1]["via"] == "console"
            http.post("/logout")
            assert http.get("/api/status").status_code == 401
    finally:
        rt.stop()


def test_secure_defaults_no_token_no_api_and_no_clear_text_off_loopback(tmp_path: Path) -> None:
    plugins = [(n, candidates()[n].load()()) for n in ("kill_switch", "control_api")]
    rt = make_runtime(*plugins, store=Store(tmp_path / "d.db"), settings={"control_api": {"port": 0}})
    try:
        assert rt.pm.get_plugin("control_api").server is None
    finally:
        rt.stop()
    with pytest.raises(ConfigError, match=r"control_api.*not loopback: set tls_certfile and tls_keyfile"):
        make_runtime(*plugins, settings={"control_api": {"host": "0.0.0.0", "tokens": TOKENS}}, start=False)


def test_reset_needs_the_operator_secret_and_a_wrong_one_is_recorded_limited_and_never_echoed(tmp_path: Path) -> None:
    from tradeguard.kernel.operator_secret import hash_secret

    plugins = [(n, candidates()[n].load()()) for n in ("kill_switch", "control_api")]
    settings = {
        "control_api": {"port": 0, "tokens": TOKENS, "failed_auth_limit": 2},
        "kill_switch": {"operator_secret_hash": hash_secret("the-right-secret")},
    }
    rt = make_runtime(*plugins, store=Store(tmp_path / "d.db"), settings=settings)
    try:
        base = f"http://127.0.0.1:{rt.pm.get_plugin('control_api').port}"
        controller = {"Authorization": f"Bearer {CONTROLLER}"}
        with httpx.Client(base_url=base, headers=controller) as http:
            http.post("/api/actions/halt", json={"reason": "desk"})
            echoed = http.post("/api/actions/reset", json={"secret": "the-right-secret"})  # no reason: refused
            assert echoed.status_code == 422 and "the-right-secret" not in echoed.text
            codes = [
                http.post("/api/actions/reset", json={"reason": "r", "secret": f"guess{n}"}).status_code
                for n in range(3)
            ]
            assert codes == [403, 403, 429]  # guessing the secret is limited, per token
        refusals = [e for e in rt.store.kill_events_after(0) if e["trigger"] == "reset_refused"]
        assert len(refusals) == 3 and refusals[0]["operator"] == "alice" and refusals[0]["via"] == "api"
        assert all("guess" not in e["message"] for e in refusals)
        assert rt.store.kill_state()[0] == "HALTED"
    finally:
        rt.stop()
