"""CSV replay source: header checks, timestamp formats, per-row rejection with line numbers."""
from __future__ import annotations

from pathlib import Path

import pytest

from data.bar import Bar
from data.csv_source import DataError, parse_timestamp, read_csv, read_csv_bars

HEADER = "timestamp,open,high,low,close,volume\n"
TS = 1_751_629_500_000  # 2025-07-04T11:45:00Z


def write(tmp_path: Path, text: str, name: str = "bars.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_unix_ms_rows_become_bars(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + f"{TS},100,101,99,100.5,12.25\n")
    bars, rejected = read_csv_bars(path)
    assert bars == [Bar(TS, 100.0, 101.0, 99.0, 100.5, 12.25)]
    assert rejected == []


@pytest.mark.parametrize(
    "text",
    [
        "2025-07-04T11:45:00Z",
        "2025-07-04T11:45:00+00:00",
        "2025-07-04 11:45:00+00:00",
        "2025-07-04T13:45:00+02:00",
        "2025-07-04T11:45:00.000Z",
    ],
)
def test_iso_8601_timestamps_are_parsed_to_utc_ms(text: str) -> None:
    assert parse_timestamp(text) == TS


def test_naive_iso_timestamp_is_taken_as_utc() -> None:
    assert parse_timestamp("2025-07-04T11:45:00") == TS


def test_iso_rows_become_bars(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "2025-07-04T11:45:00Z,1,2,0.5,1.5,3\n")
    bars, _ = read_csv_bars(path)
    assert bars[0].ts == TS


def test_header_is_case_and_space_insensitive_and_order_free(tmp_path: Path) -> None:
    text = " Volume ,Close,LOW,high,open,timestamp,extra\n" + f"7,4,1,5,2,{TS},x\n"
    bars, rejected = read_csv_bars(write(tmp_path, text))
    assert bars == [Bar(TS, 2.0, 5.0, 1.0, 4.0, 7.0)]
    assert rejected == []


def test_utf8_bom_before_header_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + (HEADER + f"{TS},1,2,0.5,1.5,3\n").encode())
    bars, _ = read_csv_bars(path)
    assert len(bars) == 1


def test_missing_column_is_named_in_the_error(tmp_path: Path) -> None:
    path = write(tmp_path, "timestamp,open,high,low,close\n" + f"{TS},1,2,0.5,1.5\n")
    with pytest.raises(DataError, match=r"bars\.csv: line 1: header lacks column\(s\) volume"):
        read_csv_bars(path)


def test_empty_file_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file is empty"):
        read_csv_bars(write(tmp_path, ""))


def test_missing_file_is_a_data_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nope.csv: cannot read"):
        read_csv_bars(tmp_path / "nope.csv")


def test_binary_file_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "blob.csv"
    path.write_bytes(b"\xff\xfe\x00\x81garbage")
    with pytest.raises(DataError, match="not a readable CSV"):
        read_csv_bars(path)


def test_unparsable_number_is_rejected_with_its_line(tmp_path: Path) -> None:
    text = HEADER + f"{TS},1,2,0.5,1.5,3\n{TS + 900_000},1,abc,0.5,1.5,3\n"
    bars, rejected = read_csv_bars(write(tmp_path, text))
    assert len(bars) == 1
    assert len(rejected) == 1
    assert rejected[0].line == 3
    assert rejected[0].ts == TS + 900_000
    assert "high 'abc' is not a number" in rejected[0].reason


def test_unparsable_timestamp_is_rejected(tmp_path: Path) -> None:
    bars, rejected = read_csv_bars(write(tmp_path, HEADER + "yesterday,1,2,0.5,1.5,3\n"))
    assert bars == []
    assert rejected[0].line == 2
    assert rejected[0].ts is None
    assert "neither Unix milliseconds nor ISO 8601" in rejected[0].reason


def test_unix_seconds_are_rejected_not_misread_as_1970(tmp_path: Path) -> None:
    bars, rejected = read_csv_bars(write(tmp_path, HEADER + "1751629500,1,2,0.5,1.5,3\n"))
    assert bars == []
    assert "Unix seconds given?" in rejected[0].reason


def test_sub_millisecond_iso_timestamp_is_rejected() -> None:
    with pytest.raises(ValueError, match="sub-millisecond"):
        parse_timestamp("2025-07-04T11:45:00.000500Z")


def test_short_row_is_rejected(tmp_path: Path) -> None:
    bars, rejected = read_csv_bars(write(tmp_path, HEADER + f"{TS},1,2,0.5\n"))
    assert bars == []
    assert "row has 4 fields, expected 6" in rejected[0].reason


def test_blank_lines_are_skipped_and_line_numbers_stay_physical(tmp_path: Path) -> None:
    text = HEADER + f"{TS},1,2,0.5,1.5,3\n\n{TS + 900_000},1,2,0.5,1.5,3\n"
    contents = read_csv(write(tmp_path, text))
    assert contents.lines == [2, 4]
    assert contents.rejected == []


def test_nan_text_parses_so_the_validator_can_name_it(tmp_path: Path) -> None:
    bars, rejected = read_csv_bars(write(tmp_path, HEADER + f"{TS},nan,2,0.5,1.5,3\n"))
    assert rejected == []
    assert bars[0].open != bars[0].open
