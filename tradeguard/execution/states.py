"""The order state machine: every state an order can be in, and the only moves between them.

``new`` (journaled, not yet sent) -> ``submitted`` (sent, no answer yet) -> ``accepted`` (a pending
order works at the broker) -> ``partially_filled`` -> ``filled``; or ``rejected``, ``cancelled``,
``expired``. ``unknown`` means the broker's answer was lost (timeout, disconnect) and a lookup
found nothing yet; it resolves to any state the broker later shows.
"""

from __future__ import annotations

from enum import StrEnum

from tradeguard.errors import IllegalStateTransition


class OrderState(StrEnum):
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
        return self in TERMINAL


S = OrderState
TERMINAL = frozenset({S.FILLED, S.REJECTED, S.CANCELLED, S.EXPIRED})
ALLOWED: dict[OrderState, frozenset[OrderState]] = {
    S.NEW: frozenset({S.SUBMITTED, S.REJECTED}),
    S.SUBMITTED: frozenset({S.SUBMITTED, S.ACCEPTED, S.PARTIALLY_FILLED, S.FILLED, S.REJECTED, S.CANCELLED, S.UNKNOWN}),
    S.ACCEPTED: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.CANCELLED, S.EXPIRED, S.REJECTED, S.UNKNOWN}),
    S.PARTIALLY_FILLED: frozenset({S.SUBMITTED, S.PARTIALLY_FILLED, S.FILLED, S.CANCELLED, S.EXPIRED, S.UNKNOWN}),
    S.UNKNOWN: frozenset(
        {S.SUBMITTED, S.ACCEPTED, S.PARTIALLY_FILLED, S.FILLED, S.REJECTED, S.CANCELLED, S.EXPIRED, S.UNKNOWN}
    ),
    S.FILLED: frozenset(),
    S.REJECTED: frozenset(),
    S.CANCELLED: frozenset(),
    S.EXPIRED: frozenset(),
}


def check_transition(client_id: str, current: OrderState, target: OrderState) -> None:
    if target not in ALLOWED[current]:
        raise IllegalStateTransition(f"order {client_id}: {current.value} -> {target.value} is not allowed")
