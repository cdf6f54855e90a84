"""Regions panel: distributions of Chebyshev radii and active-bit counts of the regions holding
train / test / adversarial points (Liu et al. Fig. 6, Tables 6-7), plus a summary table.

Self-contained: it computes nothing. Push data with :meth:`RegionsPanel.set_stats` (a
:class:`geometry.regions.RegionStats`), :meth:`RegionsPanel.set_result` (an :class:`app.jobs.RegionStatsResult`)
or :meth:`RegionsPanel.set_data` (plain arrays per set); :meth:`clear` empties it. Its "Compute" row asks
for the data: ``compute_requested`` carries ``{"n": points per set, "sets": (names...), "active": bool}``
and the window runs :func:`app.jobs.region_stats` (``geometry.regions.region_stats`` on train / test /
DeepFool points) in a worker: a few hundred LPs per point on 64-D inputs when active bits are asked for.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QHeaderView, QLabel, QPushButton, QSpinBox, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

SET_COLORS = {"train": "#0072B2", "test": "#E69F00", "adversarial": "#D55E00"}
_FALLBACK = ["#009E73", "#CC79A7", "#56B4E9", "#7f7f7f"]


class RegionsPanel(QWidget):
    """Two histograms (Chebyshev radius, active bits) with one coloured series per point set, and a row
    of controls whose "Compute" button emits ``compute_requested(dict)``."""

    compute_requested = Signal(object)
    csv_requested = Signal()

    def __init__(self, parent: QWidget | None = None, background=None, bins: int = 20):
        super().__init__(parent)
        self.bins = int(bins)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        row = QHBoxLayout()
        self.n_spin = QSpinBox()
        self.n_spin.setRange(1, 5000)
        self.n_spin.setValue(20)
        self.n_spin.setSuffix(" points per set")
        self.n_spin.setToolTip("Random sample (fixed seed) of the training and test points; the adversarial set is DeepFool applied to the test sample")
        row.addWidget(self.n_spin)
        self.set_checks: dict[str, QCheckBox] = {}
        for name, tip in (
            ("train", "training points"),
            ("test", "test points"),
            ("adversarial", "DeepFool-perturbed test points (just past the decision boundary)"),
        ):
            cb = QCheckBox(name)
            cb.setChecked(True)
            cb.setToolTip(tip)
            cb.toggled.connect(self._update_button)
            row.addWidget(cb)
            self.set_checks[name] = cb
        self.active_check = QCheckBox("active bits")
        self.active_check.setChecked(True)
        self.active_check.setToolTip(
            "Also count each region's active bits (facets): hundreds of LPs per point on image inputs. Off: Chebyshev radii only (one LP per point)"
        )
        row.addWidget(self.active_check)
        self.compute_btn = QPushButton("Compute")
        self.compute_btn.setToolTip("Region statistics of the current checkpoint, in the background (progress and Cancel in the status bar)")
        self.compute_btn.clicked.connect(self._request)
        row.addWidget(self.compute_btn)
        self.csv_btn = QPushButton("Export CSV…")
        self.csv_btn.setToolTip("The per-point table and its summary, the files splineatlas region-stats writes (points.csv, summary.csv)")
        self.csv_btn.clicked.connect(self.csv_requested)
        row.addWidget(self.csv_btn)
        row.addStretch(1)
        lay.addLayout(row)
        self._available, self._why = True, ""
        self.title = QLabel("Regions: no statistics yet")
        self.title.setWordWrap(True)
        lay.addWidget(self.title)
        self.radius_plot = self._plot(background, "Chebyshev radius of the region", "points")
        self.active_plot = self._plot(background, "active bits (facets) of the region", "points")
        lay.addWidget(self.radius_plot, 1)
        lay.addWidget(self.active_plot, 1)
        self.table = QTableWidget(0, 6)
        self.table.setHorizontalHeaderLabels(["set", "n", "radius mean", "radius sd", "radius min..max", "active mean"])
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setVisible(False)
        self.table.setMaximumHeight(140)
        lay.addWidget(self.table)
        self.series: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.result = None

    @staticmethod
    def _plot(background, xlabel: str, ylabel: str) -> pg.PlotWidget:
        w = pg.PlotWidget(background=background)
        item = w.getPlotItem()
        item.setMenuEnabled(False)
        item.hideButtons()
        item.setLabel("bottom", xlabel)
        item.setLabel("left", ylabel)
        item.addLegend(offset=(-10, 10))
        w.setMinimumHeight(150)
        return w

    # -- controls ------------------------------------------------------------------------------
    def request(self) -> dict:
        """What the controls ask for: {"n": int, "sets": tuple of names, "active": bool}."""
        return {
            "n": int(self.n_spin.value()),
            "sets": tuple(k for k, cb in self.set_checks.items() if cb.isChecked()),
            "active": bool(self.active_check.isChecked()),
        }

    def set_available(self, ok: bool, why: str = "") -> None:
        """Enable the Compute button (``why``: shown as the title when it is not available)."""
        self._available, self._why = bool(ok), why
        self._update_button()
        if not ok and why:
            self.title.setText(why)

    def set_computing(self, text: str) -> None:
        self.title.setText(text)

    def _update_button(self, *_) -> None:
        self.compute_btn.setEnabled(self._available and any(cb.isChecked() for cb in self.set_checks.values()))

    def _request(self) -> None:
        req = self.request()
        if req["sets"]:
            self.compute_requested.emit(req)

    # -- data in -------------------------------------------------------------------------------
    def set_result(self, res) -> None:
        """Show an :class:`app.jobs.RegionStatsResult` (its title names the epoch and the sample)."""
        self.result = res
        self.set_stats(
            res.stats,
            f"Regions of {res.n} points per set at epoch {res.epoch} "
            f"(checkpoint {res.epoch_index + 1}): " + ", ".join(res.sets) + ("" if res.active else " (radii only)"),
        )

    def set_stats(self, stats, title: str | None = None) -> None:
        """Show a :class:`geometry.regions.RegionStats` (fields set_names, radius, active; active -1 = not computed)."""
        names = list(dict.fromkeys(np.asarray(stats.set_names).tolist()))
        radii = {s: np.asarray(stats.radius)[np.asarray(stats.set_names) == s] for s in names}
        act = np.asarray(stats.active, np.float64)
        act = np.where(act >= 0, act, np.nan)
        active = {s: act[np.asarray(stats.set_names) == s] for s in names}
        self.set_data(radii, active, title)

    def set_data(self, radii: dict[str, np.ndarray], active: dict[str, np.ndarray], title: str | None = None) -> None:
        """radii / active: {set name: (n,) array} (same keys). Non-finite values are left out of the plots."""
        if set(radii) != set(active):
            raise ValueError("radii and active must have the same set names")
        self.series = {s: (np.asarray(radii[s], np.float64).reshape(-1), np.asarray(active[s], np.float64).reshape(-1)) for s in radii}
        self._redraw()
        n = sum(len(r) for r, _ in self.series.values())
        self.title.setText(title or f"Regions of {n} points: " + ", ".join(self.series))

    def clear(self) -> None:
        self.series = {}
        self.result = None
        self._redraw()
        self.title.setText("Regions: no statistics yet")

    def export_csv(self, path) -> str:
        """The statistics shown, as ``splineatlas region-stats`` writes them: a row per point at ``path``
        and the per-set summary (mean, sd, max, min, n) beside it as ``<name>_summary.csv``."""
        from pathlib import Path

        from geometry.errors import SplineAtlasError

        if self.result is None:
            raise SplineAtlasError("compute the region statistics first; there is nothing to export yet.")
        path = Path(path)
        summary = path.with_name(path.stem + "_summary.csv")
        self.result.stats.write_csv(path)
        self.result.stats.write_summary_csv(summary)
        return f"{path} and {summary.name}"

    # -- drawing -------------------------------------------------------------------------------
    def _color(self, name: str, i: int) -> str:
        return SET_COLORS.get(name, _FALLBACK[i % len(_FALLBACK)])

    def _hist(self, plot: pg.PlotWidget, k: int, integer: bool) -> None:
        item = plot.getPlotItem()
        item.clear()
        if item.legend is not None:
            item.legend.clear()
        vals = [v[k][np.isfinite(v[k])] for v in self.series.values()]
        allv = np.concatenate(vals) if vals else np.zeros(0)
        if allv.size == 0:
            return
        lo, hi = float(allv.min()), float(allv.max())
        if integer:
            step = max(1.0, np.ceil((hi - lo + 1) / self.bins))
            edges = np.arange(lo - 0.5, hi + step + 0.5, step)
        else:
            edges = np.linspace(lo, hi if hi > lo else lo + 1.0, self.bins + 1)
        for i, (name, v) in enumerate(zip(self.series, vals)):
            counts, _ = np.histogram(v, bins=edges)
            col = pg.mkColor(self._color(name, i))
            fill = pg.mkColor(col)
            fill.setAlpha(90)
            curve = pg.PlotDataItem(edges, counts, stepMode="center", fillLevel=0, brush=fill, pen=pg.mkPen(col, width=2), name=f"{name} (n={len(v)})")
            item.addItem(curve)

    def _redraw(self) -> None:
        self._hist(self.radius_plot, 0, integer=False)
        self._hist(self.active_plot, 1, integer=True)
        self.table.setRowCount(len(self.series))
        for row, (name, (r, a)) in enumerate(self.series.items()):
            rf = r[np.isfinite(r)]
            cells = [
                name,
                str(len(r)),
                f"{rf.mean():.4g}" if rf.size else "-",
                f"{rf.std():.3g}" if rf.size else "-",
                f"{rf.min():.3g} .. {rf.max():.3g}" if rf.size else "-",
                f"{np.nanmean(a):.1f}" if np.isfinite(a).any() else "-",
            ]
            for col, text in enumerate(cells):
                self.table.setItem(row, col, QTableWidgetItem(text))
