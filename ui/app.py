"""`run_gui`: the desktop front end's entry point, called by the CLI.

One asyncio loop (qasync) drives the engine and the window. Closing the window, Ctrl+C and
SIGTERM all take the same path: the window's close handler stops the engine gracefully
(state persisted), then the loop ends and the exit code is returned."""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path
from collections.abc import Callable
from typing import TYPE_CHECKING

os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")   # before pyqtgraph is imported

import qasync  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from ui.main_window import APPLICATION, ORGANIZATION, MainWindow  # noqa: E402

if TYPE_CHECKING:
    from agent.engine import Engine

log = logging.getLogger(__name__)

# Debian/Ubuntu packages of the X11 (xcb) libraries PySide6's xcb platform plugin loads, by the
# library name ctypes looks for. Qt aborts the process (SIGABRT) when one is missing.
XCB_PACKAGES = {
    "xcb-cursor": "libxcb-cursor0", "xkbcommon-x11": "libxkbcommon-x11-0",
    "xcb-icccm": "libxcb-icccm4", "xcb-image": "libxcb-image0", "xcb-keysyms": "libxcb-keysyms1",
    "xcb-randr": "libxcb-randr0", "xcb-render-util": "libxcb-render-util0",
    "xcb-shape": "libxcb-shape0", "xcb-xinerama": "libxcb-xinerama0", "xcb-xkb": "libxcb-xkb1",
}
_HEADLESS_PLATFORMS = ("offscreen", "minimal", "vnc", "eglfs", "linuxfb")


def gui_unavailable_reason(env: dict[str, str] | None = None,
                           find_library: Callable[[str], str | None] | None = None) -> str | None:
    """Why the window cannot open on this machine (one line, with what to do), or None.
    Checked before any window is created: without a display or the xcb libraries Qt aborts
    the whole process instead of raising."""
    if not sys.platform.startswith("linux"):
        return None
    env = os.environ if env is None else env
    platform = env.get("QT_QPA_PLATFORM", "").split(":")[0]
    if platform in _HEADLESS_PLATFORMS:
        return None
    if platform.startswith("wayland") or (not platform and env.get("WAYLAND_DISPLAY")
                                         and not env.get("DISPLAY")):
        return None if env.get("WAYLAND_DISPLAY") else (
            "no Wayland display (WAYLAND_DISPLAY is not set): run headless with --no-gui")
    if not env.get("DISPLAY"):
        return "no display to open the window on (DISPLAY is not set): run headless with --no-gui"
    if find_library is None:
        import ctypes.util

        find_library = ctypes.util.find_library
    missing = [pkg for lib, pkg in XCB_PACKAGES.items() if find_library(lib) is None]
    if missing:
        return (f"the window needs X11 libraries that are not installed: sudo apt install "
                f"{' '.join(missing)} (Debian/Ubuntu), or run headless with --no-gui")
    return None


def run_gui(engine_factory: Callable[[], Engine], *, autostart: bool, services=(),
            config_path: Path | None = None) -> int:
    """Open the window over the engine `engine_factory()` builds (inside the running loop) and
    block until the operator closes it. With `autostart` the engine is started at once.
    Returns the process exit code (0, or 1 when the engine did not stop cleanly).
    `services`: factories (engine -> object with async start/stop) run beside the engine, the
    same alert services a headless run starts (agent.alert_bridge.headless_services)."""
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    app.setApplicationDisplayName("Trading Agent")
    app.setQuitOnLastWindowClosed(False)   # the loop, not Qt, decides when we are done
    if sys.version_info >= (3, 12):
        return asyncio.run(_main(engine_factory, autostart, services, config_path),
                           loop_factory=lambda: qasync.QEventLoop(app))
    loop = qasync.QEventLoop(app)          # Python 3.11: asyncio.run takes no loop_factory
    asyncio.set_event_loop(loop)
    with loop:
        return loop.run_until_complete(_main(engine_factory, autostart, services, config_path))


async def _main(engine_factory: Callable[[], Engine], autostart: bool, services=(),
                config_path: Path | None = None) -> int:
    engine = engine_factory()
    running = []
    for factory in services:                    # alerts and remote control, as headless
        service = factory(engine)
        await service.start()
        running.append(service)
    window = MainWindow(engine, config_path=config_path)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, window.shutdown_now)   # a signal does not ask
    try:
        window.show()
        if autostart:
            window.start_engine()
        return await window.wait_closed()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        for service in reversed(running):
            try:
                await asyncio.wait_for(service.stop(), 3.0)
            except Exception:
                logging.getLogger(__name__).exception("stopping %s failed", type(service).__name__)
