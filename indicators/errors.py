"""Typed errors raised by the indicator layer."""
from __future__ import annotations


class IndicatorError(ValueError):
    """Base class: an indicator was asked for something it cannot compute."""


class InvalidWindowError(IndicatorError):
    """A window, span or look-back/look-ahead is out of range (for example zero or negative)."""


class UnknownFibRatioError(IndicatorError):
    """A Fibonacci ratio that is not one of RATIOS was requested."""


def require_window(name: str, value: int, minimum: int = 1) -> int:
    """Validate an integer window parameter so a bad config fails loudly, naming the field."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidWindowError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise InvalidWindowError(f"{name} must be >= {minimum}, got {value}")
    return value
