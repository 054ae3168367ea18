"""Bounding rects that grow in steps, so appending a candle rarely changes an item's geometry.

Why: prepareGeometryChange() makes Qt repaint the item's whole old bounding rect, i.e. the
whole chart, on every candle close. Growing the bounds with headroom (to the right by
HEADROOM_BARS bars, up and down by a quarter of the height) turns that into a rare event; the
items cull their painting to the exposed rect, so larger bounds cost nothing to draw.
"""

from __future__ import annotations

from PySide6.QtCore import QRectF

HEADROOM_BARS = 512
Y_HEADROOM = 0.25


def grown(bounds: QRectF, rect: QRectF, bar_seconds: float) -> QRectF | None:
    """New bounds covering `rect` with headroom, or None when `bounds` already covers it."""
    rect = rect.normalized()
    if not bounds.isNull() and bounds.contains(rect):
        return None
    united = rect if bounds.isNull() else bounds.united(rect)
    dy = max(united.height(), abs(united.center().y()) * 1e-3) * Y_HEADROOM
    return united.adjusted(0.0, -dy, HEADROOM_BARS * bar_seconds, dy)
