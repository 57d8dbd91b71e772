"""Every trade-server return code, classified once: what the execution engine does with it.

* success        - the request did what it asked (10008 placed, 10009 done, 10010 partial);
* retry_price    - the price moved: re-send with a fresh price, bounded (10004, 10020, 10021);
* retry_backoff  - the server asks us to slow down: re-send after a pause (10024);
* ambiguous      - the outcome is unknown: look the order up before anything is re-sent
                   (10012 timeout, 10031 no connection, and ``order_send`` returning None);
* final          - refused for good; the name says why (everything else).
"""

from __future__ import annotations

from enum import StrEnum

from tradeguard.broker.constants import retcode_names


class RetcodeClass(StrEnum):
    SUCCESS = "success"
    RETRY_PRICE = "retry_price"
    RETRY_BACKOFF = "retry_backoff"
    AMBIGUOUS = "ambiguous"
    FINAL = "final"


NAMES: dict[int, str] = retcode_names()

CLASSES: dict[int, RetcodeClass] = {code: RetcodeClass.FINAL for code in NAMES}
CLASSES.update(
    {
        10008: RetcodeClass.SUCCESS,
        10009: RetcodeClass.SUCCESS,
        10010: RetcodeClass.SUCCESS,
        10004: RetcodeClass.RETRY_PRICE,
        10020: RetcodeClass.RETRY_PRICE,
        10021: RetcodeClass.RETRY_PRICE,
        10024: RetcodeClass.RETRY_BACKOFF,
        10012: RetcodeClass.AMBIGUOUS,
        10031: RetcodeClass.AMBIGUOUS,
    }
)


def classify(retcode: int | None) -> RetcodeClass:
    """``None`` (order_send returned None) is ambiguous; an unknown number is final, never retried."""
    if retcode is None:
        return RetcodeClass.AMBIGUOUS
    return CLASSES.get(retcode, RetcodeClass.FINAL)


def name(retcode: int | None) -> str:
    if retcode is None:
        return "NO_RESULT"
    return NAMES.get(retcode, f"UNKNOWN_{retcode}").removeprefix("TRADE_RETCODE_")
