"""The control API and web console (issue 29): the desk an operator reaches when not at the server's shell.

Served by ``tradeguard run`` in its own thread (FastAPI on uvicorn); the trading loop never waits on it.

* **Reading** (scope ``read``): ``GET /api/status`` (kill switch, account, positions, pending orders, day P&L
  and the limits, health, reconciliation, alerts outstanding) and ``GET /api/decisions`` (the latest, with
  their reasons). The console at ``/`` shows both and refreshes itself.
* **Acting** (scope ``control``): stop entries (REDUCE_ONLY), halt, flatten, close one position, cancel the
  pending orders, reset (with the operator secret). Every action goes through the runtime's own services, the
  way the CLI's do: a latch through the store, which the kill switch adopts within a second (it acts, alerts
  and the audit trail chains it); an order through the store's operator requests, which the trading loop
  carries out on the execution engine (journaled, the kill switch's admission rule applied, alerted, audited),
  with the caller's identity (the token's name), the surface (api or console) and the reason.
* **Secure by default**: 127.0.0.1; another address only with TLS; no token configured, no API; tokens
  stored as hashes only; the console's session is an HttpOnly, SameSite=Strict cookie and every action it
  sends carries a CSRF token; failed authentications are rate-limited per client and alerted; no response or
  log line ever holds a token, the operator secret or a session id.
"""

import asyncio
import ipaddress
import logging
import secrets
import threading
import time
from collections import deque
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, model_validator

from tradeguard import (
    ConfiguredPlugin,
    Job,
    KillState,
    PluginSettings,
    Runtime,
    Severity,
    SQLiteStore,
    TokenEntry,
    holder,
    hookimpl,
    verify_secret,
)
from tradeguard.plugins.desk.desk import ANSWER_SECONDS, Caller, Desk

log = logging.getLogger("tradeguard.control_api")
CONSOLE = Path(__file__).with_name("console.html")
COOKIE = "tradeguard_session"


class ControlApiSettings(PluginSettings):
    host: str = Field(default="127.0.0.1", description="address to serve on; not loopback only with TLS")
    port: int = Field(default=8765, ge=0, le=65535, description="TCP port; 0 picks a free one")
    tls_certfile: str = Field(default="", description="PEM certificate: required for a non-loopback host")
    tls_keyfile: str = Field(default="", description="PEM private key of that certificate")
    tokens: dict[str, TokenEntry] = Field(
        default_factory=dict, description="name -> {hash, scopes}, from `tradeguard token create`; none: no API"
    )
    failed_auth_limit: int = Field(default=5, ge=1, description="failed authentications per client per minute")
    session_minutes: float = Field(default=60.0, gt=0, description="how long a console login lasts")

    @model_validator(mode="after")
    def _tls_off_loopback(self) -> "ControlApiSettings":
        loopback = self.host == "localhost" or ipaddress.ip_address(self.host).is_loopback
        if not loopback and not (self.tls_certfile and self.tls_keyfile):
            raise ValueError(
                f"control_api.host = {self.host!r} is not loopback: set tls_certfile and tls_keyfile (a token sent "
                "in clear text over a network is everybody's)"
            )
        return self


class Login(BaseModel):
    token: str = Field(min_length=1, max_length=200)


class Reason(BaseModel):
    reason: str = Field(min_length=1, max_length=500)


class Close(Reason):
    ticket: int = Field(gt=0)
    volume: float | None = Field(default=None, gt=0)


class Reset(Reason):
    secret: str = Field(min_length=1, max_length=500)
    force: bool = False


class ControlApi(ConfiguredPlugin):
    settings_model = ControlApiSettings
    stage = 6

    def __init__(self) -> None:
        super().__init__()
        self.rt: Runtime
        self.server: Any = None
        self.port = 0
        self._thread: threading.Thread | None = None
        self.desk: Desk
        self._failures: dict[str, deque[float]] = {}
        self._sessions: dict[str, tuple[Caller, float]] = {}

    # -- lifecycle ----------------------------------------------------------------------------------

    @hookimpl
    def tradeguard_startup(self, runtime: Runtime) -> None:
        super().tradeguard_startup(runtime)
        self.rt = runtime
        self.desk = Desk(runtime, "control_api")
        cfg = self.cfg
        if not cfg.tokens:
            log.info("control API not started: no token configured (tradeguard token create)")
            return
        if not isinstance(runtime.store, SQLiteStore) or runtime.role != "trading":
            return  # an operator command's runtime, or one without a journal: nothing to serve
        import uvicorn

        config = uvicorn.Config(
            self.app(),
            host=cfg.host,
            port=cfg.port,
            ssl_certfile=cfg.tls_certfile or None,
            ssl_keyfile=cfg.tls_keyfile or None,
            log_level="warning",
            access_log=False,  # an access log would hold client addresses and paths, not tokens; still off
            proxy_headers=False,  # a client never chooses its own address (X-Forwarded-For): the rate limit keys on it
            lifespan="off",
        )
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, name="tradeguard-control-api", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise OSError(f"control_api: cannot serve on {cfg.host}:{cfg.port} (in use? 0 takes a free port)")
            time.sleep(0.01)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        scheme = "https" if cfg.tls_certfile else "http"
        log.info("control API served", extra={"address": f"{scheme}://{cfg.host}:{self.port}/"})

    @hookimpl
    def tradeguard_shutdown(self, runtime: Runtime) -> None:
        if self.server is not None and self._thread is not None:
            self.server.should_exit = True
            self._thread.join(timeout=5)
            self.server = None

    @hookimpl
    def periodic_jobs(self, runtime: Runtime) -> list[Job]:
        """Alerts the API thread raised, said on the trading thread (where the alert manager and its store are)."""
        return [
            Job(
                name="control_api.alerts",
                every=timedelta(seconds=1),
                run=lambda rt: self.desk.say_alerts(),
                wall_clock=True,
            )
        ]

    def app(self) -> Any:
        from fastapi import Depends, FastAPI, HTTPException, Request, Response
        from fastapi.exceptions import RequestValidationError
        from fastapi.responses import HTMLResponse, JSONResponse

        api = FastAPI(
            title="tradeguard control API",
            description="The operator's desk: status, decisions, and the actions (scope control).",
            version="1",
        )

        async def caller(request: Request) -> Caller:  # async: on the event loop's thread, like every handler
            found = self._authenticate(request)
            if found is None:
                raise HTTPException(status_code=401, detail="not authenticated", headers={"WWW-Authenticate": "Bearer"})
            return found

        async def controller(request: Request, who: Caller = Depends(caller)) -> Caller:  # noqa: B008
            if "control" not in who.scopes:
                raise HTTPException(status_code=403, detail="this token may read, not act (scope control)")
            if who.via == "console" and not secrets.compare_digest(request.headers.get("x-csrf-token", ""), who.csrf):
                raise HTTPException(status_code=403, detail="missing or wrong CSRF token")
            return who

        async def order(action: str, args: dict[str, Any], reason: str, who: Caller, auth: str = "") -> JSONResponse:
            """Hand an order to the trading loop and wait, without holding the event loop, for what came of it:
            200 done, 409 refused or failed, 504 not taken in time (withdrawn)."""
            request = self.desk.hand_over(action, args, reason, who, auth)
            deadline = time.monotonic() + ANSWER_SECONDS
            while time.monotonic() < deadline:
                done = self.desk.outcome(request)
                if done is not None:
                    return JSONResponse(done, status_code=200 if done["ok"] else 409)
                await asyncio.sleep(0.1)
            return JSONResponse(self.desk.give_up(request), status_code=504)

        @api.exception_handler(RequestValidationError)
        async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
            """What is wrong, never the value sent: it may be a token or the operator secret."""
            problems = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()]
            return JSONResponse({"detail": problems}, status_code=422)

        @api.exception_handler(_TooMany)
        async def too_many(request: Request, exc: _TooMany) -> JSONResponse:
            return JSONResponse({"detail": "too many failed authentications: wait a minute"}, status_code=429)

        @api.get("/", response_class=HTMLResponse, include_in_schema=False)
        async def console() -> HTMLResponse:
            # no other site may frame it (clickjacking) nor load anything into it
            policy = {"Content-Security-Policy": "default-src 'self' 'unsafe-inline'", "X-Frame-Options": "DENY"}
            return HTMLResponse(CONSOLE.read_text(), headers=policy)

        @api.post("/login", include_in_schema=False)
        async def login(body: Login, request: Request, response: Response) -> dict[str, Any]:
            who = self._by_token(request, body.token)
            if who is None:
                raise HTTPException(status_code=401, detail="not authenticated")
            now = time.monotonic()
            for old in [k for k, (_, since) in self._sessions.items() if now - since > self.cfg.session_minutes * 60]:
                del self._sessions[old]
            session, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
            self._sessions[session] = (Caller(who.name, who.scopes, "console", who.auth, csrf), now)
            response.set_cookie(
                COOKIE,
                session,
                httponly=True,
                samesite="strict",
                secure=bool(self.cfg.tls_certfile),
                max_age=int(self.cfg.session_minutes * 60),
            )
            return {"name": who.name, "scopes": list(who.scopes), "csrf": csrf}

        @api.post("/logout", include_in_schema=False)
        async def logout(request: Request, response: Response) -> dict[str, str]:
            self._sessions.pop(request.cookies.get(COOKIE, ""), None)
            response.delete_cookie(COOKIE)
            return {"status": "logged out"}

        @api.get("/api/status", summary="kill switch, account, positions, orders, limits, health, alerts")
        async def status(who: Caller = Depends(caller)) -> dict[str, Any]:  # noqa: B008
            return self.desk.status()

        @api.get("/api/decisions", summary="the latest decisions, with every reason")
        async def decisions(limit: int = 50, who: Caller = Depends(caller)) -> list[dict[str, Any]]:  # noqa: B008
            return self.desk.decisions(max(1, min(limit, 500)))

        @api.post("/api/actions/stop-entries", summary="REDUCE_ONLY: exits and stops only")
        async def stop_entries(body: Reason, who: Caller = Depends(controller)) -> dict[str, Any]:  # noqa: B008
            return self.desk.latch(KillState.REDUCE_ONLY, body.reason, who)

        @api.post("/api/actions/halt", summary="HALTED: no new orders; working ones cancelled")
        async def halt(body: Reason, who: Caller = Depends(controller)) -> dict[str, Any]:  # noqa: B008
            return self.desk.latch(KillState.HALTED, body.reason, who)

        @api.post("/api/actions/flatten", summary="close every position of ours")
        async def flatten(body: Reason, who: Caller = Depends(controller)) -> JSONResponse:  # noqa: B008
            return await order("flatten", {}, body.reason, who)

        @api.post("/api/actions/close", summary="close one position (or part of it)")
        async def close(body: Close, who: Caller = Depends(controller)) -> JSONResponse:  # noqa: B008
            return await order("close", {"ticket": body.ticket, "volume": body.volume}, body.reason, who)

        @api.post("/api/actions/cancel-pending", summary="cancel every working pending order of ours")
        async def cancel(body: Reason, who: Caller = Depends(controller)) -> JSONResponse:  # noqa: B008
            return await order("cancel", {}, body.reason, who)

        @api.post("/api/actions/reset", summary="the kill switch back to ACTIVE (the operator secret)")
        async def reset(body: Reset, who: Caller = Depends(controller)) -> JSONResponse:  # noqa: B008
            stored = self.rt.settings.kill_switch.operator_secret_hash.get_secret_value()
            if not stored:
                raise HTTPException(status_code=409, detail="no operator secret is configured (tradeguard hash-secret)")
            if not await asyncio.to_thread(verify_secret, body.secret, stored):  # scrypt: off the event loop
                refused = f"reset by {who.name} via {who.via} refused: wrong operator secret ({body.reason})"
                self.desk.store().record_kill_event("reset_refused", refused, who.name, via=who.via, auth=who.auth)
                self._refuse(f"operator secret via {who.auth}", "operator secrets")
                raise HTTPException(status_code=403, detail="wrong operator secret")
            args = {"operator": who.name, "reason": body.reason, "force": body.force, "via": who.via}
            return await order("reset", args, body.reason, who, auth="operator secret")

        return api

    # -- authentication ----------------------------------------------------------------------------

    def _authenticate(self, request: Any) -> Caller | None:
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            return self._by_token(request, header[7:].strip())
        cookie = request.cookies.get(COOKIE, "")
        session = self._sessions.get(cookie)
        if session is not None:
            who, since = session
            if time.monotonic() - since < self.cfg.session_minutes * 60:
                return who
            self._sessions.pop(cookie, None)  # expired: log in again (not a failed authentication)
        return None

    def _by_token(self, request: Any, token: str) -> Caller | None:
        """The token's holder. A token that verifies is never refused (256 random bits cannot be guessed, and a
        page spamming wrong ones must not lock the desk out in an emergency); wrong ones are counted."""
        found = holder(self.cfg.tokens, token) if token else None
        if found is not None:
            return Caller(found[0], found[1], "api", f"token {found[0]}")
        self._refuse(request.client.host if request.client else "?", "authentications")
        return None

    def _refuse(self, key: str, what: str) -> None:
        """Count a failure for ``key`` (a client, or a token guessing the operator secret); past the limit in a
        minute, :class:`_TooMany` (429), alerted once per burst."""
        now = time.monotonic()
        for stale in [k for k, window in self._failures.items() if now - window[-1] > 60]:
            del self._failures[stale]  # the map holds only the last minute's
        window = self._failures.setdefault(key, deque(maxlen=self.cfg.failed_auth_limit + 1))
        window.append(now)
        if len(window) == self.cfg.failed_auth_limit:
            message = f"{len(window)} failed {what} from {key} in a minute: refused for a minute"
            self.desk.alert(Severity.WARNING, "control_api_auth", message)
        if len(window) > self.cfg.failed_auth_limit and now - window[0] <= 60:
            raise _TooMany


class _TooMany(Exception):
    """Too many failed authentications from one client in the last minute."""
