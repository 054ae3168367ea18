"""Dark Forest palette shared by the window and the chart.

The colours are the backtest app's, so a trader moving between the two reads the same signals
the same way (green = up/target, red = down/stop, gold = the 61.8% level). Constants only: no
Qt import here, so headless code and tests can read them cheaply. Every colour is opaque
#RRGGBB (QColor and pyqtgraph read that form alike); translucency is chosen where it is drawn.
"""

from typing import Final

BACKGROUND: Final = "#0f1a12"
SURFACE: Final = "#16261a"
TEXT: Final = "#e8f5e9"
TEXT_SECONDARY: Final = "#b6e0bd"
BORDER: Final = "#2f5c39"
ACCENT: Final = "#4caf50"
GRID: Final = "#1f3a26"

UP: Final = "#4caf50"
DOWN: Final = "#f44336"
NEUTRAL: Final = "#9e9e9e"
GOLD: Final = "#FFD700"

EMA_FAST: Final = "#00E5FF"
EMA_SLOW: Final = "#FF9100"

FIB_COLORS: Final[dict[float, str]] = {
    0.382: "#2196F3",
    0.5: "#00BCD4",
    0.618: GOLD,
    0.786: "#FF9800",
    1.0: "#F44336",
}
FIB_DEFAULT_COLOR: Final = TEXT_SECONDARY

MARKER_ENTRY: Final = UP
MARKER_EXIT_TARGET: Final = UP
MARKER_EXIT_STOP: Final = DOWN
MARKER_EXIT_NEUTRAL: Final = NEUTRAL

POSITION_SHADE: Final = ACCENT
STOP_LINE: Final = DOWN
ENTRY_LINE: Final = TEXT_SECONDARY
CROSSHAIR: Final = TEXT_SECONDARY
SELECTION: Final = "#ffffff"
