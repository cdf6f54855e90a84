"""Training tab: accuracy, region count in the current slice window and mean Tr G against epoch.

A vertical cursor follows the epoch slider (drag it to scrub). Accuracy comes from the run's recorded
metrics; the region count fills in for every epoch whose exact tessellation of the current window is
in the cache (scrub, or press "Tessellate every epoch", which also makes scrubbing instant);
mean Tr G over up to 256 test points is computed on request (``geometry.foliation.local_data_matrix.trace_over_run``).
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from ..export.tables import training_table, write_csv
from ..model.state import ViewerState
from .epoch_axis import EpochAxis
from .theme import Theme


REG_TITLE = "regions in the current slice window (full depth)"
REG_HINT = ": cached epochs only"
TR_TITLE = "mean Tr G over test points"
TR_HINT = ": not computed yet"
FOLLOW_TITLE = "followed tile"


class TrainingPanel(QWidget):
    """Plots against epoch with a cursor linked to the state's epoch. Buttons ask the window for work:
    ``tessellate_all_requested``, ``trace_requested`` and ``csv_requested`` (the window asks where, then
    calls :meth:`export_csv`)."""

    tessellate_all_requested = Signal()
    precompute_requested = Signal()
    follow_requested = Signal()
    trace_requested = Signal()
    csv_requested = Signal()

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
        self.pre_btn = QPushButton("Precompute (Dask)")
        self.pre_btn.setToolTip(
            "Tessellate the view at every checkpoint as Dask tasks on a local cluster (one worker process per free core) into the disk cache; "
            "progress in the status bar (CLI: splineatlas precompute)"
        )
        self.pre_btn.clicked.connect(self.precompute_requested)
        self.follow_btn = QPushButton("Follow point")
        self.follow_btn.setToolTip(
            "The exact tile holding the inspected point at every checkpoint: its area, the bits of its pattern that changed "
            "since the previous checkpoint, and where its class changed (CLI: splineatlas follow)"
        )
        self.follow_btn.clicked.connect(self.follow_requested)
        self.trace_btn = QPushButton("Mean Tr G")
        self.trace_btn.setToolTip("Mean trace of the local data matrix over up to 256 test points, every checkpoint")
        self.trace_btn.clicked.connect(self.trace_requested)
        self.log_box = QCheckBox("Log epoch axis")
        self.log_box.setToolTip("Logarithmic epoch axis for every plot of this tab (epoch 0 drawn at 1): dense early checkpoints get room")
        self.log_box.setChecked(state.settings.log_epochs)
        self.log_box.toggled.connect(lambda on: state.update_settings(log_epochs=bool(on)))
        state.events.settings.connect(lambda st: self.log_box.setChecked(st.log_epochs))
        self.csv_btn = QPushButton("Export CSV…")
        self.csv_btn.setToolTip("These curves as a table: a row per checkpoint (epoch, accuracy, regions in the window, mean Tr G)")
        self.csv_btn.clicked.connect(self.csv_requested)
        row.addWidget(self.tess_btn)
        row.addWidget(self.pre_btn)
        row.addWidget(self.follow_btn)
        row.addWidget(self.trace_btn)
        row.addWidget(self.log_box)
        row.addWidget(self.csv_btn)
        row.addStretch(1)
        self.note = QLabel("")
        row.addWidget(self.note)
        lay.addLayout(row)
        self.plots = pg.GraphicsLayoutWidget()
        lay.addWidget(self.plots, 1)
        self.p_acc = self.plots.addPlot(row=0, col=0, colspan=2, title="accuracy")
        self.p_acc.addLegend(offset=(-10, -10), colCount=2)  # one row, bottom right: trained curves sit near 1
        self.p_acc.setYRange(0, 1.02, padding=0)
        self.p_reg = self.plots.addPlot(row=1, col=0, colspan=2, title=REG_TITLE + REG_HINT)
        self.p_tr = self.plots.addPlot(row=2, col=0, colspan=2, title=TR_TITLE + TR_HINT)
        self.p_fol = self.plots.addPlot(row=3, col=0, title=FOLLOW_TITLE)  # moved beside Tr G once a tile is followed
        self.p_fol.setLabel("left", "area (units²)")
        self.p_fol.showAxis("right")
        self.p_fol.setLabel("right", "bits changed")
        self.ham_vb = pg.ViewBox()  # the Hamming distances on the right-hand axis, sharing the epochs
        self.p_fol.scene().addItem(self.ham_vb)
        self.p_fol.getAxis("right").linkToView(self.ham_vb)
        self.ham_vb.setXLink(self.p_fol)
        self.p_fol.vb.sigResized.connect(lambda *_: self.ham_vb.setGeometry(self.p_fol.vb.sceneBoundingRect()))
        for p in (self.p_acc, self.p_reg, self.p_tr, self.p_fol):
            p.getAxis("bottom").enableAutoSIPrefix(False)
            p.getAxis("left").enableAutoSIPrefix(False)
            p.enableAutoRange(axis="y")
            p.setMenuEnabled(False)
            p.hideButtons()
            p.showGrid(x=True, y=True, alpha=0.2)
        self.axis = EpochAxis(state, (self.p_acc, self.p_reg, self.p_tr, self.p_fol), label_plots=(self.p_tr, self.p_fol), on_scale=self._replot)
        self.plots.removeItem(self.p_fol)  # shown once a tile is followed, beside Tr G: the plots keep their height
        self._fol_shown = False
        self.p_fol.addLegend(offset=(-10, 5))
        self.area_curve = self.p_fol.plot([], [], pen=pg.mkPen(theme.foreground, width=1.5), symbol="o", symbolSize=5, name="area (left)")
        self.change_marks = self.p_fol.plot([], [], pen=None, symbol="x", symbolSize=11, symbolPen=pg.mkPen("#D55E00", width=2))
        self.ham_curve = pg.PlotDataItem(
            [], [], pen=pg.mkPen("#0072B2", width=1.5, style=Qt.PenStyle.DashLine), symbol="t", symbolSize=6, symbolBrush="#0072B2"
        )
        self.ham_vb.addItem(self.ham_curve)
        self.p_fol.legend.addItem(self.ham_curve, "bits changed (right)")
        self.track = None
        self.reg_curve = self.p_reg.plot([], [], pen=pg.mkPen(theme.foreground, width=1.5), symbol="o", symbolSize=5)
        self.tr_curve = self.p_tr.plot([], [], pen=pg.mkPen(theme.foreground, width=1.5), symbol="o", symbolSize=5)
        self.accuracy: dict[str, np.ndarray] = {}
        self.acc_curves: list = []
        self.counts = None
        self.trace = None  # (epochs, mean Tr G)

    def set_run(self, bundle) -> None:
        run = bundle.run
        self.epochs = np.asarray(run.epochs, dtype=np.float64)
        self.accuracy = {}  # a regression run's recorded MSE takes the accuracy panel
        regress = run.data_task == "regress"  # a generator is fitted by MSE too
        for name in ("train_mse", "test_mse") if regress else ("train_accuracy", "test_accuracy"):
            vals = np.array([np.nan if v is None else float(v) for v in run.metrics(name)])
            if np.isfinite(vals).any():
                self.accuracy[name] = vals
        self.p_acc.setTitle("mean squared error (targets' units², log scale)" if regress else "accuracy")
        self.p_acc.setLogMode(False, regress)  # errors fall by decades; accuracy stays on [0, 1]
        if regress:
            self.p_acc.enableAutoRange(axis="y")
        else:
            self.p_acc.setYRange(0, 1.02, padding=0)
        self.note.setText("" if self.accuracy else f"this run recorded no {'MSE' if regress else 'accuracy'}")
        self.counts, self.trace = None, None
        self.p_reg.setTitle(REG_TITLE + REG_HINT)
        self.p_tr.setTitle(TR_TITLE + TR_HINT)
        self.track = None
        self.p_fol.setTitle(FOLLOW_TITLE)
        if self._fol_shown:
            self.plots.removeItem(self.p_fol)
            self.plots.removeItem(self.p_tr)
            self.plots.addItem(self.p_tr, row=2, col=0, colspan=2)
            self.p_tr.setXLink(self.p_acc)  # full width again: linked with the plots above
            self._fol_shown = False
        self.follow_btn.setEnabled(bundle.piecewise_affine)
        self.trace_btn.setEnabled(bundle.dataset is not None)
        self.tess_btn.setEnabled(bundle.piecewise_affine)
        self._replot()
        self.axis.set_epochs(self.epochs)

    def set_region_counts(self, counts: np.ndarray) -> None:
        """(E,) regions per epoch (NaN where not computed)."""
        self.counts = np.asarray(counts, dtype=np.float64)
        ok = np.isfinite(self.counts)
        self._replot()
        if ok.any():  # counts from 0: one cached epoch gets a readable axis
            self.p_reg.setYRange(0, 1.08 * float(self.counts[ok].max()), padding=0)
        self.p_reg.setTitle(REG_TITLE + ("" if ok.all() else REG_HINT))

    def set_trace(self, curve) -> None:
        """A ``TraceCurve`` (mean_trace per checkpoint)."""
        self.trace = (np.asarray(curve.epochs, np.float64), np.asarray(curve.mean_trace, np.float64))
        self._replot()
        self.p_tr.enableAutoRange(axis="y")
        self.p_tr.setTitle(TR_TITLE)

    def set_track(self, track) -> None:
        """A followed tile (:class:`app.jobs.follow.RegionTrack`): its area, pattern changes and class changes."""
        self.track = track
        if not self._fol_shown:
            self.plots.removeItem(self.p_tr)
            self.plots.addItem(self.p_tr, row=2, col=0)
            self.plots.addItem(self.p_fol, row=2, col=1)
            self._fol_shown = True
            # pyqtgraph links x ranges pixel for pixel, which half-width plots cannot share with full-width
            # ones: the pair is linked to each other and shows every epoch
            self.p_tr.setXLink(None)
            self.p_fol.setXLink(self.p_tr)
            self.axis.fit(self.p_tr)
        u = track.u
        changes = int(track.class_changed.sum())
        self.p_fol.setTitle(f"tile at ({u[0]:.3g}, {u[1]:.3g}): {changes} class change{'s' if changes != 1 else ''} ×")
        self._replot()

    def _replot(self) -> None:
        """Every curve at the axis' x values (linear or log)."""
        for c in self.acc_curves:
            self.p_acc.removeItem(c)
        if self.p_acc.legend is not None:
            self.p_acc.legend.clear()
        x = self.axis.x(self.epochs)
        self.acc_curves = [
            self.p_acc.plot(x, vals, pen=pg.mkPen(col, width=2), name=name.replace("_", " "), connect="finite")
            for (name, vals), col in zip(self.accuracy.items(), ("#0072B2", "#E69F00"))
        ]
        if self.counts is not None and len(self.counts) == len(x):
            ok = np.isfinite(self.counts)
            self.reg_curve.setData(x[ok], self.counts[ok])
        else:
            self.reg_curve.setData([], [])
        if self.trace is not None:
            self.tr_curve.setData(self.axis.x(self.trace[0]), self.trace[1])
        else:
            self.tr_curve.setData([], [])
        t = self.track
        if t is not None and len(t.epochs) == len(x):
            ok = np.isfinite(t.area) & (t.area > 0)
            self.area_curve.setData(x[ok], t.area[ok])
            ch = t.class_changed & ok
            self.change_marks.setData(x[ch], t.area[ch])
            hk = np.isfinite(t.hamming)
            self.ham_curve.setData(x[hk], t.hamming[hk])
            self.ham_vb.enableAutoRange(axis="y")
        else:
            for c in (self.area_curve, self.change_marks, self.ham_curve):
                c.setData([], [])

    def table(self) -> tuple[list[str], list]:
        """The tab's numbers, a row per checkpoint (:func:`app.export.tables.training_table`)."""
        trace = None
        if self.trace is not None:
            by_epoch = dict(zip(self.trace[0].tolist(), self.trace[1].tolist()))
            trace = np.array([by_epoch.get(e, np.nan) for e in self.epochs.tolist()])
        return training_table(self.epochs, self.accuracy, self.counts, trace)

    def export_csv(self, path) -> str:
        return str(write_csv(path, *self.table()))
