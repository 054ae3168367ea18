"""Invariant: a replay killed with SIGKILL at any instant and restarted with the same data folder
ends with exactly the trades (and signal rows) of an uninterrupted run."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import ACTIVE, DEFAULT_CONFIG

ROOT = Path(__file__).resolve().parents[1]
# Trade columns that must be identical; created_at/updated_at are wall-clock bookkeeping.
VOLATILE = {"id", "created_at", "updated_at"}


def _config_file(tmp_path: Path) -> Path:
    raw = json.loads(DEFAULT_CONFIG.read_text())
    for section, values in ACTIVE.items():
        raw[section].update(values)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(raw))
    return path


def _command(cfg: Path, data_dir: Path, csv: Path, speed: str) -> list[str]:
    return [sys.executable, "-m", "agent", "--config", str(cfg), "--data-dir", str(data_dir), "--no-gui",
            "--replay", str(csv), "--speed", speed, "--log-level", "WARNING"]


def _rows(data_dir: Path, sql: str) -> list[dict]:
    with sqlite3.connect(data_dir / "trades.db") as con:
        cur = con.execute(sql)
        names = [c[0] for c in cur.description]
        return [{k: v for k, v in zip(names, row) if k not in VOLATILE} for row in cur]


@pytest.mark.slow
def test_replay_killed_at_several_points_ends_with_the_trades_of_an_uninterrupted_run(tmp_path, sample_csv):
    cfg = _config_file(tmp_path)
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    subprocess.run(_command(cfg, whole, sample_csv, "max"), check=True, cwd=ROOT, timeout=120)

    kills = 0
    for delay in (1.0, 1.4, 1.8, 2.2, 2.6):
        proc = subprocess.Popen(_command(cfg, killed, sample_csv, "600"), cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait(timeout=30)
    subprocess.run(_command(cfg, killed, sample_csv, "max"), check=True, cwd=ROOT, timeout=120)

    assert kills >= 3, "the replay finished before it could be killed: slow it down"
    expected = _rows(whole, "SELECT * FROM trades ORDER BY signal_timestamp")
    assert len(expected) >= 10
    assert _rows(killed, "SELECT * FROM trades ORDER BY signal_timestamp") == expected
    signals = "SELECT bar_timestamp, action, reason FROM signals ORDER BY bar_timestamp"
    assert _rows(killed, signals) == _rows(whole, signals)
    with sqlite3.connect(killed / "trades.db") as con:
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
