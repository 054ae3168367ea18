"""The operator's commands, run as the operator runs them: a subprocess, exit codes and output."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import DEFAULT_CONFIG

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agent", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def test_validate_config_prints_a_summary_and_exits_0_for_the_example():
    result = run("validate-config", str(ROOT / "config.json"))
    assert result.returncode == 0, result.stderr
    assert "BTC/USDT" in result.stdout or "/USDT" in result.stdout
    assert "paper" in result.stdout.lower()


def test_validate_config_names_the_bad_field_and_exits_2(tmp_path):
    raw = json.loads(DEFAULT_CONFIG.read_text())
    raw["backtest_params"]["fib_target_level"] = 0.236
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(raw))
    result = run("validate-config", str(bad))
    assert result.returncode == 2
    assert "fib_target_level" in result.stderr and "0.618" in result.stderr
    assert "Traceback" not in result.stderr


def test_invalid_json_is_reported_with_line_and_column(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "version": "2.1.0",\n  oops\n}')
    result = run("validate-config", str(bad))
    assert result.returncode == 2 and "line 3" in result.stderr


def test_a_run_with_a_bad_config_exits_2_without_a_traceback(tmp_path, sample_csv):
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    result = run("--config", str(bad), "--data-dir", str(tmp_path / "d"), "--no-gui", "--replay",
                 str(sample_csv))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert not (tmp_path / "d" / "trades.db").exists(), "nothing is written for a refused config"


def test_headless_replay_exits_0_and_leaves_store_state_logs_and_exportable_trades(tmp_path, sample_csv):
    data = tmp_path / "d"
    result = run("--config", str(ROOT / "config.json"), "--data-dir", str(data), "--no-gui",
                 "--replay", str(sample_csv), "--speed", "max")
    assert result.returncode == 0, result.stderr[-2000:]
    assert (data / "trades.db").exists() and (data / "state.json").exists()
    assert (data / "logs" / "agent.log").stat().st_size > 0
    assert (data / "logs" / "agent.jsonl").stat().st_size > 0
    out = tmp_path / "trades.csv"
    exported = run("export-trades", "--data-dir", str(data), "--csv", str(out))
    assert exported.returncode == 0, exported.stderr
    rows = list(csv.DictReader(out.open()))
    assert len(rows) >= 4 and rows[0]["exit_reason"].startswith("FIB_61.8")
    status = run("status", "--data-dir", str(data))
    assert status.returncode == 0 and "trades:" in status.stdout


def test_replay_rejects_bad_bars_with_a_logged_reason_and_still_runs(tmp_path, sample_csv):
    lines = sample_csv.read_text().splitlines()
    lines.insert(5, lines[5])                                   # a duplicate timestamp
    bad_row = lines[10].split(",")
    bad_row[2] = str(float(bad_row[3]) - 1)                     # high below low
    lines[10] = ",".join(bad_row)
    damaged = tmp_path / "damaged.csv"
    damaged.write_text("\n".join(lines) + "\n")
    result = run("--data-dir", str(tmp_path / "d"), "--no-gui", "--replay", str(damaged), "--speed", "max")
    assert result.returncode == 0, result.stderr[-2000:]
    log_text = (tmp_path / "d" / "logs" / "agent.log").read_text()
    assert "duplicate" in log_text.lower() and "high" in log_text.lower()


def test_headless_replay_imports_neither_qt_nor_ccxt(tmp_path, sample_csv):
    probe = ("import sys, agent.cli as c; "
             f"rc = c.main(['--data-dir', r'{tmp_path / 'd'}', '--no-gui', '--replay', r'{sample_csv}', "
             "'--speed', 'max', '--log-level', 'ERROR']); "
             "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'pyqtgraph', 'qasync', 'ccxt')); "
             "print('LOADED', bad); sys.exit(rc)")
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "LOADED []" in result.stdout


def test_a_missing_replay_file_is_a_clear_error(tmp_path):
    result = run("--data-dir", str(tmp_path), "--no-gui", "--replay", str(tmp_path / "nope.csv"))
    assert result.returncode == 2 and "nope.csv" in result.stderr


@pytest.mark.parametrize("speed", ["0", "-3", "fast"])
def test_a_bad_speed_is_refused(tmp_path, sample_csv, speed):
    result = run("--data-dir", str(tmp_path), "--no-gui", "--replay", str(sample_csv), "--speed", speed)
    assert result.returncode == 2 and "--speed" in result.stderr


def test_demo_headless_runs_to_the_end_of_the_synthetic_sample_and_exits_0(tmp_path):
    result = run("demo", "--no-gui", "--speed", "max", "--data-dir", str(tmp_path / "demo"))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "SYNTHETIC" in result.stderr
    assert "closed trades" in result.stderr


def test_status_with_the_bars_prints_the_live_vs_backtest_review(tmp_path, sample_csv):
    data = tmp_path / "d"
    assert run("--data-dir", str(data), "--no-gui", "--replay", str(sample_csv), "--speed", "max").returncode == 0
    plain = run("status", "--data-dir", str(data))
    assert plain.returncode == 0 and "live vs backtest" not in plain.stdout
    result = run("status", "--data-dir", str(data), "--bars", str(sample_csv), "--config", str(DEFAULT_CONFIG))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    review = lines[lines.index(next(ln for ln in lines if ln.startswith("live vs backtest"))) + 1:]
    overall = review[0]
    closed = next(int(ln.split()[1].rstrip(",")) for ln in lines if ln.startswith("trades:"))
    assert overall.strip().startswith("all bars") and f"agent {closed} trades" in overall
    assert "backtest" in overall and any(word in overall for word in ("normal", "watch", "ALERT"))
    assert sum(1 for ln in review if ln.strip().startswith("month")) >= 2
    missing = run("status", "--data-dir", str(data), "--bars", str(tmp_path / "nope.csv"),
                  "--config", str(DEFAULT_CONFIG))
    assert missing.returncode == 2 and "bars file not found" in missing.stderr
