"""Issue 9, as an operator would try to break it: the ledger is never lost, the agent never acts
on the wrong data, and every failure is one line with the right exit code. Run as subprocesses
where the exit code and the console output are the behaviour."""
from __future__ import annotations

import csv
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import DEFAULT_CONFIG

ROOT = Path(__file__).resolve().parents[1]
AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def run(*args: str, timeout: int = 120, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agent", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env=env)


def one_line(result: subprocess.CompletedProcess) -> str:
    """The operator sees exactly one line on stderr, and no traceback anywhere."""
    assert "Traceback" not in result.stderr + result.stdout, result.stderr[-3000:]
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def replay(data: Path, csv_path: Path, *extra: str, config: Path | None = None) -> subprocess.CompletedProcess:
    args = ["--data-dir", str(data), "--no-gui", "--replay", str(csv_path), "--speed", "max",
            "--log-level", "ERROR"]
    if config is not None:
        args += ["--config", str(config)]
    return run(*args, *extra)


def write_config(path: Path, top: dict | None = None, **sections: dict) -> Path:
    raw = json.loads(DEFAULT_CONFIG.read_text())
    raw.update(top or {})
    for section, values in sections.items():
        raw[section].update(values)
    path.write_text(json.dumps(raw))
    return path


@pytest.fixture(scope="module")
def traded(tmp_path_factory, sample_csv) -> Path:
    """A data folder after a full replay of the sample: trades, bars, state.json."""
    data = tmp_path_factory.mktemp("traded") / "d"
    result = replay(data, sample_csv)
    assert result.returncode == 0, result.stderr[-2000:]
    return data


def copy_folder(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("agent.lock"))
    return dst


# ----- 1. export-trades never writes over the ledger ----------------------------------------

def test_export_into_the_data_folder_is_refused_and_the_ledger_untouched(traded, tmp_path):
    data = copy_folder(traded, tmp_path / "d")
    before = (data / "trades.db").read_bytes()
    for target in (data / "trades.db", data / "trades.csv", data / "logs" / "x.csv"):
        result = run("export-trades", "--data-dir", str(data), "--csv", str(target), "--force")
        assert result.returncode == 3, result.stderr
        assert "inside the data folder" in one_line(result)
    assert (data / "trades.db").read_bytes() == before
    assert not (data / "trades.csv").exists()


def test_export_over_an_existing_file_needs_force(traded, tmp_path):
    out = tmp_path / "trades.csv"
    out.write_text("keep me\n")
    result = run("export-trades", "--data-dir", str(traded), "--csv", str(out))
    assert result.returncode == 3 and "--force" in one_line(result)
    assert out.read_text() == "keep me\n"
    forced = run("export-trades", "--data-dir", str(traded), "--csv", str(out), "--force")
    assert forced.returncode == 0, forced.stderr
    assert len(list(csv.DictReader(out.open()))) >= 4


@pytest.mark.parametrize("target", ["/nonexistent/x.csv", "DIR"])
def test_export_to_a_missing_folder_or_a_folder_is_one_line_exit_2(traded, tmp_path, target):
    out = str(tmp_path) if target == "DIR" else target
    result = run("export-trades", "--data-dir", str(traded), "--csv", out)
    assert result.returncode == 2
    one_line(result)


# ----- 2. integrity of the ledger at start ----------------------------------------------------

def test_a_zero_byte_ledger_beside_a_state_json_with_history_is_refused_and_nothing_rewritten(traded, tmp_path, sample_csv):
    data = copy_folder(traded, tmp_path / "d")
    (data / "trades.db").write_bytes(b"")
    for f in ("trades.db-wal", "trades.db-shm"):
        (data / f).unlink(missing_ok=True)
    state_before = (data / "state.json").read_bytes()
    result = replay(data, sample_csv)
    assert result.returncode == 3, result.stderr[-2000:]
    line = one_line(result)
    assert "trades.db" in line and "state.json" in line
    assert (data / "trades.db").read_bytes() == b"", "the empty ledger is not migrated"
    assert (data / "state.json").read_bytes() == state_before


def test_a_ledger_older_than_state_json_is_refused(traded, tmp_path, sample_csv):
    data = copy_folder(traded, tmp_path / "d")
    state = json.loads((data / "state.json").read_text())
    state["last_bar"] = "2099-01-01T00:00:00Z"       # as if trades.db were restored from an old copy
    (data / "state.json").write_text(json.dumps(state))
    result = replay(data, sample_csv)
    assert result.returncode == 3
    line = one_line(result)
    assert "older than state.json" in line and "2099-01-01" in line


def _damage(db: Path) -> None:
    size = db.stat().st_size
    with open(db, "r+b") as fh:
        fh.seek(size // 2)
        fh.write(bytes(range(256)) * 16 * 8)


def test_a_damaged_ledger_is_noticed_by_status_and_export_without_changing_anything(traded, tmp_path):
    data = copy_folder(traded, tmp_path / "d")
    _damage(data / "trades.db")
    names = sorted(p.name for p in data.iterdir())
    for args in (("status",), ("export-trades", "--csv", str(tmp_path / "out.csv"))):
        result = run(*args, "--data-dir", str(data))
        assert result.returncode == 3, result.stderr
        assert "damaged" in one_line(result)
    assert sorted(p.name for p in data.iterdir()) == names
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.parametrize("damage", ["pages", "truncated", "random"])
def test_a_damaged_ledger_is_set_aside_and_the_run_refused(traded, tmp_path, sample_csv, damage):
    data = copy_folder(traded, tmp_path / "d")
    db = data / "trades.db"
    if damage == "pages":
        _damage(db)
    elif damage == "truncated":
        db.write_bytes(db.read_bytes()[: db.stat().st_size // 2])
    else:
        db.write_bytes(os.urandom(64 * 1024))
    original = db.read_bytes()
    result = replay(data, sample_csv)
    assert result.returncode == 3, result.stderr[-2000:]
    line = one_line(result)
    assert "set aside" in line
    moved = [p for p in data.iterdir() if p.name.startswith("trades.db.corrupt-")]
    assert len(moved) == 1 and moved[0].read_bytes() == original
    assert not db.exists(), "no fresh ledger is started behind the operator's back"


# ----- 3. one data folder, one pair, timeframe and mode --------------------------------------

def test_a_folder_refuses_a_config_for_another_pair_naming_both(traded, tmp_path, sample_csv):
    data = copy_folder(traded, tmp_path / "d")
    eth = write_config(tmp_path / "eth.json", exchange={"trading_pair": "ETH/USDT", "base_currency": "ETH"})
    before = (data / "trades.db").read_bytes()
    result = replay(data, sample_csv, config=eth)
    assert result.returncode == 3, result.stderr[-2000:]
    line = one_line(result)
    assert "BTC/USDT" in line and "ETH/USDT" in line
    assert (data / "trades.db").read_bytes() == before


def test_a_folder_refuses_another_timeframe(traded, tmp_path, sample_csv):
    data = copy_folder(traded, tmp_path / "d")
    cfg = write_config(tmp_path / "5m.json", {"timeframe": "5m"})
    result = replay(data, sample_csv, config=cfg)
    assert result.returncode == 3
    assert "15m" in one_line(result) and "5m" in one_line(result)


def test_a_pre_schema_3_folder_is_judged_by_its_state_json(traded, tmp_path, sample_csv):
    data = copy_folder(traded, tmp_path / "d")
    with sqlite3.connect(data / "trades.db") as conn:      # as an older agent left it
        conn.execute("DROP TABLE identity")
        conn.execute("PRAGMA user_version = 2")
    eth = write_config(tmp_path / "eth.json", exchange={"trading_pair": "ETH/USDT", "base_currency": "ETH"})
    result = replay(data, sample_csv, config=eth)
    assert result.returncode == 3 and "BTC/USDT" in one_line(result)
