#!/usr/bin/env bash
# `make screenshot`: run the desktop window under Xvfb on the SYNTHETIC demo sample with the
# real engine (paper broker), wait until a trade is open (after at least one closed trade, so
# the chart shows markers, a ladder and the shaded position), then capture the X screen into
# docs/screenshot.png. Needs xvfb-run (Debian: apt-get install xvfb); uses ImageMagick's
# `import` when present, else Qt's own grab of the screen. Usage: screenshot.sh [OUT] [TAB]
# (TAB: the lower tab to show, e.g. Performance; default Trades).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-docs/screenshot.png}"
TAB="${2:-Trades}"
PY="${PYTHON:-.venv/bin/python}"
command -v xvfb-run >/dev/null || { echo "error: xvfb-run not found (apt-get install xvfb)" >&2; exit 1; }
mkdir -p "$(dirname "$OUT")"
WORK="$(mktemp -d -t trading-agent-shot-XXXXXX)"
trap 'rm -rf "$WORK"' EXIT

xvfb-run -a -s "-screen 0 1600x1000x24" env -u QT_QPA_PLATFORM PYQTGRAPH_QT_LIB=PySide6 \
  "$PY" - "$OUT" "$WORK" "$TAB" <<'PYTHON'
import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

import qasync
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

from agent.config import default_config
from agent.events import PositionClosed, PositionOpened
from agent.session import replay_session
from data.sample import generate_sample, write_csv
from monitoring.logging_setup import setup_logging
from ui.main_window import MainWindow

out, work, tab = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
SPEED, CLOSED_BEFORE_SHOT, LIMIT_S = 150.0, 2, 240.0


async def main() -> int:
    csv = work / "synthetic_sample_15m.csv"
    write_csv(generate_sample(), csv)
    engine = replay_session(default_config(), work / "data", csv, SPEED)
    # Fresh settings: the picture never depends on this machine's saved window layout.
    settings = QSettings(str(work / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(engine, settings)
    window.move(0, 0)
    window.resize(1600, 1000)
    window.show()
    ready = asyncio.Event()
    closed = 0

    def on_event(event) -> None:
        nonlocal closed
        if isinstance(event, PositionClosed):
            closed += 1
        elif isinstance(event, PositionOpened) and closed >= CLOSED_BEFORE_SHOT:
            engine.set_replay_speed(2.0)       # let the open trade run on slowly for the picture
            window.replay_bar.show_speed(2.0)
            ready.set()

    engine.bus.subscribe(on_event)
    window.start_engine()
    try:
        await asyncio.wait_for(ready.wait(), LIMIT_S)
        tabs = [window.tabs.tabText(i) for i in range(window.tabs.count())]
        if tab not in tabs:
            print(f"error: no tab {tab!r} (tabs: {', '.join(tabs)})", file=sys.stderr)
            return 2
        window.tabs.setCurrentIndex(tabs.index(tab))
        await asyncio.sleep(4.0)                # a few more bars, repaints, the 1 s panel refresh
        if shutil.which("import"):
            subprocess.run(["import", "-window", "root", str(out)], check=True)
        else:
            QApplication.primaryScreen().grabWindow(0).save(str(out))
        print(f"wrote {out}")
        return 0
    except TimeoutError:
        print(f"error: no trade opened within {LIMIT_S:.0f} s", file=sys.stderr)
        return 1
    finally:
        window.shutdown_now()                   # a position is open: close() would ask
        await window.wait_closed()


setup_logging(None, "WARNING", console=True)
app = QApplication(sys.argv[:1])
app.setQuitOnLastWindowClosed(False)
sys.exit(asyncio.run(main(), loop_factory=lambda: qasync.QEventLoop(app)))
PYTHON
