"""Shared fixtures: hermetic settings (no stray TRADEGUARD_* variables, no settings file in the
working directory) and fake installed distributions for entry-point discovery."""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .receiver import Receiver

REPO = Path(__file__).resolve().parent.parent


def require(present: bool, what: str) -> None:
    """A system tool or privilege a test needs: under CI (``CI`` set) its absence fails the test, since a
    test that skips in CI has not passed (``.ci/system-deps`` installs the tools); elsewhere it skips."""
    if present:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{what}: CI must provide it (.ci/system-deps)")
    pytest.skip(what)


_ids = itertools.count()


@pytest.fixture(autouse=True)
def _hermetic(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in list(os.environ):
        if key.startswith("TRADEGUARD_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("TRADEGUARD_METRICS_SERVER__PORT", "0")  # every runtime in the suite on a free port
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def settings_file(tmp_path: Path) -> Callable[[str], Path]:
    def write(text: str) -> Path:
        path = tmp_path / "settings.toml"
        path.write_text(textwrap.dedent(text))
        return path

    return write


@pytest.fixture
def fake_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., str]]:
    """Install a throw-away distribution on ``sys.path``: ``fake_dist({module: source}, {ep_name: target})``.

    Module names get a unique prefix (returned) so that tests never share ``sys.modules`` entries.
    """
    made: list[str] = []

    def make(modules: dict[str, str], entry_points: dict[str, str], dist: str = "fake-plugins") -> str:
        prefix = f"tgfake{next(_ids)}"
        site = tmp_path / f"site_{prefix}"
        pkg = site / prefix
        pkg.mkdir(parents=True)
        (pkg / "__init__.py").write_text("")
        for name, source in modules.items():
            (pkg / f"{name}.py").write_text(textwrap.dedent(source))
        info = site / f"{dist.replace('-', '_')}-1.2.3.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
        lines = "\n".join(f"{n} = {prefix}.{t}" for n, t in entry_points.items())
        (info / "entry_points.txt").write_text(f"[tradeguard.plugins]\n{lines}\n")
        monkeypatch.syspath_prepend(str(site))
        made.append(prefix)
        return prefix

    yield make
    for prefix in made:
        for mod in [m for m in sys.modules if m == prefix or m.startswith(prefix + ".")]:
            del sys.modules[mod]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A local webhook end (127.0.0.1) recording what alert channels post."""
    r = Receiver()
    yield r
    r.server.shutdown()


@pytest.fixture(autouse=True)
def _close_stores(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Release the files of every store a test opened (its checkpoint thread, its connection): left to the
    garbage collector, five hundred tests keep thousands of descriptors open in one process."""
    from tradeguard.store.sqlite import Store

    made: list[Store] = []
    original = Store.__init__

    def init(self: Store, *args: object, **kwargs: object) -> None:
        original(self, *args, **kwargs)  # type: ignore[arg-type]
        made.append(self)

    monkeypatch.setattr(Store, "__init__", init)
    yield
    for store in made:
        with contextlib.suppress(Exception):
            if store._checkpointer is not None:
                store._checkpointer.stop()
            store.db.close()
