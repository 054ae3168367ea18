"""The price chart: candles, EMAs, Fibonacci ladder, trade markers, open position."""

from ui.chart.errors import ChartDataError, ChartError, UnknownLayer, UnknownMarkerKind
from ui.chart.widget import ChartWidget

__all__ = ["ChartDataError", "ChartError", "ChartWidget", "UnknownLayer", "UnknownMarkerKind"]
