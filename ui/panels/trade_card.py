"""The hover card of a trade marker: what a trader asks of a trade at a glance (why it
closed, PnL, R multiple, bars held), plus the backtest's own outcome when it is known."""
from __future__ import annotations

from persistence.records import TradeRecord
from ui.panels.style import format_money, format_percent, format_price, format_utc_ms
from ui.panels.trades_table import r_multiple


def trade_card(trade: TradeRecord, currency: str, vs_backtest: str | None = None) -> str:
    """Plain text, one fact per line."""
    number = f"#{trade.id}" if trade.id is not None else ""
    if trade.status != "closed" or trade.exit_price is None:
        lines = [f"Trade {number} · OPEN",
                 f"Entry    {format_price(trade.entry_price)}  {format_utc_ms(trade.entry_ts)}",
                 f"Stop     {format_price(trade.stop_price) if trade.stop_price else '—'}",
                 f"Target   {format_price(trade.target_price) if trade.target_price else '—'}",
                 f"Held     {trade.bars_held} bars"]
    else:
        r = r_multiple(trade)
        lines = [f"Trade {number} · {trade.exit_reason or '—'}",
                 f"Entry    {format_price(trade.entry_price)}  {format_utc_ms(trade.entry_ts)}",
                 f"Exit     {format_price(trade.exit_price)}  {format_utc_ms(trade.exit_ts)}",
                 f"PnL      {format_money(trade.pnl, currency)} "
                 f"({format_percent(trade.pnl_percent)})",
                 f"R        {f'{r:+.2f}R' if r is not None else '—'}",
                 f"Held     {trade.bars_held} bar{'s' if trade.bars_held != 1 else ''}"]
    if vs_backtest:
        lines.append(f"Backtest {vs_backtest}")
    return "\n".join(lines)
