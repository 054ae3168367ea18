"""Headless under systemd: the notify protocol over a real AF_UNIX datagram socket, signals,
HALTED across restarts, and `systemd-analyze verify` on the shipped units."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from monitoring.systemd import SdNotifier, socket_address

ROOT = Path(__file__).resolve().parents[1]
UNITS = ("trading-agent.service", "trading-agent@.service")


@pytest.fixture
def notify_socket():
    folder = tempfile.mkdtemp(prefix="sdn", dir="/tmp")          # AF_UNIX paths must be short
    path = os.path.join(folder, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.2)
    yield sock, path
    sock.close()
    shutil.rmtree(folder, ignore_errors=True)


def receive(sock, until, timeout_s: float, messages: list[str]) -> list[str]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            messages.append(sock.recv(4096).decode())
        except TimeoutError:
            continue
        if until(messages):
            return messages
    raise AssertionError(f"timed out; got {messages[-10:]}")


def start_agent(data_dir: Path, csv: Path, notify_path: str, *extra: str, watchdog_usec: int = 300_000,
                speed: str = "20") -> subprocess.Popen:
    env = dict(os.environ, NOTIFY_SOCKET=notify_path, WATCHDOG_USEC=str(watchdog_usec))
    env.pop("WATCHDOG_PID", None)
    return subprocess.Popen([sys.executable, "-m", "agent", "--no-gui", "--replay", str(csv), "--speed", speed,
                             "--data-dir", str(data_dir), *extra], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def short_csv(tmp_path_factory) -> Path:
    from data.sample import generate_sample, write_csv

    path = tmp_path_factory.mktemp("short") / "bars_15m.csv"
    write_csv(generate_sample(n_bars=3000), path)
    return path


def test_notifier_sends_to_a_path_and_an_abstract_socket(notify_socket):
    sock, path = notify_socket
    n = SdNotifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000"})
    assert n.enabled and n.watchdog_interval_s == 1.0
    assert n.ready("RUNNING PAPER | flat | today +0.00 USDT")
    msg = sock.recv(4096).decode().split("\n")
    assert msg[0] == "READY=1" and msg[1] == "STATUS=RUNNING PAPER | flat | today +0.00 USDT"
    assert n.status("same") and not n.status("same")            # unchanged lines are not resent
    assert socket_address("@abc") == b"\0abc"
    name = f"trading-agent-test-{os.getpid()}"
    abstract = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    abstract.bind(b"\0" + name.encode())
    abstract.settimeout(2)
    try:
        assert SdNotifier({"NOTIFY_SOCKET": "@" + name}).watchdog()
        assert abstract.recv(100) == b"WATCHDOG=1"
    finally:
        abstract.close()


def test_notifier_is_silent_outside_systemd_and_never_raises(tmp_path):
    assert not SdNotifier({}).enabled and not SdNotifier({}).notify("READY=1")
    gone = SdNotifier({"NOTIFY_SOCKET": str(tmp_path / "nobody")})
    assert gone.enabled and gone.notify("READY=1") is False
    assert SdNotifier({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "100", "WATCHDOG_PID": "1"}).watchdog_interval_s is None


def test_headless_agent_speaks_sd_notify_and_stops_cleanly_on_sigterm(tmp_path, short_csv, notify_socket):
    sock, path = notify_socket
    data = tmp_path / "data"
    proc = start_agent(data, short_csv, path)
    try:
        messages: list[str] = []
        receive(sock, lambda m: any("READY=1" in x for x in m), 60, messages)
        ready = next(x for x in messages if "READY=1" in x)
        assert "STATUS=RUNNING PAPER | flat | today" in ready
        assert not any("WATCHDOG=1" in x for x in messages[:messages.index(ready)])
        assert (data / "state.json").exists()           # the engine ran before READY
        receive(sock, lambda m: sum("WATCHDOG=1" in x for x in m) >= 3, 10, messages)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        receive(sock, lambda m: any("STOPPING=1" in x for x in m), 10, messages)
        out, err = proc.communicate(timeout=10)
        assert time.monotonic() - t0 < 10
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-2000:]
    assert "SIGTERM received" in err
    state = json.loads((data / "state.json").read_text())
    assert state["run_state"] == "STOPPED" and state["last_bar"] is not None


def _halt(data_dir: Path, csv: Path) -> None:
    """An emergency stop through the real engine, then a normal shutdown."""
    import asyncio

    from agent.config import default_config
    from agent.session import replay_session

    async def go():
        engine = replay_session(default_config(), data_dir, csv, None)
        await engine.start()
        await engine.emergency_stop()
        await engine.stop()

    asyncio.run(go())


def test_a_halted_agent_restarts_halted_stays_up_and_exits_3_on_stop(tmp_path, short_csv, notify_socket):
    sock, path = notify_socket
    data = tmp_path / "data"
    _halt(data, short_csv)
    proc = start_agent(data, short_csv, path, speed="5")
    try:
        messages: list[str] = []
        receive(sock, lambda m: any("READY=1" in x for x in m), 60, messages)
        ready = next(x for x in messages if "READY=1" in x)
        assert "STATUS=HALTED PAPER" in ready and "emergency stop" in ready
        time.sleep(1.0)
        assert proc.poll() is None                       # stays up, halted, watching
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 3, err[-2000:]
    assert json.loads((data / "state.json").read_text())["run_state"] == "HALTED"
    assert "HALTED" in err


DRIVER = """
import asyncio, sys
from agent.engine import Engine
async def never(self):
    await asyncio.sleep(3600)
Engine.stop = never
from agent.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_second_signal_forces_the_exit(tmp_path, short_csv, notify_socket):
    sock, path = notify_socket
    env = dict(os.environ, NOTIFY_SOCKET=path)
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, "--no-gui", "--replay", str(short_csv), "--speed", "5",
                             "--data-dir", str(tmp_path / "d")], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        messages: list[str] = []
        receive(sock, lambda m: any("READY=1" in x for x in m), 60, messages)
        proc.send_signal(signal.SIGTERM)
        receive(sock, lambda m: any("STOPPING=1" in x for x in m), 10, messages)
        time.sleep(0.5)
        assert proc.poll() is None                       # the (hung) graceful stop is under way
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=5)
        assert time.monotonic() - t0 < 3
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130 and "forced exit" in err


# ----- the unit files --------------------------------------------------------------------------
def _unit(name: str) -> dict[str, list[str]]:
    entries: dict[str, list[str]] = {}
    for line in (ROOT / "deploy" / name).read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            entries.setdefault(key, []).append(value)
    return entries


@pytest.mark.parametrize("name", UNITS)
def test_units_are_notify_watchdog_hardened_and_write_only_the_data_folder(name):
    u = _unit(name)
    assert u["Type"] == ["notify"] and u["Restart"] == ["on-failure"] and u["WatchdogSec"]
    assert u["User"] == ["trading-agent"] and u["NoNewPrivileges"] == ["yes"]
    assert u["ProtectSystem"] == ["strict"] and u["PrivateTmp"] == ["yes"] and u["ProtectHome"] == ["yes"]
    data_dir = u["ExecStart"][0].split("--data-dir ", 1)[1].split()[0]
    assert u["ReadWritePaths"] == [data_dir]
    assert "--no-gui" in u["ExecStart"][0] and int(u["TimeoutStopSec"][0]) > 10
    assert ("%i" in data_dir) == (name == "trading-agent@.service")


def test_systemd_analyze_verify_accepts_the_units(tmp_path):
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed")
    exe = ROOT / ".venv" / "bin" / "trading-agent"
    exe = exe if exe.exists() else Path(shutil.which("trading-agent") or sys.executable)
    for name in UNITS:
        text = (ROOT / "deploy" / name).read_text().replace("/opt/trading-agent/.venv/bin/trading-agent", str(exe))
        (tmp_path / name).write_text(text)
    shutil.copy(tmp_path / "trading-agent@.service", tmp_path / "trading-agent@fleet1.service")
    result = subprocess.run([tool, "verify", str(tmp_path / "trading-agent.service"),
                             str(tmp_path / "trading-agent@fleet1.service")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "trading-agent" not in result.stderr, result.stderr
    # and it does reject a broken unit, so the check is real
    (tmp_path / "broken.service").write_text(text.replace("Type=notify", "Type=bogus"))
    bad = subprocess.run([tool, "verify", str(tmp_path / "broken.service")], capture_output=True, text=True,
                         timeout=120)
    assert "bogus" in bad.stderr
