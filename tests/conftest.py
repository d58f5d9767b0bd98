"""Shared fixtures: every test runs with HOME and KPILOOP_HOME in temporary directories."""

from __future__ import annotations

from pathlib import Path

import pytest

TESTDATA = Path(__file__).parent / "testdata"
GOLDEN = TESTDATA / "golden"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true", help="Rewrite golden files instead of comparing.")


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point HOME and KPILOOP_HOME at fresh temporary folders so no test touches the real ~/.claude."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("KPILOOP_HOME", str(home / "kpiloop-data"))
    return home


class Golden:
    """Compares text with a file under tests/testdata/golden/, or rewrites it with --update-golden."""

    def __init__(self, update: bool) -> None:
        self._update = update

    def check(self, name: str, actual: str) -> None:
        path = GOLDEN / name
        if self._update:
            path.write_text(actual, encoding="utf-8")
            return
        assert path.exists(), f"missing golden file {path}; run pytest --update-golden and review the diff"
        assert actual == path.read_text(encoding="utf-8"), f"output differs from {path}"


@pytest.fixture
def golden(request: pytest.FixtureRequest) -> Golden:
    """The golden-file comparer."""
    return Golden(bool(request.config.getoption("--update-golden")))
