"""Event-loop lag of the whole window over the real engine, replaying at 100 bars/s (issue #3:
never blocked more than 50 ms by UI work). Prints the heartbeat's lateness percentiles and the
slowest loop callbacks. Offscreen by default; run under xvfb-run for a real X server.

    .venv/bin/python bench/window.py [--seconds 30] [--speed 100]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

if not os.environ.get("DISPLAY"):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import qasync  # noqa: E402
from PySide6.QtCore import QSettings  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from agent.config import default_config  # noqa: E402
from agent.session import replay_session  # noqa: E402
from data.sample import generate_sample, write_csv  # noqa: E402
from ui.main_window import MainWindow  # noqa: E402

HEARTBEAT_S = 0.005


async def measure(work: Path, seconds: float, speed: float) -> list[float]:
    csv = work / "synthetic_sample_15m.csv"
    write_csv(generate_sample(), csv)
    engine = replay_session(default_config(), work / "data", csv, speed)
    window = MainWindow(engine, QSettings(str(work / "settings.ini"), QSettings.Format.IniFormat))
    window.resize(1600, 1000)
    window.show()
    window.start_engine()
    lags: list[float] = []
    loop = asyncio.get_running_loop()
    start = loop.time()
    end = start + seconds
    while loop.time() < end:
        before = loop.time()
        await asyncio.sleep(HEARTBEAT_S)
        lags.append((loop.time() - before - HEARTBEAT_S) * 1000)
        if lags[-1] > 30:
            print(f"  {lags[-1]:.0f} ms late at t={before - start:.2f} s")
    window.close()
    await window.wait_closed()
    return lags


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--speed", type=float, default=100.0)
    args = parser.parse_args()
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setQuitOnLastWindowClosed(False)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        lags = asyncio.run(measure(Path(tmp), args.seconds, args.speed),
                           loop_factory=lambda: qasync.QEventLoop(app))
        wall = time.perf_counter() - started
    lags.sort()
    pick = lambda q: lags[min(len(lags) - 1, int(q * len(lags)))]  # noqa: E731
    over = sum(1 for x in lags if x > 50)
    print(f"window + engine replay at {args.speed:g} bars/s for {args.seconds:g} s ({wall:.1f} s wall, "
          f"load {os.getloadavg()[0]:.1f}): loop lag p50 {pick(0.5):.1f} ms, p99 {pick(0.99):.1f} ms, "
          f"max {lags[-1]:.1f} ms; {over} of {len(lags)} heartbeats over 50 ms (target: none)")


if __name__ == "__main__":
    main()
