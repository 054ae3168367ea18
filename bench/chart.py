"""Chart frame costs at 2k, 10k and 50k candles, printed next to the issue's targets.

Full scene: candles, two EMAs, the volume pane under the candles, the current-price line with
its axis tag, a Fibonacci ladder, ~400 markers, an open position with a stop line and a visible
crosshair with its axis tags, in a 1600x900 ChartWidget on synthetic random-walk data.
Qt paints lazily, so every figure includes the paint it causes:
- tick: update_live + the throttled Y fit + processEvents (Qt repaints only the changed region);
- tick + price line: the same when the price line, tag and header refresh is due (they are
  painted in the tick's pass); "price line refresh alone" is the timed refresh that ticks less
  than LABEL_INTERVAL_MS apart share, timed by itself (its own paint pass);
- pan / zoom: move the X range by 5% / scale it by 0.9, fit Y, repaint the whole viewport;
- candle close: append_bar + processEvents until Qt has painted what it changed (the follow
  scroll with its Y fit repaints the whole view).
Each is measured with the default window (200 candles) and with every candle visible.
The loop lag is the worst delay of a 5 ms timer while 100 bars/s (plus 4 ticks per bar) are
replayed into the chart alone; the engine's share is measured by whoever wires the engine
(see replay_loop_lag()).

Run: .venv/bin/python bench/chart.py [candle counts...]   (offscreen by default)
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from PySide6.QtCore import QElapsedTimer, QEventLoop, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from ui.chart import ChartWidget  # noqa: E402
from ui.chart.widget import FRAME_MS  # noqa: E402

SIZES = (2_000, 10_000, 50_000)
BAR_MS = 900_000
REPEATS = 60
TARGETS_MS = {"tick": 1.0, "tick + price line": 1.0, "pan": 10.0, "zoom": 10.0, "pan (all visible)": 10.0,
              "zoom (all visible)": 10.0, "candle close": 10.0, "candle close (all visible)": 10.0,
              "loop lag max": 50.0}


@dataclass
class Candles:
    ts: np.ndarray
    o: np.ndarray
    h: np.ndarray
    l: np.ndarray
    c: np.ndarray
    ema_fast: np.ndarray
    ema_slow: np.ndarray
    volume: np.ndarray


def random_walk(n: int, seed: int = 7) -> Candles:
    """Random-walk candles around 100k with EMA(20)/EMA(100) and a NaN warm-up."""
    rng = np.random.default_rng(seed)
    ts = 1_700_000_000_000 + np.arange(n, dtype=np.int64) * BAR_MS
    c = 100_000.0 + np.cumsum(rng.normal(0.0, 60.0, n))
    o = np.concatenate(([c[0]], c[:-1]))
    h = np.maximum(o, c) + rng.exponential(30.0, n)
    l = np.minimum(o, c) - rng.exponential(30.0, n)
    volume = rng.lognormal(3.0, 0.6, n)
    return Candles(ts, o, h, l, c, _ema(c, 20), _ema(c, 100), volume)


def _ema(x: np.ndarray, span: int) -> np.ndarray:
    alpha = 2.0 / (span + 1)
    out = np.empty_like(x)
    acc = x[0]
    for i, v in enumerate(x):
        acc = alpha * v + (1 - alpha) * acc
        out[i] = acc
    out[: span // 2] = np.nan
    return out


def build_scene(app: QApplication, d: Candles, n_history: int, frame_ms: int = 0) -> ChartWidget:
    """frame_ms 0 lets processEvents apply a follow scroll at once, so a frame can be timed."""
    w = ChartWidget(frame_ms=frame_ms)
    w.resize(1600, 900)
    w.show()
    k = n_history
    w.set_history(d.ts[:k], d.o[:k], d.h[:k], d.l[:k], d.c[:k], d.ema_fast[:k], d.ema_slow[:k],
                  d.volume[:k])
    lo, hi = d.l[k - 80:k].min(), d.h[k - 80:k].max()
    w.set_fib_ladder([(r, hi - r * (hi - lo)) for r in (0.0, 0.382, 0.5, 0.618, 0.786, 1.0)],
                     0.618, int(d.ts[k - 80]), None)
    step = max(1, k // 200)
    kinds = ("target", "stop", "neutral")
    for j, i in enumerate(range(0, k - 3, step)):
        w.add_entry_marker(int(d.ts[i]), float(d.l[i]))
        w.add_exit_marker(int(d.ts[i + 2]), float(d.h[i + 2]), kinds[j % 3])
    w.set_position(int(d.ts[k - 20]), float(d.c[k - 20]), float(d.c[k - 20]) - 400.0)
    w._on_crosshair(float(d.ts[k - 40]) / 1000.0, float(d.c[k - 40]))   # lines and axis tags
    w.update_live(int(d.ts[k]), float(d.o[k]), float(d.h[k]), float(d.l[k]), float(d.o[k]))
    settle(app)
    return w


def settle(app: QApplication) -> None:
    for _ in range(3):
        app.processEvents()


def measure(fn: Callable[[int], None], repeats: int = REPEATS) -> tuple[float, float, float]:
    """Wall-clock median and p95, and the median CPU time of this thread (in ms).

    The CPU figure is what the chart itself costs; it stays meaningful when other processes
    load the machine and stretch the wall-clock figures.
    """
    wall, cpu = [], []
    for i in range(repeats):
        t0, c0 = time.perf_counter(), time.thread_time()
        fn(i)
        wall.append((time.perf_counter() - t0) * 1000.0)
        cpu.append((time.thread_time() - c0) * 1000.0)
    return float(np.median(wall)), float(np.percentile(wall, 95)), float(np.median(cpu))


def bench_size(app: QApplication, n: int) -> dict[str, tuple[float, float, float]]:
    d = random_walk(n + REPEATS + 2)
    w = build_scene(app, d, n)
    vp = w.plot_widget.viewport()
    volume_vp = w.volume_widget.viewport()
    out: dict[str, tuple[float, float, float]] = {}
    k = n
    lo, hi = float(d.l[k]), float(d.h[k])

    def tick(i: int) -> None:
        price = lo + (hi - lo) * ((i * 0.37) % 1.0)
        w.update_live(int(d.ts[k]), float(d.o[k]), hi, lo, price)
        w.fit_y()
        app.processEvents()

    out["tick"] = measure(tick, REPEATS * 3)

    def tick_with_price_line(i: int) -> None:
        """A tick that comes when the price-line, axis tag and header label refresh is due (the
        last one is LABEL_INTERVAL_MS old): the window refreshes them inside the tick, in the
        same paint pass. Ticks less than LABEL_INTERVAL_MS apart instead share one timed
        refresh per interval: see "price line refresh alone"."""
        w._label_timer.stop()
        w._since_label.invalidate()       # as if the last refresh were LABEL_INTERVAL_MS ago
        tick(i)

    out["tick + price line"] = measure(tick_with_price_line, REPEATS * 3)

    def price_line_alone(i: int) -> None:
        """The timed refresh between fast ticks: its own paint pass."""
        tick(i)
        t0, c0 = time.perf_counter(), time.thread_time()
        w._update_price_label()
        app.processEvents()
        alone.append(((time.perf_counter() - t0) * 1000.0, (time.thread_time() - c0) * 1000.0))

    alone: list[tuple[float, float]] = []
    measure(price_line_alone, REPEATS * 3)
    walls, cpus = zip(*alone)
    out["price line refresh alone"] = (float(np.median(walls)), float(np.percentile(walls, 95)),
                                       float(np.median(cpus)))

    def pan(i: int) -> None:
        x0, x1 = w.view.viewRange()[0]
        shift = 0.05 * (x1 - x0) * (1 if (i // 10) % 2 else -1)
        w.view.setXRange(x0 + shift, x1 + shift, padding=0.0)
        w.fit_y()
        vp.repaint()
        volume_vp.repaint()

    def zoom(i: int) -> None:
        x0, x1 = w.view.viewRange()[0]
        factor = 0.9 if (i // 10) % 2 == 0 else 1 / 0.9
        mid, half = (x0 + x1) / 2, (x1 - x0) / 2 * factor
        w.view.setXRange(mid - half, mid + half, padding=0.0)
        w.fit_y()
        vp.repaint()
        volume_vp.repaint()

    out["pan"] = measure(pan)
    out["zoom"] = measure(zoom)
    x_first, x_last = d.ts[0] / 1000.0, d.ts[k] / 1000.0
    w.view.setXRange(x_first, x_last, padding=0.02)
    out["pan (all visible)"] = measure(pan)
    w.view.setXRange(x_first, x_last, padding=0.02)
    out["zoom (all visible)"] = measure(zoom)

    def close(i: int) -> None:
        j = k + i
        w.append_bar(int(d.ts[j]), float(d.o[j]), float(d.h[j]), float(d.l[j]), float(d.c[j]),
                     float(d.ema_fast[j]), float(d.ema_slow[j]), float(d.volume[j]))
        app.processEvents()  # the follow scroll and its Y fit, then the paint they cause
        app.processEvents()

    w.view.setXRange(0.0, 1.0)  # narrower than 10 bars: following resumes at the default zoom
    w.follow_latest()
    settle(app)
    out["candle close"] = measure(close, REPEATS // 2)
    w.view.setXRange(x_first, x_last, padding=0.02)
    w.follow_latest()
    settle(app)
    k += REPEATS // 2
    out["candle close (all visible)"] = measure(close, REPEATS // 2)
    settle(app)
    w.close()
    w.deleteLater()
    settle(app)
    return out


def replay_loop_lag(app: QApplication, chart: ChartWidget, d: Candles, start: int,
                    bars_per_second: float = 100.0, ticks_per_bar: int = 4,
                    seconds: float = 3.0) -> float:
    """Worst lateness (ms) of a 5 ms heartbeat timer while bars are replayed into `chart`.

    Hook for the engine's replay bench: the same heartbeat can run beside the real engine.
    """
    bars = int(bars_per_second * seconds)
    state = {"bar": 0, "tick": 0}
    worst = [0.0]
    heartbeat = QTimer()
    heartbeat.setInterval(5)
    clock = QElapsedTimer()
    last = [0]

    def beat() -> None:
        now = clock.elapsed()
        worst[0] = max(worst[0], float(now - last[0] - 5))
        last[0] = now

    def step() -> None:
        j = start + state["bar"]
        if state["tick"] < ticks_per_bar:
            frac = (state["tick"] + 1) / ticks_per_bar
            price = float(d.o[j] + (d.c[j] - d.o[j]) * frac)
            chart.update_live(int(d.ts[j]), float(d.o[j]), max(float(d.o[j]), price),
                              min(float(d.o[j]), price), price)
            state["tick"] += 1
            return
        chart.append_bar(int(d.ts[j]), float(d.o[j]), float(d.h[j]), float(d.l[j]),
                         float(d.c[j]), float(d.ema_fast[j]), float(d.ema_slow[j]),
                         float(d.volume[j]))
        state["tick"] = 0
        state["bar"] += 1
        if state["bar"] >= bars:
            feeder.stop()
            loop.quit()

    loop = QEventLoop()
    feeder = QTimer()
    feeder.setInterval(max(1, int(1000 / (bars_per_second * (ticks_per_bar + 1)))))
    feeder.timeout.connect(step)
    heartbeat.timeout.connect(beat)
    clock.start()
    heartbeat.start()
    feeder.start()
    loop.exec()
    heartbeat.stop()
    return worst[0]


def bench_loop_lag(app: QApplication, n: int) -> float:
    bars = 300
    d = random_walk(n + bars + 2)
    w = build_scene(app, d, n, frame_ms=FRAME_MS)
    lag = replay_loop_lag(app, w, d, n)
    w.close()
    w.deleteLater()
    settle(app)
    return lag


def main(argv: list[str]) -> None:
    """Optional arguments: candle counts to run instead of 2k, 10k and 50k."""
    sizes = tuple(int(a) for a in argv) or SIZES
    app = QApplication.instance() or QApplication(sys.argv[:1])
    results = {n: bench_size(app, n) for n in sizes}
    lags = {n: bench_loop_lag(app, n) for n in sizes}
    header = (f"{'ms: wall median / p95 / cpu':<28}" + "".join(f"{n:>24,}" for n in sizes)
              + f"{'target':>9}")
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(header)
    print("-" * len(header))
    for name in results[sizes[0]]:
        cells = "".join("{:>10.2f} /{:>6.2f} /{:>5.2f}".format(*results[n][name]) for n in sizes)
        target = f"< {TARGETS_MS[name]:g}" if name in TARGETS_MS else ""
        print(f"{name:<28}{cells}{target:>9}")
    cells = "".join(f"{lags[n]:>24.1f}" for n in sizes)
    print(f"{'loop lag max (wall)':<28}{cells}{'< ' + format(TARGETS_MS['loop lag max'], 'g'):>9}")
    print("(loop lag: chart alone, 100 bars/s with 4 ticks per bar; engine not included)")


if __name__ == "__main__":
    main(sys.argv[1:])
