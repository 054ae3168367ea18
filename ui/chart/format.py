"""Text formats of the chart: prices with thousands separators, times in UTC."""

from __future__ import annotations

import math
from datetime import UTC, datetime


def price_decimals(price: float) -> int:
    """Two decimals for prices >= 1; sub-unit prices keep about four significant digits."""
    magnitude = abs(price)
    if magnitude >= 1.0 or magnitude == 0.0 or not math.isfinite(magnitude):
        return 2
    return min(10, 3 - math.floor(math.log10(magnitude)))


def format_price(price: float) -> str:
    """"117,411.27" for BTC-sized prices, "0.0001234" for small ones."""
    return f"{price:,.{price_decimals(price)}f}"


def format_change(last: float, previous: float) -> str:
    """Absolute and relative change, signed: "+491.20 (+0.42%)"; "-1.90 (-0.002%)" for moves
    under 1%, which a 15-minute bar mostly makes (two decimals would read "-0.00%")."""
    delta = last - previous
    pct = 100.0 * delta / previous if previous else 0.0
    pct_decimals = 2 if abs(pct) >= 1.0 else 3
    return f"{delta:+,.{price_decimals(last)}f} ({pct:+.{pct_decimals}f}%)"


def format_utc(seconds: float) -> str:
    """The chart's x unit (Unix seconds) as "2025-07-04 12:15 UTC"."""
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
