"""`trading-agent --config C` without --replay trades the live market of the config's exchange:
here the local simulator through --exchange-url, as an operator would run it. Real money needs
the config AND --live; testnet and live need credentials; each refusal is one line, exit 3, and
leaves no data folder behind."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.exchange_sim.server import ExchangeSim
from tests.exchange_sim.test_market_session import M15, _history

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = ROOT / "agent" / "default_config.json"


def _config(tmp_path: Path, **exchange) -> Path:
    raw = json.loads(DEFAULT.read_text())
    raw["exchange"].update(exchange)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(raw))
    return path


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EXCHANGE_", "TRADING_AGENT_"))}
    env.update(extra)
    return env


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agent", *args], capture_output=True, text=True,
                          timeout=120, cwd=ROOT, env=env or _env())


def test_a_real_money_config_is_refused_without_live_and_creates_nothing(tmp_path):
    cfg = _config(tmp_path, paper_trading=False, testnet=False)
    result = _run("--no-gui", "--config", str(cfg), "--data-dir", str(tmp_path / "d"))
    assert result.returncode == 3
    assert result.stderr.strip().splitlines()[-1].startswith("refused: the config trades REAL money")
    assert "--live" in result.stderr
    assert not (tmp_path / "d").exists()


def test_live_without_credentials_is_refused_naming_where_keys_were_looked_for(tmp_path):
    cfg = _config(tmp_path, paper_trading=False, testnet=False)
    result = _run("--no-gui", "--live", "--config", str(cfg), "--data-dir", str(tmp_path / "d"))
    assert result.returncode == 3
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("refused: live trading needs exchange credentials"), last
    assert "EXCHANGE_API_KEY" in last


def test_live_flag_on_a_paper_config_is_a_usage_error(tmp_path):
    cfg = _config(tmp_path, paper_trading=True)
    result = _run("--no-gui", "--live", "--config", str(cfg), "--data-dir", str(tmp_path / "d"))
    assert result.returncode == 2
    assert "--live confirms real-money trading" in result.stderr


def test_exchange_url_with_a_replay_is_a_usage_error(tmp_path, sample_csv):
    result = _run("--no-gui", "--replay", str(sample_csv), "--exchange-url", "http://127.0.0.1:9",
                  "--data-dir", str(tmp_path / "d"))
    assert result.returncode == 2 and "--exchange-url is for the live market" in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["paper", "testnet"])
async def test_headless_run_on_the_simulator_goes_live_and_stops_cleanly_on_sigterm(tmp_path, mode):
    now = int(time.time() * 1000)
    sim = ExchangeSim(symbol="BTC/USDT", price=30_000.0, balances={"USDT": 10_000.0})
    sim.load_history(_history(now - now % M15, 3_300))
    await sim.start()
    cfg = _config(tmp_path, paper_trading=mode == "paper", testnet=True)
    env = _env(EXCHANGE_API_KEY=sim.api_key, EXCHANGE_API_SECRET=sim.secret)
    data = tmp_path / "d"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agent", "--no-gui", "--config", str(cfg), "--data-dir", str(data),
        "--exchange-url", sim.url, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        price, running = 30_000.0, False
        for _ in range(300):                                 # up to ~60 s on a loaded machine
            price += 1.0
            sim.set_price(price)
            await asyncio.sleep(0.2)
            state = data / "state.json"
            if state.exists() and json.loads(state.read_text() or "{}").get("run_state") == "RUNNING":
                running = True
                break
            if proc.returncode is not None:
                break
        assert running, (await proc.stderr.read()).decode()[-3000:]
        for _ in range(10):                                  # a few live prints
            sim.set_price(price + 2)
            await asyncio.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await sim.stop()
    text = err.decode()
    assert proc.returncode == 0, text[-3000:]
    assert "done: STOPPED" in text
    assert f"{mode.upper()}" in text.upper()
    state = json.loads((data / "state.json").read_text())
    assert state["run_state"] == "STOPPED" and state["mode"] == mode
    assert sim.count("GET", "klines") >= 4                    # the warm-up came from the exchange
    assert sim.api_key not in text and sim.secret not in text


@pytest.mark.slow
async def test_testnet_with_a_key_the_exchange_rejects_is_refused_before_the_engine_starts(tmp_path):
    sim = ExchangeSim(symbol="BTC/USDT", price=30_000.0, balances={"USDT": 10_000.0})
    await sim.start()
    cfg = _config(tmp_path, paper_trading=False, testnet=True)
    wrong = "wrong-secret-c4n4ry-0123456789"
    env = _env(EXCHANGE_API_KEY=sim.api_key, EXCHANGE_API_SECRET=wrong)
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "agent", "--no-gui", "--config", str(cfg), "--data-dir",
            str(tmp_path / "d"), "--exchange-url", sim.url, cwd=ROOT, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        _, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        await sim.stop()
    text = err.decode()
    assert proc.returncode == 3, text[-2000:]
    assert text.strip().splitlines()[-1].startswith("refused:")
    assert wrong not in text
    assert sim.count("POST", "order") == 0
