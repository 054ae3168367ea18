"""The replay's own clock controls, shown only for replay sessions.

Pausing the ENGINE (the control bar) means "no new entries" and the bars keep coming; this
strip pauses the REPLAY CLOCK itself, steps one bar at a time, changes the pace and shows where
the replay is ("bar 4,300 of 9,000"). Dragging the slider forward runs the replay at full
speed to that bar, then holds the clock there; a replay cannot go back (the engine's state
follows the bars it has seen)."""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QFrame, QHBoxLayout, QLabel, QPushButton, QSlider, QWidget

REPLAY_SPEEDS: tuple[float | None, ...] = (0.5, 1.0, 2.0, 5.0, 10.0, 40.0, 100.0, 400.0, None)


def speed_text(speed: float | None) -> str:
    if speed is None:
        return "max"
    return f"{speed:g} bar/s" if speed <= 1 else f"{speed:g} bars/s"


def progress_text(position: int, total: int) -> str:
    return f"bar {position:,} of {total:,}"


class ReplayBar(QFrame):
    """Play/pause of the replay clock, single step, progress, position slider and speed."""

    clock_paused_requested = Signal(bool)     # True: hold the clock; False: let it run
    step_requested = Signal()
    speed_requested = Signal(object)          # bars per second, or None for "max"
    seek_requested = Signal(int)              # run to this bar (1-based), then hold the clock

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("panel")
        self.clock_paused = False
        self._position = 0
        self._total = 0
        self._finished = False

        caption = QLabel("Replay")
        caption.setProperty("role", "title")
        self.play_button = QPushButton("Pause replay")
        self.play_button.setObjectName("replayPlayButton")
        self.play_button.setToolTip("Stop or restart the replay clock (Space). The engine's "
                                    "state does not change; no bar arrives while it is held.")
        self.play_button.clicked.connect(
            lambda: self.clock_paused_requested.emit(not self.clock_paused))
        self.step_button = QPushButton("Step")
        self.step_button.setObjectName("replayStepButton")
        self.step_button.setToolTip("Deliver exactly one more bar while the replay clock is held "
                                    "(Ctrl+Right)")
        self.step_button.clicked.connect(self.step_requested)

        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setObjectName("replaySlider")
        self.slider.setMinimumWidth(80)
        self.slider.setToolTip("Where the replay is. Drag forward to run there at full speed "
                               "and hold; a replay cannot go back.")
        self.slider.sliderReleased.connect(self._released)
        self.progress_label = QLabel(progress_text(0, 0))
        self.progress_label.setObjectName("replayProgress")
        self.progress_label.setMinimumWidth(self.progress_label.fontMetrics()
                                            .horizontalAdvance(progress_text(99_999, 99_999)))

        self.speed_combo = QComboBox()
        self.speed_combo.setObjectName("replaySpeed")
        self.speed_combo.setToolTip("Replay speed (bars per second); the outcome is the same at "
                                    "every speed")
        for speed in REPLAY_SPEEDS:
            self.speed_combo.addItem(speed_text(speed), speed)
        self.speed_combo.activated.connect(
            lambda index: self.speed_requested.emit(self.speed_combo.itemData(index)))

        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 3, 10, 3)
        layout.setSpacing(8)
        layout.addWidget(caption)
        layout.addWidget(self.play_button)
        layout.addWidget(self.step_button)
        layout.addWidget(self.slider, 1)
        layout.addWidget(self.progress_label)
        layout.addWidget(self.speed_combo)
        self.show_clock(False)

    def show_speed(self, speed: float | None) -> None:
        """Select the offered speed nearest to `speed`."""
        speeds = [x for x in REPLAY_SPEEDS if x is not None]
        choice = None if speed is None else min(speeds, key=lambda x: abs(x - speed))
        self.speed_combo.setCurrentIndex(REPLAY_SPEEDS.index(choice))

    def show_clock(self, paused: bool) -> None:
        self.clock_paused = paused
        self.play_button.setText("Play replay" if paused else "Pause replay")
        self.step_button.setEnabled(paused)

    def show_finished(self) -> None:
        """The replay ran out of bars: the progress says so from now on."""
        self._finished = True
        self.progress_label.setText(f"finished · {progress_text(self._position, self._total)}")

    def show_progress(self, position: int, total: int) -> None:
        self._position, self._total = position, total
        self.progress_label.setText(("finished · " if self._finished else "")
                                    + progress_text(position, total))
        if self.slider.isSliderDown():
            return                       # the operator is dragging: do not fight the hand
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(total, 1))
        self.slider.setValue(position)
        self.slider.blockSignals(False)

    def _released(self) -> None:
        target = self.slider.value()
        if target > self._position:
            self.seek_requested.emit(target)
        else:
            self.slider.setValue(self._position)
