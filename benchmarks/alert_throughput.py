"""Alert manager: what raising an alert costs the trading thread, and a storm that must lose no CRITICAL.

* per-alert cost on the trading thread: the manager's ``on_alert`` (dedup + rate limit + queue put),
  p50 / p99 in µs, over a mix of new and repeated keys (target <= 5 µs);
* throughput: alerts/s through dedup + rate limit on one thread;
* a storm of N alerts (a quarter CRITICAL, over 40 error types and 10 symbols, 1 ms apart on the
  runtime clock) delivered to a local webhook: every CRITICAL is either sent or counted in a summary,
  and no more CRITICAL messages go out per type than the rate limit allows.
Usage: python benchmarks/alert_throughput.py [--alerts N]
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tradeguard import Alert
from tradeguard.plugins.alerting.alert_manager import AlertManager
from tradeguard.store.sqlite import Store
from tradeguard.testing import T0, make_runtime


def receiver() -> tuple[ThreadingHTTPServer, list[dict[str, Any]]]:
    posts: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            posts.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, posts


def storm(n: int) -> list[Alert]:
    return [
        Alert(
            time=T0 + timedelta(milliseconds=i),
            channel="RISK",
            severity="CRITICAL" if i % 4 == 0 else "WARNING",
            module="bench",
            error_code=f"e{i % 40}",
            message=f"alert {i}",
            symbol=f"S{i % 10}",
        )
        for i in range(n)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--alerts", type=int, default=10_000)
    args = parser.parse_args()
    logging.getLogger("tradeguard").setLevel(logging.CRITICAL)
    server, posts = receiver()
    alerts = storm(args.alerts)
    with tempfile.TemporaryDirectory() as d:
        manager = AlertManager()
        rt = make_runtime(
            ("alert_manager", manager),
            store=Store(Path(d) / "alerts.db"),
            settings={
                "logging": {"level": "ERROR"},
                "alert_manager": {
                    "poll_seconds": 0.05,
                    "destinations": {
                        "desk": {
                            "kind": "webhook",
                            "url": f"http://127.0.0.1:{server.server_address[1]}/",
                            "min_severity": "WARNING",
                        }
                    },
                },
            },
        )
        costs = []
        started = time.perf_counter()
        for alert in alerts:
            t0 = time.perf_counter()
            manager.on_alert(alert, rt)
            costs.append(time.perf_counter() - t0)
        elapsed = time.perf_counter() - started
        whole = []  # runtime.alert(): the Alert model, the log record (filtered at ERROR) and the fan-out
        for i in range(2000):
            t0 = time.perf_counter()
            rt.alert(
                channel="RISK", severity="WARNING", module="bench", error_code="whole", message="m", symbol=f"W{i % 10}"
            )
            whole.append(time.perf_counter() - t0)
        whole.sort()
        rt.clock.advance(timedelta(hours=1))
        manager.close_windows(rt.clock.now())  # every window ends: the summaries go out
        deadline = time.monotonic() + 120
        while manager.outbox.counts().get("pending", 0) or not manager.queue.empty():
            if time.monotonic() > deadline:
                raise SystemExit("delivery did not finish in 120 s")
            time.sleep(0.05)
        rt.stop()
    server.shutdown()
    costs.sort()
    critical_raised = sum(1 for a in alerts if a.severity == "CRITICAL")
    sent = [p for p in posts if p["severity"] == "CRITICAL" and not p["context"].get("summary")]
    summarised = sum(
        p["context"]["suppressed"] for p in posts if p["context"].get("summary") and p["severity"] == "CRITICAL"
    )
    per_type: dict[str, list[str]] = {}
    for p in sent:
        per_type.setdefault(p["error_code"], []).append(p["time"])
    span = (alerts[-1].time - alerts[0].time).total_seconds()
    allowed = int(span // manager.cfg.critical_rate_limit_seconds) + 1
    print(f"{args.alerts:,} alerts ({critical_raised:,} CRITICAL) over {span:.0f} s of runtime clock")
    print(
        f"  on_alert (trading thread): p50 {costs[len(costs) // 2] * 1e6:5.2f} µs   "
        f"p99 {costs[int(len(costs) * 0.99)] * 1e6:5.2f} µs   (target <= 5 µs)"
    )
    print(
        f"  runtime.alert() end to end: p50 {whole[len(whole) // 2] * 1e6:5.2f} µs   "
        f"p99 {whole[int(len(whole) * 0.99)] * 1e6:5.2f} µs   (model + log filter + fan-out)"
    )
    print(f"  throughput through dedup + rate limit: {args.alerts / elapsed:,.0f} alerts/s")
    print(
        f"  delivered: {len(posts):,} messages ({len(sent)} CRITICAL, "
        f"{sum(1 for p in posts if p['context'].get('summary'))} summaries)"
    )
    print(
        f"  CRITICAL accounted for: {len(sent) + summarised:,} of {critical_raised:,} "
        f"({'none lost' if len(sent) + summarised >= critical_raised else 'LOST SOME'})"
    )
    print(f"  most CRITICAL sent for one type: {max(len(v) for v in per_type.values())} (rate limit allows {allowed})")


if __name__ == "__main__":
    main()
