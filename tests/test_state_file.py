"""state.json (atomic write, corrupt files set aside and reported) and the data folder."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from persistence import state_file
from persistence.paths import DataDir, default_data_dir
from persistence.state_file import StateFileCorrupt, StateFileError, read_state, write_state

STATE = {"run_state": "HALTED", "halt_reason": "daily loss limit", "balance": 1000.5,
         "position": {"amount": 0.5, "entry_price": 100.25}, "last_bar_ts": 1754051400000}


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state.json"


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name != "state.json")


# --- write ------------------------------------------------------------------------------------

def test_missing_state_file_reads_as_none(path: Path) -> None:
    assert read_state(path) is None


def test_written_state_reads_back_equal(path: Path) -> None:
    write_state(path, STATE)
    assert read_state(path) == STATE


def test_state_is_human_readable_json_with_sorted_keys(path: Path) -> None:
    write_state(path, {"b": 1, "a": {"d": 2, "c": 3}})
    assert path.read_text(encoding="utf-8") == '{\n  "a": {\n    "c": 3,\n    "d": 2\n  },\n  "b": 1\n}\n'


def test_write_replaces_the_previous_state(path: Path) -> None:
    write_state(path, STATE)
    write_state(path, {"run_state": "RUNNING"})
    assert read_state(path) == {"run_state": "RUNNING"}


def test_write_leaves_no_temporary_file(path: Path) -> None:
    write_state(path, STATE)
    write_state(path, STATE)
    assert leftovers(path.parent) == []


@pytest.fixture
def fsyncs(monkeypatch) -> list[str]:
    """Records each os.fsync as 'file' or 'dir' (Linux /proc tells the descriptors apart)."""
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc to tell a directory descriptor from a file's")
    synced: list[str] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        synced.append("dir" if os.path.isdir(f"/proc/self/fd/{fd}") else "file")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    return synced


def test_write_fsyncs_the_file_then_its_directory(path: Path, fsyncs: list[str]) -> None:
    write_state(path, STATE)
    assert fsyncs == ["file", "dir"]


def test_failed_rename_keeps_the_previous_state(path: Path, monkeypatch) -> None:
    write_state(path, STATE)

    def crash(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="No space left"):
        write_state(path, {"run_state": "RUNNING"})
    monkeypatch.undo()
    assert read_state(path) == STATE and leftovers(path.parent) == []


def test_unserialisable_state_is_refused_and_the_old_file_kept(path: Path) -> None:
    write_state(path, STATE)
    with pytest.raises(StateFileError, match="not JSON-serialisable"):
        write_state(path, {"when": object()})
    assert read_state(path) == STATE and leftovers(path.parent) == []


def test_nan_is_refused_rather_than_written_as_invalid_json(path: Path) -> None:
    with pytest.raises(StateFileError, match="not JSON-serialisable"):
        write_state(path, {"balance": float("nan")})
    assert not path.exists()


# --- corrupt files ----------------------------------------------------------------------------

def test_truncated_state_is_set_aside_and_reported(path: Path) -> None:
    write_state(path, STATE)
    text = path.read_text(encoding="utf-8")
    path.write_text(text[: len(text) // 2], encoding="utf-8")
    with pytest.raises(StateFileCorrupt) as info:
        read_state(path)
    aside = path.with_name("state.json.corrupt-1")
    assert str(path) in str(info.value) and str(aside) in str(info.value)
    assert info.value.moved_to == aside and aside.read_text(encoding="utf-8") == text[: len(text) // 2]
    assert not path.exists()


def test_empty_state_file_is_corrupt(path: Path) -> None:
    path.write_bytes(b"")
    with pytest.raises(StateFileCorrupt, match="empty file"):
        read_state(path)


def test_state_that_is_not_an_object_is_corrupt(path: Path) -> None:
    path.write_text("[1, 2, 3]\n", encoding="utf-8")
    with pytest.raises(StateFileCorrupt, match="list, not an object"):
        read_state(path)


def test_state_that_is_not_utf8_is_corrupt(path: Path) -> None:
    path.write_bytes(b'{"halt_reason": "\xff\xfe"}')
    with pytest.raises(StateFileCorrupt):
        read_state(path)


def test_second_corruption_does_not_overwrite_the_first_set_aside_file(path: Path) -> None:
    path.write_text('{"first":', encoding="utf-8")
    with pytest.raises(StateFileCorrupt):
        read_state(path)
    path.write_text('{"second":', encoding="utf-8")
    with pytest.raises(StateFileCorrupt) as info:
        read_state(path)
    assert info.value.moved_to == path.with_name("state.json.corrupt-2")
    assert path.with_name("state.json.corrupt-1").read_text(encoding="utf-8") == '{"first":'
    assert path.with_name("state.json.corrupt-2").read_text(encoding="utf-8") == '{"second":'


def test_set_aside_skips_a_number_left_by_an_earlier_run(path: Path) -> None:
    path.with_name("state.json.corrupt-1").write_text("kept", encoding="utf-8")
    path.write_text("garbage", encoding="utf-8")
    with pytest.raises(StateFileCorrupt) as info:
        read_state(path)
    assert info.value.moved_to.name == "state.json.corrupt-2"
    assert path.with_name("state.json.corrupt-1").read_text(encoding="utf-8") == "kept"


def test_set_aside_works_without_hard_links(path: Path, monkeypatch) -> None:
    def no_links(src: str, dst: str) -> None:
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    path.with_name("state.json.corrupt-1").write_text("kept", encoding="utf-8")
    path.write_text("garbage", encoding="utf-8")
    with pytest.raises(StateFileCorrupt) as info:
        read_state(path)
    assert info.value.moved_to.read_text(encoding="utf-8") == "garbage"
    assert path.with_name("state.json.corrupt-1").read_text(encoding="utf-8") == "kept"


def test_setting_aside_fsyncs_the_directory(path: Path, fsyncs: list[str]) -> None:
    path.write_text("{", encoding="utf-8")
    with pytest.raises(StateFileCorrupt):
        read_state(path)
    assert fsyncs == ["dir"]


def test_corruption_is_logged_as_an_error(path: Path, caplog) -> None:
    path.write_text("{", encoding="utf-8")
    with pytest.raises(StateFileCorrupt):
        read_state(path)
    assert [r.levelname for r in caplog.records if r.name == state_file.__name__] == ["ERROR"]


def test_state_can_be_written_again_after_a_corrupt_file_was_set_aside(path: Path) -> None:
    path.write_text("{", encoding="utf-8")
    with pytest.raises(StateFileCorrupt):
        read_state(path)
    write_state(path, STATE)
    assert read_state(path) == STATE
    assert json.loads(path.read_text(encoding="utf-8")) == STATE


# --- data folder ------------------------------------------------------------------------------

def test_data_dir_creates_the_folder_and_logs(tmp_path: Path) -> None:
    d = DataDir(tmp_path / "nested" / "agent")
    assert d.root.is_dir() and d.logs.is_dir()


def test_data_dir_names_its_files(tmp_path: Path) -> None:
    d = DataDir(tmp_path)
    assert (d.db, d.state, d.logs) == (tmp_path / "trades.db", tmp_path / "state.json",
                                       tmp_path / "logs")


def test_default_data_dir_is_the_per_user_folder_named_after_the_app() -> None:
    assert default_data_dir().name == "trading-agent"
