"""The order state machine: every state an order can be in, and the only moves between them.

``new`` (journaled, not yet sent) -> ``submitted`` (sent, no answer yet) -> ``accepted`` (a pending
order works at the broker) -> ``partially_filled`` -> ``filled``; or ``rejected``, ``cancelled``,
``expired``. ``unknown`` means the broker's answer was lost (timeout, disconnect) and a lookup
found nothing yet; it resolves to any state the broker later shows.
"""

from __future__ import annotations

from tradeguard.errors import IllegalStateTransition
from tradeguard.models import OrderState

ALLOWED: dict[OrderState, frozenset[OrderState]] = {
    OrderState.NEW: frozenset({OrderState.SUBMITTED, OrderState.REJECTED}),
    OrderState.SUBMITTED: frozenset(
        {
            OrderState.SUBMITTED,
            OrderState.ACCEPTED,
            OrderState.PARTIALLY_FILLED,
            OrderState.FILLED,
            OrderState.REJECTED,
            OrderState.CANCELLED,
            OrderState.UNKNOWN,
        }
    ),
    OrderState.ACCEPTED: frozenset(
        {
            OrderState.PARTIALLY_FILLED,
            OrderState.FILLED,
            OrderState.CANCELLED,
            OrderState.EXPIRED,
            OrderState.REJECTED,
            OrderState.UNKNOWN,
        }
    ),
    OrderState.PARTIALLY_FILLED: frozenset(
        {
            OrderState.SUBMITTED,
            OrderState.PARTIALLY_FILLED,
            OrderState.FILLED,
            OrderState.CANCELLED,
            OrderState.EXPIRED,
            OrderState.UNKNOWN,
        }
    ),
    OrderState.UNKNOWN: frozenset(
        {
            OrderState.SUBMITTED,
            OrderState.ACCEPTED,
            OrderState.PARTIALLY_FILLED,
            OrderState.FILLED,
            OrderState.REJECTED,
            OrderState.CANCELLED,
            OrderState.EXPIRED,
            OrderState.UNKNOWN,
        }
    ),
    OrderState.FILLED: frozenset(),
    OrderState.REJECTED: frozenset(),
    OrderState.CANCELLED: frozenset(),
    OrderState.EXPIRED: frozenset(),
}


def check_transition(client_id: str, current: OrderState, target: OrderState) -> None:
    if target not in ALLOWED[current]:
        raise IllegalStateTransition(f"order {client_id}: {current.value} -> {target.value} is not allowed")
