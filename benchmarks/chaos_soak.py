"""Chaos soak: the chaos suite's rounds for longer, on both account modes, with their figures.

The emulator served as its own process, its market running at ``--ticks-per-second``; ``tradeguard run``
over the mt5linux client SIGKILLed at seeded random moments (``--kills`` per mode), restarted each
time, parts of positions closed at the terminal between runs, and a damaged store every
``--corrupt-every`` restarts. Then the journal is compared with the broker (see ``tradeguard.chaos``).

Prints per mode: kills, deals, deals missing, duplicates, extra, sent twice, in flight, positions
apart, alignment time p50/p99, and whether every invariant held. Exit 1 if any did not.

Usage: python benchmarks/chaos_soak.py [--kills 300] [--modes hedging netting] [--seed 1]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from tradeguard.chaos import ChaosPlan, ChaosRound


def pct(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(len(s) * q))] if s else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=300, help="SIGKILLs per account mode")
    ap.add_argument("--modes", nargs="+", default=["hedging", "netting"], choices=["hedging", "netting"])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--ticks-per-second", type=float, default=24.0)
    ap.add_argument("--corrupt-every", type=int, default=25)
    args = ap.parse_args()
    failed = False
    with tempfile.TemporaryDirectory(prefix="tradeguard-soak-") as tmp:
        for mode in args.modes:
            started = time.monotonic()
            plan = ChaosPlan(
                workdir=Path(tmp) / mode,
                margin_mode=mode,
                kills=args.kills,
                seed=args.seed,
                ticks_per_second=args.ticks_per_second,
                corrupt_every=args.corrupt_every,
            )
            r = ChaosRound(plan).run()
            align = [s * 1000 for s in r.alignment_seconds]
            problems = r.failures()
            failed |= bool(problems)
            print(f"== {mode}: {time.monotonic() - started:.0f} s")
            print(
                f"kills {r.kills}  runs {r.runs}  orders {r.orders}  deals {r.deals}  manual closes "
                f"{r.manual_closes}  damaged-store starts refused {len(r.corrupt_refusals)}"
            )
            print(
                f"deals missing {len(r.missing)}  duplicates {r.duplicates}  extra {len(r.extra)}  sent twice "
                f"{len(r.sent_twice)}  in flight {len(r.in_flight)}  positions apart {len(r.positions_apart)}  "
                f"orders without decision {len(r.decisions_missing)}  reconciliation halts "
                f"{r.reconciliation_halts}"
            )
            print(
                f"day's realised P&L: tracker {r.pnl_day[0]:.2f} broker {r.pnl_day[1]:.2f}; ours: journal "
                f"{r.pnl_day_ours[0]:.2f} broker {r.pnl_day_ours[1]:.2f}"
            )
            print(
                f"alignment p50 {pct(align, 0.5):.1f} ms  p99 {pct(align, 0.99):.1f} ms  max "
                f"{max(align, default=float('nan')):.1f} ms  ({len(align)} alignments)"
            )
            print("invariants: all held" if not problems else "invariants BROKEN:\n  " + "\n  ".join(problems))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
