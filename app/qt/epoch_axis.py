"""The epoch axis shared by the Training tab's plots: linear or logarithmic (``Settings.log_epochs``), with a
cursor per plot that follows the epoch slider and scrubs it when dragged.

On a log axis epoch 0 is drawn at epoch 1 (log 0 does not exist) and the axis label says so; the curves'
x values come from :func:`epoch_x` so every plot places an epoch at the same point.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg

from ..model.state import ViewerState

LINEAR_LABEL = "epoch"
LOG_LABEL = "epoch (log scale; epoch 0 drawn at 1)"


def epoch_x(epochs, log: bool) -> np.ndarray:
    """The x values at which ``epochs`` are plotted (pyqtgraph takes log10 itself in log mode)."""
    e = np.asarray(epochs, dtype=np.float64)
    return np.maximum(e, 1.0) if log else e


class EpochAxis:
    """Links ``plots`` (pyqtgraph PlotItems sharing one x range) to the state's epoch and log setting.
    ``on_scale`` is called after the scale changed, so the owner can re-plot its curves with :meth:`x`."""

    def __init__(self, state: ViewerState, plots, label_plots=None, on_scale=None):
        self.state, self.plots = state, list(plots)
        self.label_plots = list(label_plots if label_plots is not None else plots)
        self.on_scale = on_scale
        self.epochs = np.zeros(0)
        self.log = state.settings.log_epochs
        self.cursors = []
        for p in self.plots:
            c = pg.InfiniteLine(angle=90, movable=True, pen=pg.mkPen("#e0102a", width=1.5))
            c.sigDragged.connect(self._on_drag)
            p.addItem(c)
            self.cursors.append(c)
        for p in self.plots[1:]:
            p.setXLink(self.plots[0])
        self._apply_scale()
        state.events.epoch_index.connect(self.show_epoch)
        state.events.settings.connect(self._on_settings)

    def x(self, epochs) -> np.ndarray:
        return epoch_x(epochs, self.log)

    def set_epochs(self, epochs) -> None:
        """The run's checkpoint epochs: the x range and the cursor positions follow them."""
        self.epochs = np.asarray(epochs, dtype=np.float64)
        self._fit_range()
        self.show_epoch(self.state.epoch_index)

    def show_epoch(self, i: int) -> None:
        if len(self.epochs):
            x = self._to_axis(self.epochs[min(int(i), len(self.epochs) - 1)])
            for c in self.cursors:
                c.blockSignals(True)
                c.setValue(x)
                c.blockSignals(False)

    # -- internals -----------------------------------------------------------------------------------
    def _to_axis(self, epoch: float) -> float:
        """Epoch -> the cursor's coordinate (a log axis' view coordinate is log10 of the data)."""
        x = float(epoch_x([epoch], self.log)[0])
        return float(np.log10(x)) if self.log else x

    def _on_drag(self, line) -> None:
        if len(self.epochs):
            v = float(line.value())
            epoch = 10.0**v if self.log else v
            self.state.set_epoch_index(int(np.argmin(np.abs(self.x(self.epochs) - epoch))))

    def _on_settings(self, s) -> None:
        if s.log_epochs != self.log:
            self.log = s.log_epochs
            self._apply_scale()
            if self.on_scale is not None:
                self.on_scale()
            self._fit_range()
            self.show_epoch(self.state.epoch_index)

    def _apply_scale(self) -> None:
        for p in self.plots:
            p.setLogMode(x=self.log, y=False)
        for p in self.label_plots:
            p.setLabel("bottom", LOG_LABEL if self.log else LINEAR_LABEL)

    def _fit_range(self) -> None:
        for p in self.plots:
            if p is self.plots[0] or p.getViewBox().linkedView(0) is None:  # unlinked plots get the range too
                self.fit(p)

    def fit(self, plot) -> None:
        """Show every epoch on ``plot`` (a linked plot follows the one it is linked to)."""
        if not len(self.epochs):
            return
        x = self.x(self.epochs)
        lo, hi = float(x.min()), float(x.max())
        if self.log:
            lo, hi = np.log10(lo), np.log10(hi)
        plot.setXRange(lo, hi if hi > lo else lo + 1, padding=0.02)
