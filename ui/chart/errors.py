"""Typed errors of the chart: a caller bug is named, never drawn as a wrong picture."""


class ChartError(ValueError):
    """Base class for invalid input handed to the chart."""


class ChartDataError(ChartError):
    """Candle arrays of different lengths, or timestamps not strictly increasing."""


class UnknownMarkerKind(ChartError):
    """An exit marker kind other than "target", "stop" or "neutral"."""


class UnknownLayer(ChartError):
    """A layer name other than "ema", "fib" or "markers"."""
