"""Reading OHLCV bars from a CSV file for replay.

Uses the csv module, not pandas: headless replay has a 3 s start-up budget and importing pandas
alone costs about a tenth of it. A file that cannot be a bar file at all (missing, unreadable,
no header, a required column absent) raises DataError; a single bad row is returned as a
Rejected with its line number so the caller can log it and carry on.
"""
from __future__ import annotations

import csv
import logging
import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from data.bar import Bar
from data.validator import Rejected

COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")

# Unix ms below this (1973-03-03) are almost surely Unix SECONDS: reading them as ms would put
# every bar in January 1970 and silently misalign all time-based logic.
_MIN_PLAUSIBLE_MS = 100_000_000_000
_INT_RE = re.compile(r"[+-]?\d+")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_ONE_MS = timedelta(milliseconds=1)


class DataError(Exception):
    """Market data that cannot be used; the message names the file/line or interval at fault."""


@dataclass(frozen=True)
class CsvContents:
    """Parsed rows in file order: `lines[i]` is the file line of `bars[i]`."""

    bars: list[Bar]
    lines: list[int]
    rejected: list[Rejected]


class _RowError(ValueError):
    """One row cannot be parsed; becomes a Rejected, never escapes this module."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


def parse_timestamp(text: str) -> int:
    """Unix ms from an integer of milliseconds or an ISO 8601 string (naive means UTC).

    Raises ValueError naming the text when it is neither, or is implausible as ms.
    """
    text = text.strip()
    if _INT_RE.fullmatch(text):
        ms = int(text)
        if ms < _MIN_PLAUSIBLE_MS:
            raise _RowError(
                f"timestamp {text} is before 1973 as Unix milliseconds (Unix seconds given?)",
                "timestamp before 1973 (Unix seconds?)")
        return ms
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise _RowError(
            f"timestamp {text!r} is neither Unix milliseconds nor ISO 8601",
            "timestamp neither Unix ms nor ISO 8601") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    elapsed = moment - _EPOCH
    if elapsed % _ONE_MS:
        raise _RowError(f"timestamp {text!r} has sub-millisecond precision",
                        "sub-millisecond timestamp")
    return elapsed // _ONE_MS


def _parse_number(name: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise _RowError(f"{name} {text!r} is not a number", f"{name} not a number") from None


def _column_positions(header: list[str], path: Path) -> dict[str, int]:
    names = [cell.strip().lower() for cell in header]
    missing = [column for column in COLUMNS if column not in names]
    if missing:
        raise DataError(
            f"{path}: line 1: header lacks column(s) {', '.join(missing)} "
            f"(expected {','.join(COLUMNS)}; found {','.join(names)})"
        )
    return {column: names.index(column) for column in COLUMNS}


def read_csv(path: Path) -> CsvContents:
    """Parse every row; rows that do not parse are rejected with their line number."""
    bars: list[Bar] = []
    lines: list[int] = []
    rejected: list[Rejected] = []
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                raise DataError(f"{path}: line 1: file is empty, expected a header")
            positions = _column_positions(header, path)
            width = max(positions.values()) + 1
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue
                line = reader.line_num
                ts: int | None = None
                try:
                    if len(row) < width:
                        raise _RowError(f"row has {len(row)} fields, expected {len(header)}",
                                        "too few fields")
                    ts = parse_timestamp(row[positions["timestamp"]])
                    values = [_parse_number(c, row[positions[c]]) for c in COLUMNS[1:]]
                except _RowError as problem:
                    rejected.append(Rejected(line=line, ts=ts, reason=str(problem), kind=problem.kind))
                    continue
                bars.append(Bar(ts, *values))
                lines.append(line)
    except OSError as error:
        raise DataError(f"{path}: cannot read: {error.strerror or error}") from error
    except (UnicodeDecodeError, csv.Error) as error:
        raise DataError(f"{path}: not a readable CSV text file: {error}") from error
    return CsvContents(bars, lines, rejected)


SHOWN_REJECTIONS = 5      # bad rows logged one by one; the rest are counted per kind
FLOOD_ROWS = 100          # below this many bad rows a file is never "mostly bad": each is shown


def report_rejections(path: Path, rejected: list[Rejected], kept: int, log: logging.Logger) -> None:
    """Log the first few rejected rows, then one line with the count per kind (a 40 MB file of
    garbage must not print a line per row and rotate the log history away). When most of the
    file is bad it is not a bar file with a few bad rows: DataError, nothing is replayed."""
    for item in rejected[:SHOWN_REJECTIONS]:
        where = f"line {item.line}" if item.line is not None else "bar"
        log.warning("%s: %s rejected: %s", path, where, item.reason)
    if not rejected:
        return
    counts = Counter(item.kind for item in rejected)
    summary = ", ".join(f"{n} {kind}" for kind, n in counts.most_common())
    if len(rejected) > SHOWN_REJECTIONS:
        log.warning("%s: %d rows rejected in all (%s)", path, len(rejected), summary)
    if len(rejected) > kept and len(rejected) >= FLOOD_ROWS:
        raise DataError(f"{path}: {len(rejected)} of {len(rejected) + kept} rows are invalid "
                        f"({summary}): most of the file is bad, nothing was replayed")


def read_csv_bars(path: Path) -> tuple[list[Bar], list[Rejected]]:
    """Bars in file order (not yet validated) and the rows that could not be parsed."""
    contents = read_csv(path)
    return contents.bars, contents.rejected
