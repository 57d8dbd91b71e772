"""`tradeguard fleet` as an operator meets it first: no fleet configured, an empty database, a database down."""

from __future__ import annotations

from pathlib import Path

from ..helpers import tradeguard


def test_without_a_fleet_url_the_commands_say_so(tmp_path: Path) -> None:
    settings = tmp_path / "s.toml"
    settings.write_text("")
    done = tradeguard(settings, "fleet", "status")
    assert done.returncode == 1 and "no fleet: fleet.url is not set" in done.stderr and "Traceback" not in done.stderr


def test_an_empty_database_has_no_fleet_yet(tmp_path: Path, fleet_url: str) -> None:
    settings = tmp_path / "s.toml"
    settings.write_text(f'[default.fleet]\nurl = "{fleet_url}"\n')
    for command in (["status"], ["kill", "--reason", "test"]):
        done = tradeguard(settings, "fleet", *command)
        assert done.returncode == 1 and "no fleet 'main' in this database" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr


def test_a_database_out_of_reach_is_one_line(tmp_path: Path) -> None:
    settings = tmp_path / "s.toml"
    settings.write_text('[default.fleet]\nurl = "postgresql://desk:hunter22@127.0.0.1:1/fleet"\n')
    done = tradeguard(settings, "fleet", "kill", "--reason", "test")
    assert done.returncode == 1 and "fleet database unreachable" in done.stderr
    assert "hunter22" not in done.stderr + done.stdout and "Traceback" not in done.stderr
