"""Shared set-up for the GUI tests: offscreen Qt, pyqtgraph on PySide6, async tests on a qasync
loop, QSettings redirected to a temporary folder, and a real replay engine on a small
generated sample."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import qasync  # noqa: E402
from PySide6.QtCore import QSettings  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

SAMPLE_BARS = 3000


def pytest_asyncio_loop_factories(config, item):
    """Async GUI tests run on a qasync loop, so Qt and asyncio share one loop (QT_NOTES.md)."""
    return {"qasync": lambda: qasync.QEventLoop(QApplication.instance() or QApplication([]))}


@pytest.fixture(scope="session", autouse=True)
def isolated_qsettings(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Never read or write the user's real settings."""
    folder = tmp_path_factory.mktemp("qsettings")
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    for scope in (QSettings.Scope.UserScope, QSettings.Scope.SystemScope):
        QSettings.setPath(QSettings.Format.IniFormat, scope, str(folder))
    return folder


@pytest.fixture(scope="session")
def sample_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small SYNTHETIC replay file whose default-config replay trades within its bars."""
    from data.sample import generate_sample, write_csv

    path = tmp_path_factory.mktemp("sample") / "synthetic_sample_15m.csv"
    write_csv(generate_sample(SAMPLE_BARS), path)
    return path


@pytest.fixture(scope="session", autouse=True)
def loop_owns_the_app(qapp: QApplication) -> QApplication:
    """As in ui.app: closing the last window must not quit Qt under the asyncio loop."""
    qapp.setQuitOnLastWindowClosed(False)
    return qapp


@pytest.fixture
async def window(tmp_path: Path, sample_csv: Path):
    """The main window over a real replay engine (paper venue), shut down without questions."""
    import logging

    from ui.main_window import MainWindow
    from window_helpers import make_engine

    logging.getLogger("agent").setLevel(logging.INFO)
    w = MainWindow(make_engine(tmp_path, sample_csv))
    w.show()
    yield w
    w.shutdown_now()
    await w.wait_closed()
