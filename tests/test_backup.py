"""Backups taken while the agent runs open and pass integrity_check."""
from __future__ import annotations

import asyncio
import json
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from persistence.backup import BackupError, backup

from .conftest import ACTIVE, make_config

ROOT = Path(__file__).resolve().parents[1]


async def test_a_backup_taken_mid_run_opens_and_passes_integrity_check(tmp_path, sample_csv):
    from agent.session import replay_session

    data = tmp_path / "data"
    engine = replay_session(make_config(**ACTIVE), data, sample_csv, 400.0)
    await engine.start()
    try:
        while engine.store.stats(engine.clock.now_ms()).total_trades < 2:
            await asyncio.sleep(0.05)
        # the backup runs in another process while this engine keeps writing
        target = tmp_path / "backup1"
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "agent", "backup", "--data-dir", str(data), "--to", str(target),
            cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
        running = engine.run_state
        progressed_from = engine.status().last_bar_ts
        await asyncio.sleep(0.3)
        assert engine.status().last_bar_ts != progressed_from      # it was really running
    finally:
        await engine.stop()
    assert proc.returncode == 0, err.decode()
    assert running == "RUNNING"
    assert "integrity_check: ok" in out.decode()
    assert sorted(p.name for p in target.iterdir()) == ["paper_venue.db", "state.json", "trades.db"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in target.iterdir())
    conn = sqlite3.connect(target / "trades.db")
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        copied = conn.execute("SELECT count(*) FROM trades WHERE status = 'closed'").fetchone()[0]
    finally:
        conn.close()
    assert copied >= 2
    json.loads((target / "state.json").read_text())


def test_backup_refuses_a_non_empty_target_and_a_folder_without_a_ledger(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(BackupError, match="no trades.db"):
        backup(tmp_path / "empty", tmp_path / "b")
    data = tmp_path / "data"
    data.mkdir()
    sqlite3.connect(data / "trades.db").close()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(BackupError, match="not an empty folder"):
        backup(data, tmp_path / "full")
    with pytest.raises(BackupError, match="outside the data folder"):
        backup(data, data / "b")
    result = subprocess.run([sys.executable, "-m", "agent", "backup", "--data-dir", str(data), "--to",
                             str(tmp_path / "full")], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "not an empty folder" in result.stderr
