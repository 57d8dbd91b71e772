"""The main job end to end: `tradeguard replay` over the shipped EURUSD H1 data, as a user runs it."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from ..conftest import REPO


def replay(workdir: Path, *args: str, **env_settings: str) -> subprocess.CompletedProcess[str]:
    workdir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "COLUMNS": "200", **env_settings}
    return subprocess.run(
        [sys.executable, "-m", "tradeguard", "replay", "--settings", str(REPO / "settings.toml"), *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def journal_digest(db: Path) -> str:
    con = sqlite3.connect(db)
    rows = [
        *con.execute(
            "SELECT deal_ticket, client_id, side, entry, volume, price, profit, time FROM fills ORDER BY deal_ticket"
        ),
        *con.execute(
            "SELECT client_id, side, volume, price, stop_loss, take_profit, state, last_message "
            "FROM orders ORDER BY client_id"
        ),
    ]
    return hashlib.sha256(repr(rows).encode()).hexdigest()


@pytest.fixture(scope="module")
def default_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    work = tmp_path_factory.mktemp("replay")
    return replay(work), work / "var" / "tradeguard.db"


def test_full_replay_trades_rejects_and_keeps_the_truth(default_run: tuple) -> None:
    run, db = default_run
    assert run.returncode == 0, run.stderr[-3000:]
    assert "5,000" in run.stdout and "fills (deals)" in run.stdout
    assert "audit chain" in run.stdout and "intact" in run.stdout
    con = sqlite3.connect(db)
    fills = con.execute("SELECT COUNT(*), SUM(entry = 'out') FROM fills").fetchone()
    assert fills[0] >= 4 and fills[1] >= 2  # entries and their stop-outs, journaled
    # every change is recorded, and a flat, unchanged account at least once per server day (~290 days here)
    assert con.execute("SELECT COUNT(*) FROM account_snapshots").fetchone()[0] > 280
    reasons = {r[0] for r in con.execute("SELECT reasons FROM decisions WHERE approved = 0")}
    assert any("kill_switch_reduce_only" in r for r in reasons)


def test_the_weekend_gap_trips_the_daily_loss_limit_and_only_reducing_orders_pass_after(default_run: tuple) -> None:
    run, db = default_run
    con = sqlite3.connect(db)
    state, trigger, _, since = con.execute("SELECT state, trigger, message, since FROM kill_switch").fetchone()
    assert (state, trigger) == ("REDUCE_ONLY", "daily_loss_limit")
    assert since.startswith("2017-04-23T22")  # the close of the French election gap's bar, on the replay's clock
    after = con.execute("SELECT approved, reasons FROM decisions WHERE decided_at > ?", (since,)).fetchall()
    assert after and all(not approved and "kill_switch_reduce_only" in reasons for approved, reasons in after)
    assert "REDUCE_ONLY since 2017-04-23" in run.stdout


# the hard limits lifted (through the environment, as operators do) so that the replay keeps trading
KEEP_TRADING = {"TRADEGUARD_RISK_GUARD__DAILY_LOSS_LIMIT_PCT": "0", "TRADEGUARD_RISK_GUARD__MAX_DRAWDOWN_PCT": "0"}


def test_same_seed_same_journal(tmp_path: Path) -> None:
    args = ("--faults", "hostile", "--seed", "7", "--to", "2017-07-01T00:00")
    first, second = replay(tmp_path / "a", *args, **KEEP_TRADING), replay(tmp_path / "b", *args, **KEEP_TRADING)
    assert first.returncode == 0 and second.returncode == 0, first.stderr[-2000:]
    digests = {journal_digest(tmp_path / d / "var" / "tradeguard.db") for d in ("a", "b")}
    assert len(digests) == 1
    other = replay(tmp_path / "c", "--faults", "hostile", "--seed", "8", "--to", "2017-07-01T00:00", **KEEP_TRADING)
    assert other.returncode == 0 and journal_digest(tmp_path / "c" / "var" / "tradeguard.db") not in digests
    orders = sqlite3.connect(tmp_path / "a" / "var" / "tradeguard.db").execute("SELECT COUNT(*) FROM orders")
    assert orders.fetchone()[0] >= 20


def test_a_finished_replay_leaves_one_self_contained_journal_file(tmp_path: Path) -> None:
    """A copy of the journal file alone (the obvious backup) holds everything: a clean stop checkpoints
    the write-ahead log into it. A year of trading used to leave most of itself in a 16 MB -wal."""
    done = replay(tmp_path, **KEEP_TRADING)
    assert done.returncode == 0, done.stderr[-2000:]
    db = tmp_path / "var" / "tradeguard.db"
    assert not Path(f"{db}-wal").exists()
    copy = tmp_path / "backup.db"
    copy.write_bytes(db.read_bytes())
    decisions = sqlite3.connect(copy).execute("SELECT COUNT(*) FROM decisions").fetchone()[0]
    assert decisions == 698 and "698 (" in done.stdout  # every signal the summary counted


def test_the_replay_alerts_reach_a_webhook_configured_from_the_environment(tmp_path: Path) -> None:
    from ..plugins.alerting.test_alert_manager import Receiver

    desk = Receiver()
    try:
        destinations = f'@json {{"desk": {{"kind": "webhook", "url": "{desk.url}/hook", "min_severity": "CRITICAL"}}}}'
        run = replay(tmp_path, "--to", "2017-05-01T00:00", TRADEGUARD_ALERT_MANAGER__DESTINATIONS=destinations)
        assert run.returncode == 0, run.stderr[-3000:]
    finally:
        desk.server.shutdown()
    codes = [body["error_code"] for _, body in desk.posts]
    assert "daily_loss_limit" in codes and all(body["severity"] == "CRITICAL" for _, body in desk.posts)
    con = sqlite3.connect(tmp_path / "var" / "tradeguard.db")
    assert con.execute("SELECT COUNT(*) FROM alert_outbox WHERE status != 'sent'").fetchone()[0] == 0


def test_metrics_scraped_during_a_replay_follow_it(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from tradeguard.kernel.clock import ReplayClock
    from tradeguard.kernel.runtime import Runtime
    from tradeguard.replay.loop import replay as run_replay

    from ..plugins.monitoring.test_metrics_server import scrape

    overrides = {"runtime": {"data_dir": str(tmp_path)}, "metrics_server": {"port": 0}, "logging": {"level": "ERROR"}}
    rt = Runtime.build(
        REPO / "settings.toml", None, clock=ReplayClock(datetime(1970, 1, 2, tzinfo=UTC)), overrides=overrides
    )
    port = rt.pm.get_plugin("metrics_server")
    scrapes: list[dict[str, float]] = []

    def during(summary: object) -> None:
        scrapes.append({**scrape(port.port), "bars": float(summary.bars)})  # type: ignore[attr-defined]

    run_replay(rt, progress=during, every=50)  # the gap comes about 100 bars in
    rt.stop()
    assert len(scrapes) >= 50
    decided = [sum(v for k, v in s.items() if k.startswith("tradeguard_decisions_total")) for s in scrapes]
    assert decided == sorted(decided) and decided[-1] > decided[0] > 0  # counted as the replay goes
    killed = [s["tradeguard_kill_switch_active"] for s in scrapes]
    assert killed[0] == 0 and killed[-1] == 1  # the gap latches the switch mid-replay
    assert all(s["tradeguard_account_equity"] > 0 for s in scrapes)


def test_an_interrupted_replay_stops_between_bars_and_says_so(tmp_path: Path) -> None:
    """Ctrl-C in a long replay: it ends between two bars, shuts down as a finished one does (the audit
    chain whole, the process recorded as stopped), prints the summary so far and exits 130."""
    import signal
    import time

    from tradeguard.broker.data import SAMPLE, load_bars, repeat_shifted

    data = tmp_path / "long.csv"
    with data.open("w") as fh:  # twenty years of H1 bars: far longer than the test waits
        fh.write(",Open,High,Low,Close,Volume\n")
        for row in repeat_shifted(load_bars(SAMPLE), 20):
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(int(row["time"])))
            fh.write(f"{stamp},{row['open']},{row['high']},{row['low']},{row['close']},{row['tick_volume']}\n")
    db = tmp_path / "var" / "tradeguard.db"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tradeguard", "replay", "--settings", str(REPO / "settings.toml"), "--data", str(data)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )

    def bars_written() -> int:
        try:
            with closing(sqlite3.connect(db)) as con:
                return con.execute("SELECT COALESCE(SUM(count), 0) FROM bar_blocks").fetchone()[0]
        except sqlite3.Error:
            return 0

    deadline = time.monotonic() + 120
    while (db.exists() and bars_written()) == 0:  # the replay loop is running once bars reach the journal
        assert time.monotonic() < deadline and proc.poll() is None, "the replay never got going"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    text = " ".join(out.split())
    assert "(interrupted)" in text and "audit chain │ intact" in text
    assert 0 < bars_written() < 100_000
    status = subprocess.run(
        [sys.executable, "-m", "tradeguard", "status", "--settings", str(REPO / "settings.toml")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "trading process │ stopped" in " ".join(status.stdout.split())


def test_strategies_that_follow_another_timeframe_are_named_before_the_replay(tmp_path: Path) -> None:
    """D1 data replayed into the H1 strategies used to end in '0 signals' and nothing said why."""
    from tradeguard.broker.data import SAMPLE

    days: dict[str, list[float]] = {}
    for line in SAMPLE.read_text().splitlines()[1:]:
        stamp, *ohlc, volume = line.split(",")
        o, h, low, c = map(float, ohlc)
        day = days.setdefault(stamp[:10], [o, h, low, c, 0.0])
        day[1], day[2], day[3], day[4] = max(day[1], h), min(day[2], low), c, day[4] + float(volume)
    daily = tmp_path / "d1.csv"
    rows = "".join(f"{d},{o},{h},{low},{c},{int(v)}\n" for d, (o, h, low, c, v) in days.items())
    daily.write_text("time,open,high,low,close,tick_volume\n" + rows)
    run = replay(tmp_path / "d1", "--data", str(daily))
    assert run.returncode == 0, run.stderr[-2000:]
    for name in ("ma_crossover", "donchian_breakout"):
        assert f"{name} follows H1 bars, these are D1: it will not signal; set {name}.timeframe = 'D1'" in run.stderr
    switched = replay(tmp_path / "d1-set", "--data", str(daily), TRADEGUARD_MA_CROSSOVER__TIMEFRAME="D1")
    assert "ma_crossover follows" not in switched.stderr and "donchian_breakout follows" in switched.stderr
    assert "0 (0 approved)" not in switched.stdout  # the crossover speaks on D1 once asked to


PORTFOLIO_DIR = REPO / "tradeguard" / "data" / "portfolio"


def test_a_folder_of_symbol_files_replays_as_one_book(tmp_path: Path) -> None:
    import json

    done = replay(tmp_path / "dir", "--data", str(PORTFOLIO_DIR), "--to", "2017-05-01", "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout)
    assert set(summary["symbols"]) == {"AUDUSD", "EURGBP", "EURUSD", "GBPUSD", "USDCHF", "USDJPY", "XAUUSD"}
    assert all(part["bars"] > 100 for part in summary["symbols"].values())
    assert summary["bars"] == sum(part["bars"] for part in summary["symbols"].values())


def test_symbol_equals_file_pairs_choose_the_book(tmp_path: Path) -> None:
    import json

    pairs = [f"--data={s}={PORTFOLIO_DIR / f'{s}_H1.csv'}" for s in ("USDJPY", "XAUUSD")]
    done = replay(tmp_path / "pairs", *pairs, "--to", "2017-05-01", "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    assert set(json.loads(done.stdout)["symbols"]) == {"USDJPY", "XAUUSD"}
    cross = replay(tmp_path / "cross", f"--data=EURGBP={PORTFOLIO_DIR / 'EURGBP_H1.csv'}", "--to", "2017-05-01")
    assert cross.returncode != 0 and "Traceback" not in cross.stderr  # its pounds need GBPUSD's rate
    assert "EURGBP's money converts into USD through EURUSD, GBPUSD: replay EURUSD and GBPUSD too" in cross.stderr


def test_one_symbols_data_under_another_name_is_refused_in_one_line(tmp_path: Path) -> None:
    eurusd = PORTFOLIO_DIR / "EURUSD_H1.csv"
    done = replay(tmp_path / "renamed", "--data", str(eurusd), "--symbol", "GBPUSD")
    assert done.returncode != 0
    assert "EURUSD_H1.csv looks like EURUSD's data, not GBPUSD's" in done.stderr and "Traceback" not in done.stderr
    meant = ("--data", str(eurusd), "--symbol", "GBPUSD", "--allow-renamed-data", "--to", "2017-04-25")
    allowed = replay(tmp_path / "meant", *meant)
    assert allowed.returncode == 0, allowed.stderr[-2000:]
    mixed = replay(tmp_path / "mixed", "--data", str(eurusd), f"--data=GBPUSD={eurusd}")
    assert mixed.returncode != 0 and "either SYMBOL=FILE pairs or one FILE or DIR" in mixed.stderr
