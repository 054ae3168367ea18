"""The Trades table's "vs backtest" cell of one trade (built by ui.panels.shadow)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ShadowCell:
    text: str
    tooltip: str
    sort_key: float | None     # the diff in bps; None sorts first
    color: str | None
