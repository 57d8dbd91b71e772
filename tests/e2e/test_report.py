"""`tradeguard report` over a real replay: the page, its charts as real images, and a headless browser."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from ..conftest import REPO, require

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("report")
    env = {**os.environ, "COLUMNS": "200"}
    for args in (["replay", "--json"], ["report", "--out", "out"]):
        done = subprocess.run(
            [sys.executable, "-m", "tradeguard", *args, "--settings", str(REPO / "settings.toml")],
            cwd=work,
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        if args[0] == "replay":
            (work / "summary.json").write_text(done.stdout)
    assert f"report written: {work / 'out' / 'index.html'}" in done.stdout.replace("\n", "")
    return work / "out"


def test_every_chart_is_a_real_picture(report: Path) -> None:
    html = (report / "index.html").read_text()
    sources = re.findall(r'<img src="([^"]+)"', html)
    expected = {
        "equity_drawdown.png",
        "trades_EURUSD_H1.png",
        "exposure.png",
        "rejections.png",
        "latency.png",
        "scores.png",
    }
    assert set(sources) == expected
    for name in sources:
        with Image.open(report / name) as img:
            assert img.format == "PNG" and img.width >= 800 and img.height >= 250, name
            colours = img.convert("RGB").getcolors(maxcolors=1 << 20)
            assert colours is not None and len(colours) > 50, f"{name} looks blank"


def test_the_page_shows_limits_scores_memory_accuracy_and_decisions(report: Path) -> None:
    html = (report / "index.html").read_text()
    assert "risk guard: daily loss limit 5.0%" in html and "REDUCE_ONLY" in html
    assert 'id="factors"' in html and "scenario_scorer.trend" in html  # each factor's mean contribution
    insights = html[html.index('id="insights"') : html.index("</table>", html.index('id="insights"'))]
    assert insights.count("<tr>") >= 2 and "donchian_breakout" in insights  # memory statistics of closed trades
    for table in ("accuracy-strategies", "accuracy-reasons", "accuracy-calibration"):
        assert f'id="{table}"' in html
    assert "kill_switch_reduce_only" in html[html.index('id="accuracy-reasons"') :]
    decisions = html[html.index('id="decisions"') :]
    assert decisions.count("<tr") > 100 and "tg-00000001" in decisions
    summary = json.loads((report.parent / "summary.json").read_text())
    period = f"{summary['first_bar'][:16]} -&gt; {summary['last_bar'][:16]}"
    assert f'period</th><td class="l">{period}<' in html  # the report's period is the replay's
    # the kill switch latched in week one: the charts stop after the last deal, and the page says why
    assert "nothing traded from then to the end of the period" in html
    assert "kept the market's time (a replay)" in html  # no market-time interval drawn as a latency
    trades = html[html.index('id="trades"') : html.index("</table>", html.index('id="trades"'))]
    for column in ("symbol", "opened", "entry", "closed", "exit", "lots", "result", "realised R", "held", "closed by"):
        assert f">{column}</th>" in trades, column
    csv_lines = (report / "decisions.csv").read_text().splitlines()
    assert csv_lines[0].startswith("time,signal_id") and len(csv_lines) > 600  # every decision, not just the page's


def test_status_shows_the_memory_and_the_accuracy(report: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tradeguard", "status", "--settings", str(REPO / "settings.toml")],
        cwd=report.parent,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    memory = done.stdout[done.stdout.index("insights memory") : done.stdout.index("signal accuracy")]
    assert "donchian_breakout" in memory and "london" in memory
    accuracy = done.stdout[done.stdout.index("signal accuracy") :]
    assert re.search(r"ma_crossover\s+│\s+rejected\s+│\s+\d+", accuracy)


def test_the_report_opens_in_a_headless_browser_without_errors(report: Path) -> None:
    require(CHROMIUM is not None, "chromium not installed (Debian package chromium)")
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        page = browser.new_page()
        page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda exc: problems.append(str(exc)))
        page.on("requestfailed", lambda req: problems.append(f"failed: {req.url}"))
        page.goto((report / "index.html").as_uri())
        images = page.eval_on_selector_all("img", "els => els.map(e => [e.getAttribute('src'), e.naturalWidth])")
        title = page.title()
        page.screenshot(path=str(report / "page.png"), full_page=False)
        browser.close()
    assert title == "tradeguard report"
    assert problems == []
    assert len(images) == 6 and all(width >= 800 for _, width in images), images
