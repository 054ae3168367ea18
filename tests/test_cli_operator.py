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
        conn.execute("DROP TABLE link_checks")           # schema 4
        conn.execute("DROP TABLE identity")
        conn.execute("PRAGMA user_version = 2")
    eth = write_config(tmp_path / "eth.json", exchange={"trading_pair": "ETH/USDT", "base_currency": "ETH"})
    result = replay(data, sample_csv, config=eth)
    assert result.returncode == 3 and "BTC/USDT" in one_line(result)


# ----- 4. an older CSV replayed into a folder changes nothing -------------------------------

def test_replaying_an_older_csv_into_a_folder_does_not_change_equity(traded, tmp_path, sample_csv):
    data = copy_folder(traded, tmp_path / "d")
    lines = sample_csv.read_text().splitlines()
    older = tmp_path / "older.csv"
    older.write_text("\n".join(lines[: len(lines) // 2]) + "\n")
    before = json.loads((data / "state.json").read_text())
    result = replay(data, older)
    assert result.returncode == 0, result.stderr[-2000:]
    after = json.loads((data / "state.json").read_text())
    for key in ("balance", "equity", "last_bar", "open_position"):
        assert after[key] == before[key], key


# ----- 5. start-up failures end the run at once ---------------------------------------------

def test_state_json_that_is_a_folder_fails_the_start_at_once_with_exit_1(traded, tmp_path, sample_csv):
    data = copy_folder(traded, tmp_path / "d")
    (data / "state.json").unlink()
    (data / "state.json").mkdir()
    result = replay(data, sample_csv)
    assert result.returncode == 1
    assert "state.json" in one_line(result)


def test_an_engine_that_fails_to_start_ends_the_headless_run_with_exit_1(tmp_path, sample_csv, capsys):
    import asyncio

    from agent.headless import run_headless
    from agent.session import replay_session
    from tests.conftest import make_config

    def make_engine():
        engine = replay_session(make_config(), tmp_path / "d", sample_csv, None)

        async def broken_rules():
            raise RuntimeError("venue unreachable")
        engine.venue.market_rules = broken_rules
        return engine

    code = asyncio.run(asyncio.wait_for(run_headless(make_engine), timeout=30))
    assert code == 1
    assert "venue unreachable" in capsys.readouterr().err


def test_a_run_that_ends_halted_exits_3_and_its_summary_matches_state_json(traded, tmp_path, sample_csv):
    data = copy_folder(traded, tmp_path / "d")
    (data / "state.json").write_text("{ truncated")            # set aside, halts until cleared
    result = run("--data-dir", str(data), "--no-gui", "--replay", str(sample_csv), "--speed", "max")
    assert result.returncode == 3, result.stderr[-2000:]
    state = json.loads((data / "state.json").read_text())
    assert state["run_state"] == "HALTED"
    assert "done: HALTED" in result.stderr
    cleared = run("clear-halt", "--data-dir", str(data))
    assert cleared.returncode == 0 and "halt cleared" in cleared.stdout, cleared.stderr
    state = json.loads((data / "state.json").read_text())
    assert state["run_state"] == "STOPPED" and state["halt_reason"] is None
    status = run("status", "--data-dir", str(data))
    assert "halted: no" in status.stdout
    again = replay(data, sample_csv)
    assert again.returncode == 0, again.stderr[-2000:]


def test_a_finished_run_says_stopped_like_state_json(tmp_path, sample_csv):
    data = tmp_path / "d"
    result = run("--data-dir", str(data), "--no-gui", "--replay", str(sample_csv), "--speed", "max")
    assert result.returncode == 0
    assert "done: STOPPED" in result.stderr
    assert json.loads((data / "state.json").read_text())["run_state"] == "STOPPED"
    assert "new data folder" in result.stderr


# ----- one line, right exit code ------------------------------------------------------------

def test_a_data_dir_that_is_a_regular_file_is_one_line_exit_2(tmp_path, sample_csv):
    f = tmp_path / "file"
    f.write_text("x")
    result = replay(f, sample_csv)
    assert result.returncode == 2 and "is a file" in one_line(result)


def test_a_data_dir_under_a_file_is_one_line_exit_2_and_creates_nothing(tmp_path, sample_csv):
    f = tmp_path / "file"
    f.write_text("x")
    result = replay(f / "sub", sample_csv)
    assert result.returncode == 2
    one_line(result)
    assert f.read_text() == "x"


@pytest.mark.skipif(AS_ROOT, reason="root ignores directory permissions")
def test_a_read_only_data_folder_refuses_a_run_but_status_and_export_work(traded, tmp_path, sample_csv):
    data = copy_folder(traded, tmp_path / "d")
    for f in data.iterdir():
        if f.name.endswith(("-wal", "-shm")):
            f.unlink()
    os.chmod(data, 0o500)
    try:
        result = replay(data, sample_csv)
        assert result.returncode == 2 and "not writable" in one_line(result)
        assert run("status", "--data-dir", str(data)).returncode == 0
        out = tmp_path / "out.csv"
        assert run("export-trades", "--data-dir", str(data), "--csv", str(out)).returncode == 0
        cleared = run("clear-halt", "--data-dir", str(data))
        assert cleared.returncode == 3
        one_line(cleared)
    finally:
        os.chmod(data, 0o700)


def test_clear_halt_on_a_folder_it_cannot_write_is_one_line_exit_3(traded, tmp_path, monkeypatch, capsys):
    from agent import cli
    from persistence import paths

    def denied(self):
        raise PermissionError(13, "Permission denied", str(self.path))
    monkeypatch.setattr(paths.DataDirLock, "acquire", denied)
    assert cli.main(["clear-halt", "--data-dir", str(traded)]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "read-only" in err[0]


@pytest.mark.parametrize("speed", ["inf", "nan", "-1", "=-inf"])
def test_a_bad_speed_is_one_line_exit_2_and_creates_no_folder(tmp_path, sample_csv, speed):
    args = ("--speed" + speed,) if speed.startswith("=") else ("--speed", speed)
    result = replay(tmp_path / "d", sample_csv, *args)
    assert result.returncode == 2 and "--speed" in one_line(result)
    assert not (tmp_path / "d").exists()


def test_refused_runs_create_no_data_folder(tmp_path, sample_csv):
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    assert replay(tmp_path / "a", sample_csv, config=bad).returncode == 2
    real_money = tmp_path / "live.json"
    raw = json.loads((ROOT / "config.json").read_text())
    raw["exchange"].update(paper_trading=False, testnet=False)
    real_money.write_text(json.dumps(raw))
    live = run("--data-dir", str(tmp_path / "b"), "--no-gui", "--config", str(real_money))
    assert live.returncode == 3 and "--live" in one_line(live)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_an_unreachable_exchange_ends_the_live_run_with_one_line_and_exit_1(tmp_path):
    result = run("--data-dir", str(tmp_path / "d"), "--no-gui", "--exchange-url", "http://127.0.0.1:9")
    assert result.returncode == 1
    line = result.stderr.strip().splitlines()[-1]           # after the run's own log lines
    assert line.startswith("error: market data lost: warm-up failed") and "127.0.0.1:9" in line
    assert "Traceback" not in result.stderr


def test_validate_config_into_a_closed_pipe_prints_no_traceback(tmp_path):
    shell = f"{sys.executable} -m agent validate-config {ROOT / 'config.json'} | head -1"
    result = subprocess.run(["bash", "-o", "pipefail", "-c", shell], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.stdout.startswith("valid:")
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr
    assert result.returncode == 0


def test_a_reader_that_closes_the_pipe_is_not_an_error(monkeypatch, capsys):
    from agent import cli

    class ClosedPipe:
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert cli.main(["validate-config", str(ROOT / "config.json")]) == 0
    assert capsys.readouterr().err == ""


def test_help_lists_the_commands_and_an_unknown_one_is_named(tmp_path):
    help_text = run("--help").stdout
    for name in ("demo", "validate-config", "export-trades", "status", "clear-halt"):
        assert name in help_text
    unknown = run("exprot-trades")
    assert unknown.returncode == 2
    line = one_line(unknown)
    assert "unknown command 'exprot-trades'" in line and "export-trades" in line


# ----- floods, leftovers, permissions -------------------------------------------------------

def test_a_csv_of_mostly_garbage_is_refused_with_a_few_lines_and_counts(tmp_path, sample_csv):
    lines = sample_csv.read_text().splitlines()
    flood = tmp_path / "flood.csv"
    garbage = "\n".join(f"garbage{i},x,y,z,w,v" for i in range(100_000))
    flood.write_text("\n".join(lines[:50]) + "\n" + garbage + "\n")
    assert flood.stat().st_size > 1_000_000
    result = run("--data-dir", str(tmp_path / "d"), "--no-gui", "--replay", str(flood), "--speed", "max")
    assert result.returncode == 2, result.stderr[-2000:]
    assert "most of the file is bad" in result.stderr
    assert result.stderr.count("rejected:") <= 5
    assert "100000 rows rejected in all" in result.stderr
    assert len(result.stderr.splitlines()) < 20
    assert not (tmp_path / "d").exists(), "refused before the data folder is made"


def test_demo_removes_its_temporary_folder(tmp_path):
    env = dict(os.environ, TMPDIR=str(tmp_path))
    result = run("demo", "--no-gui", "--speed", "max", env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert list(tmp_path.iterdir()) == []


def test_the_data_folder_is_owner_only(tmp_path, sample_csv):
    data = tmp_path / "d"
    assert replay(data, sample_csv).returncode == 0
    assert data.stat().st_mode & 0o777 == 0o700
    for name in ("trades.db", "state.json", "agent.lock", "logs/agent.log", "logs/agent.jsonl"):
        assert (data / name).stat().st_mode & 0o777 == 0o600, name


def test_no_display_is_one_line_suggesting_no_gui(tmp_path):
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    result = run("demo", "--data-dir", str(tmp_path / "d"), env=env)
    assert result.returncode == 2 and "--no-gui" in one_line(result)
    assert not (tmp_path / "d").exists()


def test_missing_xcb_libraries_are_named_as_packages():
    from ui.app import gui_unavailable_reason

    reason = gui_unavailable_reason({"DISPLAY": ":0"}, lambda lib: None if lib == "xcb-cursor" else "x")
    assert "libxcb-cursor0" in reason and "apt" in reason
    assert gui_unavailable_reason({"DISPLAY": ":0"}, lambda lib: "x") is None
    assert gui_unavailable_reason({"QT_QPA_PLATFORM": "offscreen"}) is None
