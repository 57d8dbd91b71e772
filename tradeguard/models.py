"""The values that cross the hook contract.

Every model is immutable and validated on construction: a NaN or infinite price, a zero or
negative volume, an unknown side, a naive datetime or an empty symbol is refused with a
``pydantic.ValidationError`` whose location names the field. Times are UTC-aware everywhere
inside tradeguard; the broker adapter converts server time on the way in.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from tradeguard import reasons as _reasons

#: A price: finite and strictly positive.
Price = Annotated[float, Field(gt=0, allow_inf_nan=False)]
#: A volume in lots: finite and strictly positive.
Volume = Annotated[float, Field(gt=0, allow_inf_nan=False)]
#: Any finite amount of money (may be negative: a loss, a withdrawal).
Money = Annotated[float, Field(allow_inf_nan=False)]
Symbol = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Code = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*(:[A-Za-z0-9_.\-]+)?$")]

#: MT5 timeframe names, smallest first.
#: MT5's timeframes and their length in seconds (MN1 as 30 days: only used for spacing checks).
TIMEFRAME_SECONDS: dict[str, int] = {
    "M1": 60,
    "M2": 120,
    "M3": 180,
    "M4": 240,
    "M5": 300,
    "M6": 360,
    "M10": 600,
    "M12": 720,
    "M15": 900,
    "M20": 1200,
    "M30": 1800,
    "H1": 3600,
    "H2": 7200,
    "H3": 10800,
    "H4": 14400,
    "H6": 21600,
    "H8": 28800,
    "H12": 43200,
    "D1": 86400,
    "W1": 604800,
    "MN1": 2592000,
}
TIMEFRAMES: tuple[str, ...] = tuple(TIMEFRAME_SECONDS)
#: the same as durations, built once: a bar's close time is asked on every bar
_TIMEFRAME_STEP: dict[str, timedelta] = {name: timedelta(seconds=s) for name, s in TIMEFRAME_SECONDS.items()}


_FIELD_COUNT: dict[type, int] = {}


def bar_closes_at(opened: datetime, timeframe: str) -> datetime:
    """When a bar that opened at ``opened`` closes: its open time plus the timeframe."""
    return opened + _TIMEFRAME_STEP[timeframe]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)

    @classmethod
    def trusted(cls, **values: Any) -> Self:
        """Build from parts that are already validated, without validating again (the kernel's hot path).

        Every field must be given: this is ``model_construct`` without its default handling, which
        costs a quarter of it. Never use it on data that crossed a trust boundary.
        """
        count = _FIELD_COUNT.get(cls)
        if count is None:  # ``model_fields`` is a computed property in recent pydantic: look it up once
            count = _FIELD_COUNT[cls] = len(cls.model_fields)
        if len(values) != count:
            missing = sorted(set(cls.model_fields) - set(values))
            raise TypeError(f"{cls.__name__}.trusted needs every field; missing {missing}")
        obj = cls.__new__(cls)
        object.__setattr__(obj, "__dict__", values)
        object.__setattr__(obj, "__pydantic_fields_set__", set(values))
        object.__setattr__(obj, "__pydantic_extra__", None)
        object.__setattr__(obj, "__pydantic_private__", None)
        return obj


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"

    @property
    def sign(self) -> int:
        """+1 for a buy, -1 for a sell: price distance in the trade's favour is ``sign * (p1 - p0)``."""
        return 1 if self is Side.BUY else -1

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"
    STOP_LIMIT = "stop_limit"


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


class Bar(_Frozen):
    """One closed OHLC bar; ``time`` is the bar's open time in UTC."""

    symbol: Symbol
    timeframe: str
    time: AwareDatetime
    open: Price
    high: Price
    low: Price
    close: Price
    tick_volume: int = Field(default=0, ge=0)
    spread: int = Field(default=0, ge=0, description="spread in points, as MT5 reports it")
    real_volume: int = Field(default=0, ge=0)

    @property
    def epoch(self) -> float:
        """``time`` as UTC epoch seconds: the bar history, the journal and the replay each need it (computed
        each time: cheaper than functools.cached_property's lock on Python 3.11)."""
        return self.time.timestamp()

    @field_validator("timeframe")
    @classmethod
    def _known_timeframe(cls, value: str) -> str:
        if value not in TIMEFRAMES:
            raise ValueError(f"unknown timeframe {value!r}; allowed: {', '.join(TIMEFRAMES)}")
        return value

    @model_validator(mode="after")
    def _consistent_range(self) -> Bar:
        if self.high < max(self.open, self.close, self.low):
            raise ValueError(f"high {self.high} is below open/close/low")
        if self.low > min(self.open, self.close):
            raise ValueError(f"low {self.low} is above open/close")
        return self

    @property
    def closed_at(self) -> datetime:
        """When this bar closed (its open time plus the timeframe)."""
        return bar_closes_at(self.time, self.timeframe)


class Signal(_Frozen):
    """What a strategy wants: a direction on a symbol, with the evidence for it.

    ``signal_id`` is stable: when the strategy gives none it is derived from the content
    fingerprint (strategy, symbol, side, timeframe, bar time), so a replay produces the same ids.
    """

    signal_id: str = ""
    strategy: Symbol
    symbol: Symbol
    side: Side
    timeframe: str = "H1"
    bar_time: AwareDatetime
    created_at: AwareDatetime
    price: Price = Field(description="reference entry price (the close of the signal bar for market)")
    order_type: OrderType = OrderType.MARKET
    stop_loss: Price | None = None
    take_profit: Price | None = None
    confidence: float = Field(default=1.0, ge=0.0, le=1.0, allow_inf_nan=False)
    risk_hint: float | None = Field(
        default=None,
        gt=0,
        le=10,
        allow_inf_nan=False,
        description="multiplier on the configured risk the strategy suggests; capped by the limits",
    )
    atr: Price | None = Field(default=None, description="the strategy's ATR on the signal bar, if known")
    comment: str = Field(default="", max_length=200)
    metadata: dict[str, Any] = Field(default_factory=dict)

    _side = field_validator("side", "order_type", mode="before")(_lower)

    @field_validator("timeframe")
    @classmethod
    def _known_timeframe(cls, value: str) -> str:
        return Bar._known_timeframe(value)

    @property
    def fingerprint(self) -> str:
        """The content identity used by deduplication: equal content, equal fingerprint."""
        return fingerprint(self.strategy, self.symbol, self.side, self.timeframe, self.bar_time)

    @property
    def bar_close(self) -> datetime:
        """When the signal bar closed (its open time plus the timeframe)."""
        return bar_closes_at(self.bar_time, self.timeframe)

    @model_validator(mode="after")
    def _derive_id(self) -> Signal:
        if not self.signal_id:
            object.__setattr__(self, "signal_id", self.fingerprint[:20])
        return self


def fingerprint(strategy: str, symbol: str, side: Side | str, timeframe: str, bar_time: datetime) -> str:
    text = f"{strategy}|{symbol}|{Side(side).value}|{timeframe}|{bar_time.isoformat()}"
    return hashlib.sha256(text.encode()).hexdigest()


class Reason(_Frozen):
    """One reason a signal or order was refused: a stable code, a human message, and who said it."""

    code: Code
    message: str = ""
    plugin: str = ""

    @property
    def base(self) -> str:
        return _reasons.split(self.code)[0]


class Rejected(_Frozen):
    """A veto (``evaluate_risk``) or a refusal from a firstresult hook (targets, sizing)."""

    reason: Code
    plugin: str = ""
    message: str = ""

    def as_reason(self, plugin: str = "") -> Reason:
        return Reason(code=self.reason, message=self.message or self.reason, plugin=self.plugin or plugin)


class Score(_Frozen):
    """A confluence score in [0, 1] from one scorer, with each factor's contribution."""

    name: str
    value: float = Field(ge=0.0, le=1.0, allow_inf_nan=False)
    factors: dict[str, float] = Field(default_factory=dict)


class Targets(_Frozen):
    stop_loss: Price
    take_profit: Price | None = None
    method: str = ""


class NettingEffect(StrEnum):
    """What an order does to the one position a netting account holds on its symbol (MT5's rules: an add or a
    reversal gives the position the order's stop and target; a reduce leaves them; a close removes them)."""

    OPEN = "open"
    ADD = "add"
    REDUCE = "reduce"
    CLOSE = "close"
    REVERSE = "reverse"


class OrderIntent(_Frozen):
    """An order the pipeline approved (or an operator asked for), before the broker sees it.

    ``client_id`` is assigned by the execution engine and journaled before sending.
    ``position_ticket`` set means "close or reduce that position": exposure-reducing by construction.
    ``netting``: on a netting account, what the order does to the symbol's position (None on hedging).
    """

    signal_id: str = ""
    client_id: str = ""
    strategy: str = ""
    symbol: Symbol
    side: Side
    volume: Volume
    order_type: OrderType = OrderType.MARKET
    price: Price | None = None
    stop_loss: Price | None = None
    take_profit: Price | None = None
    position_ticket: int | None = Field(default=None, gt=0)
    reduce_only: bool = False
    created_at: AwareDatetime
    netting: NettingEffect | None = None

    _side = field_validator("side", "order_type", mode="before")(_lower)

    @property
    def reduces_exposure(self) -> bool:
        return self.reduce_only or self.position_ticket is not None

    def risk_money(self, tick_size: float, tick_value: float) -> float | None:
        """Money lost if the stop is hit, from the symbol's tick size and tick value; None without a stop."""
        if self.stop_loss is None or self.price is None:
            return None
        return abs(self.price - self.stop_loss) / tick_size * tick_value * self.volume


class Decision(_Frozen):
    """The record of one pass through the pipeline: approved or not, every reason, who said it."""

    signal_id: str
    approved: bool
    stage: Literal["validate", "score", "targets", "size", "risk", "execution", "done"]
    reasons: tuple[Reason, ...] = ()
    scores: tuple[Score, ...] = ()
    combined_score: float | None = None
    targets: Targets | None = None
    volume: float | None = None
    order: OrderIntent | None = None
    client_id: str = ""
    decided_at: AwareDatetime


class OrderState(StrEnum):
    """Where an order stands in the journal (the moves between states: execution/states.py)."""

    NEW = "new"
    SUBMITTED = "submitted"
    ACCEPTED = "accepted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    UNKNOWN = "unknown"

    @property
    def terminal(self) -> bool:
        """No move leaves it (execution/states.py has the moves)."""
        return self in _TERMINAL_STATES


_TERMINAL_STATES = frozenset({OrderState.FILLED, OrderState.REJECTED, OrderState.CANCELLED, OrderState.EXPIRED})


#: An order event says which state the order moved to: the same values. The old name stays for plugins.
OrderEventKind = OrderState


class OrderEvent(_Frozen):
    client_id: str
    kind: OrderState  # the state the order moved to
    time: AwareDatetime
    symbol: str = ""
    retcode: int | None = None
    message: str = ""


class DealEntry(StrEnum):
    IN = "in"
    OUT = "out"
    INOUT = "inout"
    OUT_BY = "out_by"


class ClosedBy(StrEnum):
    """What closed (part of) a position, from the deal's MT5 reason."""

    STOP = "stop"
    TARGET = "target"
    STOP_OUT = "stop_out"
    ORDER = "order"  # an order with a magic number: ours, or another expert's
    HAND = "hand"  # at the terminal: desktop, mobile or web
    OTHER = "other"  # rollover, variation margin, split


class TradeOutcome(_Frozen):
    """What a closing deal did against the plan (issue 24): its slippage past the stop or target it executed
    and the trade's realised R so far.

    ``slippage_points`` and ``slippage_money`` are + when worse than the level (a stop filled past it by a
    gap), - when better; None for closes that executed no level. ``r_multiple`` is the trade's money so far
    (profit, commission and swap of every deal since it opened) over the risk it was sized on (the opening
    orders' distance to their stops, in money: from the order's price, or its fill's when it named none); None
    when no opening order of ours named a stop (lots added by someone else risk nothing planned).
    ``trade_closed`` says the deal left the trade flat: its ``r_multiple`` is then the trade's result.
    """

    closed_by: ClosedBy
    level: float | None = None
    slippage_points: float | None = Field(default=None, allow_inf_nan=False)
    slippage_money: Money | None = None
    planned_risk: Money | None = None
    money: Money = 0.0
    r_multiple: float | None = Field(default=None, allow_inf_nan=False)
    trade_closed: bool = False


class Fill(_Frozen):
    """One broker deal. ``deal_ticket`` is unique: ``on_fill`` fires exactly once per ticket.

    An opening deal of one of our orders carries ``planned_risk`` (the money its volume loses at the order's
    stop); a deal that closes (part of) a position carries its ``outcome``."""

    deal_ticket: int = Field(gt=0)
    order_ticket: int = Field(ge=0)
    position_id: int = Field(ge=0)
    client_id: str = ""
    symbol: Symbol
    side: Side
    entry: DealEntry = DealEntry.IN
    volume: Volume
    price: Price
    commission: Money = 0.0
    swap: Money = 0.0
    profit: Money = 0.0
    magic: int = 0
    comment: str = ""
    time: AwareDatetime
    planned_risk: Money | None = None
    outcome: TradeOutcome | None = None

    _side = field_validator("side", "entry", mode="before")(_lower)


class AccountSnapshot(_Frozen):
    """An ``account_info`` capture with the drawdown arithmetic done (server-midnight anchored)."""

    time: AwareDatetime
    login: int = 0
    currency: str = "USD"
    balance: Money
    equity: Money
    margin: Money = 0.0
    free_margin: Money = 0.0
    margin_level: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    floating_pnl: Money = 0.0
    realized_pnl_day: Money = 0.0
    day_start_equity: Money = 0.0
    peak_equity: Money = 0.0
    drawdown_pct: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    drawdown_money: Money = 0.0
    daily_drawdown_pct: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    daily_drawdown_money: Money = 0.0

    @staticmethod
    def loss_pct(anchor: float, equity: float) -> float:
        """How far ``equity`` is below ``anchor`` (the peak, or the day's start), in percent of it, as the
        snapshot's drawdown figures are computed: 0 above it or without an anchor. An anchor under a cent
        (the snapshot shows it as 0.00) is none: a percentage of it overflows to infinity.

        ``anchor >= 0.005`` is ``round(anchor, 2) > 0`` exactly (the double nearest 0.005 lies above it, so
        it rounds up; every smaller double rounds to 0.00), without the decimal round trip ``round`` makes."""
        loss = anchor - equity
        return round(loss / anchor * 100, 4) if anchor >= 0.005 and loss > 0 else 0.0


class HealthStatus(StrEnum):
    OK = "OK"
    DEGRADED = "DEGRADED"
    CRITICAL = "CRITICAL"

    @property
    def gauge(self) -> int:
        """The value of ``tradeguard_health_connection_status``: 2 OK, 1 DEGRADED, 0 CRITICAL."""
        return {"OK": 2, "DEGRADED": 1, "CRITICAL": 0}[self.value]


class HealthReport(_Frozen):
    time: AwareDatetime
    status: HealthStatus
    connected: bool
    trade_allowed: bool
    ping_ms: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    checks: dict[str, str] = Field(default_factory=dict, description="check name -> finding")


class ReconciliationReport(_Frozen):
    time: AwareDatetime
    cause: str
    consistent: bool
    missing: tuple[int, ...] = ()
    unknown: tuple[int, ...] = ()
    volume_drift: dict[str, float] = Field(default_factory=dict)
    sltp_mismatch: tuple[int, ...] = ()
    unprotected: tuple[int, ...] = ()
    foreign: tuple[int, ...] = ()
    details: dict[str, str] = Field(default_factory=dict)


class KillState(StrEnum):
    ACTIVE = "ACTIVE"
    REDUCE_ONLY = "REDUCE_ONLY"
    HALTED = "HALTED"

    @property
    def rank(self) -> int:
        """How tight: a latch only moves to a higher rank until it is reset."""
        return _KILL_RANK[self]

    def admits(self, order: OrderIntent, closes_when_halted: bool) -> bool:
        """The one admission rule (the kill switch's veto and the execution engine both ask it): ACTIVE admits
        everything, REDUCE_ONLY what reduces exposure, HALTED that too only with ``closes_when_halted``
        (``kill_switch.allow_closes_when_halted``)."""
        if self is KillState.ACTIVE:
            return True
        return order.reduces_exposure and (self is KillState.REDUCE_ONLY or closes_when_halted)


_KILL_RANK = {KillState.ACTIVE: 0, KillState.REDUCE_ONLY: 1, KillState.HALTED: 2}


class OperatorAction(_Frozen):
    """An order an operator gave (flatten, close a position, change its stops): who, through which surface,
    how authenticated, why, and what came of it. Audited and alerted."""

    time: AwareDatetime
    action: Literal["flatten", "close", "modify", "cancel", "reset"]
    operator: str
    via: str  # cli, api, telegram, ...
    auth: str = ""  # how the operator proved who they are
    reason: str = ""
    target: str = ""  # the position ticket, for close and modify
    ok: bool = True
    result: str = ""  # what was done (client ids sent), or why not


class HaltEvent(_Frozen):
    """A request to stop trading: who asked, why, how far (REDUCE_ONLY or HALTED)."""

    time: AwareDatetime
    trigger: Code
    message: str
    source: str = ""
    state: KillState = KillState.HALTED
    flatten: bool = False

    @field_validator("state")
    @classmethod
    def _not_active(cls, value: KillState) -> KillState:
        if value is KillState.ACTIVE:
            raise ValueError("a halt requests REDUCE_ONLY or HALTED, not ACTIVE")
        return value


class AlertChannel(StrEnum):
    SYSTEM = "SYSTEM"
    RISK = "RISK"
    EXECUTION = "EXECUTION"
    HEALTH = "HEALTH"


class Severity(StrEnum):
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"
    CRITICAL = "CRITICAL"


class Alert(_Frozen):
    time: AwareDatetime
    channel: AlertChannel
    severity: Severity
    module: str
    error_code: str
    message: str
    symbol: str = ""
    context: dict[str, Any] = Field(default_factory=dict)

    _upper = field_validator("channel", "severity", mode="before")(lambda v: v.upper() if isinstance(v, str) else v)

    @property
    def dedup_key(self) -> tuple[str, str, str]:
        return (self.module, self.error_code, self.symbol)


class Job(BaseModel):
    """A periodic job for the scheduler: ``run(runtime)`` every ``every`` of runtime-clock time.

    ``wall_clock`` jobs are timed by the machine's clock instead: write-behind flushes, whose
    interval bounds what a crash can lose in real time. Live the two clocks are the same; in a
    replay, where an hour of market passes per H1 bar, such a job runs every ``every`` of real
    time rather than on every bar.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    name: Symbol
    every: timedelta
    run: Callable[..., Any]
    run_at_start: bool = False
    wall_clock: bool = False

    @field_validator("every")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be a positive interval")
        return value


class Position(_Frozen):
    """An open position as tradeguard sees it (the broker's ``TradePosition``, UTC, typed)."""

    ticket: int = Field(gt=0)
    symbol: Symbol
    side: Side
    volume: Volume
    price_open: Price
    stop_loss: Price | None = None
    take_profit: Price | None = None
    magic: int = 0
    comment: str = ""
    client_id: str = ""
    opened_at: AwareDatetime

    _side = field_validator("side", mode="before")(_lower)
