"""Training-dynamics plots for the Training tab: local complexity (train/test/random), exact region
density around data vs on the decision boundary (and their ratio: tiles migrating to the boundary),
mean distance to the nearest region boundary per layer — against epoch, with a cursor linked to the
epoch slider (drag it to scrub).

The numbers come from :func:`geometry.dynamics.run_dynamics` (cached on disk per checkpoint hash), run
in the window's worker pool; curves grow as checkpoints finish. The window puts the widget under the
Training tab's plots.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from geometry.errors import SplineAtlasError

from ..render.palette import BOUNDARY_COLOR as BOUNDARY
from ..render.palette import CLASS_COLORS as CLASS
from ..render.palette import NEUTRAL_COLOR as NEUTRAL
from .dialogs import save_csv
from .epoch_axis import EpochAxis


class _Relay(QObject):
    point = Signal(int, object)


class DynamicsPlots(QWidget):
    """LC / region density / boundary-distance curves of the open run; ``ctx``: an :class:`app.qt.context.ViewContext`."""

    def __init__(self, ctx, parent: QWidget | None = None):
        super().__init__(parent)
        self.ctx = ctx
        self.state = ctx.state
        self.results: dict[int, object] = {}
        self.epochs = np.zeros(0)
        self._relay = _Relay(self)
        self._relay.point.connect(self._on_point)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        self.compute_btn = QPushButton("Compute local complexity and region density")
        self.compute_btn.setToolTip(
            "For every checkpoint: LC at train/test/random points (orthoplex frame), exact "
            "regions per small square around data, on the decision boundary and at random "
            "points, distance to the nearest region boundary. Cached on disk."
        )
        self.compute_btn.clicked.connect(self.compute)
        self.cancel_btn = QPushButton("Stop")
        self.cancel_btn.setEnabled(False)
        self.cancel_btn.clicked.connect(self.stop)
        self.csv_btn = QPushButton("Export CSV…")
        self.csv_btn.setToolTip("These curves as the table splineatlas dynamics writes (dynamics.csv): a row per checkpoint computed")
        self.csv_btn.clicked.connect(lambda: save_csv(self, self.ctx.results, "Export the dynamics curves", "dynamics.csv", self.export_csv))
        self.note = QLabel("")
        row.addWidget(self.compute_btn)
        row.addWidget(self.cancel_btn)
        row.addWidget(self.csv_btn)
        row.addStretch(1)
        row.addWidget(self.note)
        lay.addLayout(row)
        self.plots = pg.GraphicsLayoutWidget()
        lay.addWidget(self.plots, 1)
        self.p_lc = self.plots.addPlot(row=0, col=0, title="local complexity (hyperplanes crossing the frame)")
        self.p_den = self.plots.addPlot(row=0, col=1, title="exact regions per square")
        self.p_ratio = self.plots.addPlot(row=1, col=0, title="region density: boundary / data")
        self.p_bd = self.plots.addPlot(row=1, col=1, title="distance to nearest region boundary")
        for p in (self.p_lc, self.p_den, self.p_ratio, self.p_bd):
            p.setMenuEnabled(False)
            p.hideButtons()
            p.showGrid(x=True, y=True, alpha=0.2)
            p.addLegend(offset=(-10, 10))
            p.getAxis("bottom").enableAutoSIPrefix(False)
        self.axis = EpochAxis(self.state, (self.p_lc, self.p_den, self.p_ratio, self.p_bd), label_plots=(self.p_ratio, self.p_bd), on_scale=self._redraw)
        self.curves = {}
        for key, plot, col, style, label in (
            ("lc_train_total", self.p_lc, CLASS[0], None, "train"),
            ("lc_test_total", self.p_lc, CLASS[5], None, "test"),
            ("lc_random_total", self.p_lc, NEUTRAL, None, "random"),
            ("density_data", self.p_den, CLASS[0], None, "around data"),
            ("density_boundary", self.p_den, BOUNDARY, None, "on the decision boundary"),
            ("density_random", self.p_den, NEUTRAL, None, "random points"),
            ("ratio", self.p_ratio, "#444444", None, "boundary / data"),
        ):
            self.curves[key] = plot.plot([], [], pen=pg.mkPen(col, width=2), symbol="o", symbolSize=4, symbolBrush=col, name=label)
        self.bd_curves: list = []
        self.state.events.run.connect(lambda *_: self.reset())

    # -- data -----------------------------------------------------------------------------------
    def reset(self) -> None:
        self.ctx.work.cancel("dynamics")
        self.results = {}
        b = self.ctx.results.bundle
        self.epochs = np.asarray(b.epochs, dtype=np.float64) if b is not None else np.zeros(0)
        self._redraw()
        ok = b is not None and b.dataset is not None and b.piecewise_affine
        self.compute_btn.setEnabled(ok)
        self.note.setText("" if ok or b is None else "needs a piecewise-affine run with a dataset")

    def stop(self) -> None:
        """Stop: the engine checks between its steps and ends within a fraction of a second (measured 0.1 s
        on digits); the pool drops a cancelled job's result, so the panel says so itself, at once."""
        self.ctx.work.cancel("dynamics")
        self.cancel_btn.setEnabled(False)
        self.note.setText(f"stopped ({len(self.results)} checkpoints computed)")

    def compute(self) -> None:
        """Compute (or load from the cache) every checkpoint's numbers in the background."""
        from geometry.dynamics import run_dynamics

        b = self.ctx.results.bundle
        if b is None:
            return
        self.epochs = np.asarray(b.epochs, dtype=np.float64)
        run = b.locked_run()
        relay = self._relay
        self.cancel_btn.setEnabled(True)
        self.note.setText("computing…")

        def job(progress, cancel):
            return run_dynamics(run, progress=progress, cancel=cancel, on_checkpoint=lambda i, r: relay.point.emit(i, r))

        def done(curves):
            self.cancel_btn.setEnabled(False)
            self.note.setText(f"{len(curves.points)} checkpoints")

        def failed(exc):
            self.cancel_btn.setEnabled(False)
            self.note.setText(f"stopped: {exc}")

        self.ctx.work.submit("dynamics", "Training dynamics (LC, region density)", job, on_done=done, on_error=failed)

    def _on_point(self, i: int, res) -> None:
        self.results[i] = res
        self._redraw()

    def _redraw(self) -> None:
        idx = sorted(self.results)
        e = np.array([self.results[i].epoch for i in idx], dtype=np.float64)

        def col(name):
            if name.endswith("_total"):
                return np.array([sum(getattr(self.results[i], name[:-6])) for i in idx], dtype=np.float64)
            return np.array([getattr(self.results[i], name) for i in idx], dtype=np.float64)

        for key, curve in self.curves.items():
            y = col("density_boundary") / col("density_data") if key == "ratio" and idx else (col(key) if idx else e)
            ok = np.isfinite(y)
            curve.setData(self.axis.x(e[ok]), y[ok])
        for c in self.bd_curves:
            self.p_bd.removeItem(c)
        self.bd_curves = []
        if idx:
            bd = np.array([self.results[i].boundary_distance for i in idx], dtype=np.float64)
            for l in range(bd.shape[1]):
                c = pg.mkColor(pg.colormap.get("plasma").map(0.1 + 0.8 * l / max(bd.shape[1] - 1, 1), mode="qcolor"))
                self.bd_curves.append(self.p_bd.plot(self.axis.x(e), bd[:, l], pen=pg.mkPen(c, width=2), name=f"layer {l + 1}"))
        for p in (self.p_lc, self.p_den, self.p_ratio, self.p_bd):
            p.enableAutoRange(axis="y")
        self.axis.set_epochs(self.epochs)

    # -- numbers out ------------------------------------------------------------------------------
    def computed(self):
        """The checkpoints computed so far as :class:`geometry.dynamics.DynamicsCurves` (all of them once
        done), or None before any."""
        from geometry.dynamics import DynamicsCurves

        b = self.ctx.results.bundle
        if not self.results or b is None:
            return None
        return DynamicsCurves(b.run.name, tuple(self.results[i] for i in sorted(self.results)))

    def export_csv(self, path) -> str:
        """The same table as ``splineatlas dynamics`` writes (dynamics.csv), of the checkpoints computed."""
        curves = self.computed()
        if curves is None:
            raise SplineAtlasError("compute the local complexity and region density first; there is nothing to export yet.")
        return str(curves.to_csv(path))
