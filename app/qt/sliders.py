"""Epoch and layer sliders with play/pause and speed.

The controls edit the :class:`app.model.state.ViewerState` and follow its events; playback is a QTimer that
steps the epoch (it waits for the current epoch's result before stepping when ``ready`` says so). The epoch
slider steps through the run's checkpoints; the box beside it holds real epoch numbers: typing one jumps to
the nearest checkpoint (the earlier on a tie).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QDoubleSpinBox, QHBoxLayout, QLabel, QSlider, QSpinBox, QStyle, QToolButton, QWidget
from superqt import QLabeledSlider

from ..model.state import ViewerState


class EpochLayerControls(QWidget):
    """[play] epoch ---o--- [epoch number] (i/E) | layer ---o--- | speed."""

    def __init__(self, state: ViewerState, parent: QWidget | None = None):
        super().__init__(parent)
        self.state = state
        self.epochs: list[int] = []
        self.ready: Callable[[], bool] = lambda: True
        lay = QHBoxLayout(self)
        lay.setContentsMargins(6, 2, 6, 2)
        self.play = QToolButton()
        self.play.setCheckable(True)
        self.play.setIcon(self.style().standardIcon(QStyle.StandardPixmap.SP_MediaPlay))
        self.play.setToolTip("Play / pause the epoch sweep (Space)")
        self.play.toggled.connect(state.set_playing)
        lay.addWidget(self.play)
        lay.addWidget(QLabel("Epoch"))
        self.epoch = QSlider(Qt.Orientation.Horizontal)
        self.epoch.setToolTip("Checkpoint of the run (←/→ step)")
        self.epoch.setRange(0, 0)
        self.epoch.valueChanged.connect(state.set_epoch_index)
        lay.addWidget(self.epoch, 3)
        self.epoch_box = QSpinBox()
        self.epoch_box.setKeyboardTracking(False)  # jump when the number is complete, not per digit
        self.epoch_box.setToolTip("Epoch number: type one to jump to the nearest checkpoint")
        self.epoch_box.setRange(0, 0)
        self.epoch_box.valueChanged.connect(self._on_epoch_typed)
        lay.addWidget(self.epoch_box)
        self.epoch_label = QLabel("")
        self.epoch_label.setMinimumWidth(60)
        lay.addWidget(self.epoch_label)
        lay.addSpacing(12)
        lay.addWidget(QLabel("Layers 1…"))
        self.layer = QLabeledSlider(Qt.Orientation.Horizontal)
        self.layer.setToolTip("Tessellation after layers 1..l (↑/↓ step)")
        self.layer.setRange(1, 1)
        self.layer.valueChanged.connect(state.set_depth)
        lay.addWidget(self.layer, 1)
        lay.addSpacing(12)
        lay.addWidget(QLabel("Speed"))
        self.speed = QDoubleSpinBox()
        self.speed.setRange(0.25, 30.0)
        self.speed.setSingleStep(0.5)
        self.speed.setSuffix(" fps")
        self.speed.setValue(state.settings.play_fps)
        self.speed.setToolTip("Epochs per second during playback")
        self.speed.valueChanged.connect(lambda v: state.update_settings(play_fps=float(v)))
        lay.addWidget(self.speed)
        self.timer = QTimer(self)
        self.timer.timeout.connect(self._tick)
        ev = state.events
        ev.epoch_index.connect(self._on_epoch)
        ev.depth.connect(lambda d: self._set_quiet(self.layer, d))
        ev.playing.connect(self._on_playing)
        ev.settings.connect(lambda s: self.timer.setInterval(int(1000 / max(s.play_fps, 0.1))))

    def set_run(self, epochs: list[int], depth: int) -> None:
        self.epochs = list(epochs)
        self._set_range(self.epoch, 0, max(len(epochs) - 1, 0))
        self._set_range(self.epoch_box, min(epochs, default=0), max(epochs, default=0))
        self._set_range(self.layer, 1, max(depth, 1))
        self._set_quiet(self.epoch, self.state.epoch_index)
        self._set_quiet(self.layer, self.state.depth)
        self.play.setEnabled(len(epochs) > 1)
        self._on_epoch(self.state.epoch_index)

    @staticmethod
    def _set_range(slider, lo, hi) -> None:
        slider.blockSignals(True)
        slider.setRange(lo, hi)
        slider.blockSignals(False)

    @staticmethod
    def _set_quiet(slider, value) -> None:
        if slider.value() != value:
            slider.blockSignals(True)
            slider.setValue(value)
            slider.blockSignals(False)

    def nearest_checkpoint(self, epoch: int) -> int:
        """Index of the checkpoint whose epoch is nearest to ``epoch`` (the earlier on a tie)."""
        return int(np.argmin(np.abs(np.asarray(self.epochs, dtype=np.float64) - float(epoch)))) if self.epochs else 0

    def _on_epoch_typed(self, epoch: int) -> None:
        self.state.set_epoch_index(self.nearest_checkpoint(epoch))
        self._on_epoch(self.state.epoch_index)  # the box shows the checkpoint's own epoch

    def _on_epoch(self, i: int) -> None:
        self._set_quiet(self.epoch, i)
        if 0 <= i < len(self.epochs):
            self._set_quiet(self.epoch_box, self.epochs[i])
            self.epoch_label.setText(f"({i + 1}/{len(self.epochs)})")

    def _on_playing(self, playing: bool) -> None:
        self.play.blockSignals(True)
        self.play.setChecked(playing)
        self.play.blockSignals(False)
        icon = QStyle.StandardPixmap.SP_MediaPause if playing else QStyle.StandardPixmap.SP_MediaPlay
        self.play.setIcon(self.style().standardIcon(icon))
        if playing:
            if self.state.epoch_index >= self.state.n_epochs - 1:
                self.state.set_epoch_index(0)
            self.timer.start(int(1000 / max(self.state.settings.play_fps, 0.1)))
        else:
            self.timer.stop()

    def _tick(self) -> None:
        if not self.ready():
            return  # the current epoch is still computing: wait rather than skip frames
        if self.state.epoch_index >= self.state.n_epochs - 1:
            self.state.set_playing(False)
            return
        self.state.step_epoch(1)
