"""Training tab: accuracy, region count in the current slice window and mean Tr G against epoch.

A vertical cursor follows the epoch slider (drag it to scrub). Accuracy comes from the run's recorded
metrics; the region count fills in for every epoch whose exact tessellation of the current window is
in the cache (scrub, or press "Tessellate every epoch", which also makes scrubbing instant);
mean Tr G over up to 256 test points is computed on request (``geometry.foliation.local_data_matrix.trace_over_run``).
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from ..model.state import ViewerState
from .theme import Theme


REG_TITLE = "regions in the current slice window (full depth)"
REG_HINT = ": cached epochs only"
TR_TITLE = "mean Tr G over test points"
TR_HINT = ": not computed yet"


class TrainingPanel(QWidget):
    """Plots against epoch with a cursor linked to the state's epoch. Buttons ask the window for work:
    ``tessellate_all_requested`` and ``trace_requested``."""

    tessellate_all_requested = Signal()
    trace_requested = Signal()

    def __init__(self, state: ViewerState, theme: Theme, parent: QWidget | None = None):
        super().__init__(parent)
        self.state, self.theme = state, theme
        self.epochs = np.zeros(0)
        lay = QVBoxLayout(self)
        row = QHBoxLayout()
        self.tess_btn = QPushButton("Tessellate every epoch")
        self.tess_btn.setToolTip(
            "Compute the exact tiles of the current window at every checkpoint (in the background; fills the cache so scrubbing is instant)"
        )
        self.tess_btn.clicked.connect(self.tessellate_all_requested)
        self.trace_btn = QPushButton("Compute mean Tr G")
        self.trace_btn.setToolTip("Mean trace of the local data matrix over up to 256 test points, every checkpoint")
        self.trace_btn.clicked.connect(self.trace_requested)
        row.addWidget(self.tess_btn)
        row.addWidget(self.trace_btn)
        row.addStretch(1)
        self.note = QLabel("")
        row.addWidget(self.note)
        lay.addLayout(row)
        self.plots = pg.GraphicsLayoutWidget()
        lay.addWidget(self.plots, 1)
        self.p_acc = self.plots.addPlot(row=0, col=0, title="accuracy")
        self.p_acc.addLegend(offset=(-10, -10), colCount=2)  # one row, bottom right: trained curves sit near 1
        self.p_acc.setYRange(0, 1.02, padding=0)
        self.p_reg = self.plots.addPlot(row=1, col=0, title=REG_TITLE + REG_HINT)
        self.p_tr = self.plots.addPlot(row=2, col=0, title=TR_TITLE + TR_HINT)
        self.p_tr.setLabel("bottom", "epoch")
        self.cursors = []
        for p in (self.p_acc, self.p_reg, self.p_tr):
            p.getAxis("bottom").enableAutoSIPrefix(False)
            p.getAxis("left").enableAutoSIPrefix(False)
            p.enableAutoRange(axis="y")
            p.setMenuEnabled(False)
            p.hideButtons()
            p.showGrid(x=True, y=True, alpha=0.2)
            c = pg.InfiniteLine(angle=90, movable=True, pen=pg.mkPen("#e0102a", width=1.5))
            c.sigDragged.connect(self._on_drag)
            p.addItem(c)
            self.cursors.append(c)
        self.p_reg.setXLink(self.p_acc)
        self.p_tr.setXLink(self.p_acc)
        self.reg_curve = self.p_reg.plot([], [], pen=pg.mkPen(theme.foreground, width=1.5), symbol="o", symbolSize=5)
        self.tr_curve = self.p_tr.plot([], [], pen=pg.mkPen(theme.foreground, width=1.5), symbol="o", symbolSize=5)
        state.events.epoch_index.connect(self._on_epoch)

    def set_run(self, bundle) -> None:
        run = bundle.run
        self.epochs = np.asarray(run.epochs, dtype=np.float64)
        self.p_acc.clear()
        for c in self.cursors[:1]:
            self.p_acc.addItem(c)
        self.p_acc.legend.clear() if self.p_acc.legend is not None else None
        shown = False
        for name, col in (("train_accuracy", "#0072B2"), ("test_accuracy", "#E69F00")):
            vals = np.array([np.nan if v is None else float(v) for v in run.metrics(name)])
            if np.isfinite(vals).any():
                self.p_acc.plot(self.epochs, vals, pen=pg.mkPen(col, width=2), name=name.replace("_", " "), connect="finite")
                shown = True
        self.note.setText("" if shown else "this run recorded no accuracy")
        self.reg_curve.setData([], [])
        self.tr_curve.setData([], [])
        self.p_reg.setTitle(REG_TITLE + REG_HINT)
        self.p_tr.setTitle(TR_TITLE + TR_HINT)
        if len(self.epochs):
            lo, hi = float(self.epochs.min()), float(self.epochs.max())
            self.p_acc.setXRange(lo, hi if hi > lo else lo + 1, padding=0.02)
        self.trace_btn.setEnabled(bundle.dataset is not None)
        self.tess_btn.setEnabled(bundle.piecewise_affine)
        self._on_epoch(self.state.epoch_index)

    def set_region_counts(self, counts: np.ndarray) -> None:
        """(E,) regions per epoch (NaN where not computed)."""
        ok = np.isfinite(counts)
        self.reg_curve.setData(self.epochs[ok], counts[ok])
        if ok.any():  # counts from 0: one cached epoch gets a readable axis
            self.p_reg.setYRange(0, 1.08 * float(counts[ok].max()), padding=0)
        self.p_reg.setTitle(REG_TITLE + ("" if ok.all() else REG_HINT))

    def set_trace(self, curve) -> None:
        """A ``TraceCurve`` (mean_trace per checkpoint)."""
        self.tr_curve.setData(np.asarray(curve.epochs, np.float64), np.asarray(curve.mean_trace))
        self.p_tr.enableAutoRange(axis="y")
        self.p_tr.setTitle(TR_TITLE)

    def _on_epoch(self, i: int) -> None:
        if len(self.epochs):
            for c in self.cursors:
                c.blockSignals(True)
                c.setValue(self.epochs[min(i, len(self.epochs) - 1)])
                c.blockSignals(False)

    def _on_drag(self, line) -> None:
        if len(self.epochs):
            self.state.set_epoch_index(int(np.argmin(np.abs(self.epochs - line.value()))))
