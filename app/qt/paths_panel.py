"""Paths tab: the kept paths (toggle, delete) and, for the selected one, its diagnostics along the path.

A path is traced by the controller (:func:`app.jobs.compute_paths`, the one path tracer) into the results,
and drawn over the slice by the 2D view (projected into the plane, labelled with how far it leaves it). This tab shows the
probabilities of every class, Tr G and the distance to the target along the path, and for image data
a strip of intermediate inputs.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QPushButton, QSplitter, QVBoxLayout, QWidget

from ..export.tables import path_table, write_csv
from ..model.results import Results
from ..model.state import PATH_NAMES, ViewerState
from ..render.images import display_images
from ..render.palette import path_color
from .theme import Theme, class_color

STRIP_IMAGES = 10
DISTANCE_TITLE = "distance to the target ‖d − x_t‖"
NO_TARGET_TITLE = "distance: none (no end point)"  # short: a long title widens the plots past the panel


class PathsPanel(QWidget):
    """List of paths (checkbox = visible, Delete) and plots of the selected path; ``csv_requested``: the
    Export CSV button (the window asks where, then calls :meth:`export_csv`)."""

    csv_requested = Signal()

    def __init__(self, state: ViewerState, results: Results, theme: Theme, parent: QWidget | None = None):
        super().__init__(parent)
        self.state, self.theme = state, theme
        self.bundle = None
        lay = QHBoxLayout(self)
        split = QSplitter(Qt.Orientation.Horizontal)
        lay.addWidget(split)
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addWidget(QLabel("Paths (pick a path tool in the toolbar, then click in the 2D slice)"))
        self.list = QListWidget()
        self.list.itemChanged.connect(self._on_item_changed)
        self.list.currentItemChanged.connect(lambda *_: self._show_selected())
        ll.addWidget(self.list, 1)
        row = QHBoxLayout()
        self.delete_btn = QPushButton("Delete")
        self.delete_btn.clicked.connect(self._delete)
        self.clear_btn = QPushButton("Delete all")
        self.clear_btn.clicked.connect(state.clear_paths)
        self.csv_btn = QPushButton("Export CSV…")
        self.csv_btn.setToolTip("The selected path's diagnostics, a row per point: u, v, distance from the plane and to the target, Tr G, p(class | x)")
        self.csv_btn.clicked.connect(self.csv_requested)
        row.addWidget(self.delete_btn)
        row.addWidget(self.clear_btn)
        row.addWidget(self.csv_btn)
        ll.addLayout(row)
        split.addWidget(left)
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        rl.addWidget(self.summary)
        self.plots = pg.GraphicsLayoutWidget()
        self.p_prob = self.plots.addPlot(row=0, col=0, title="class probabilities along the path")
        self.p_prob.setLabel("left", "p(class | x_t)")
        self.p_prob.setYRange(0, 1, padding=0.02)
        self.p_trace = self.plots.addPlot(row=1, col=0, title="Tr G(x_t)")
        self.p_dist = self.plots.addPlot(row=2, col=0, title=DISTANCE_TITLE)
        self.p_dist.setLabel("bottom", "step t")
        for p in (self.p_prob, self.p_trace, self.p_dist):
            p.setMenuEnabled(False)
            p.hideButtons()
        rl.addWidget(self.plots, 1)
        self.strip = pg.GraphicsLayoutWidget()
        self.strip.setFixedHeight(90)
        self.strip.setVisible(False)
        rl.addWidget(self.strip)
        split.addWidget(right)
        split.setSizes([260, 900])
        self.results: dict = {}
        self._specs: tuple = ()
        results.events.bundle.connect(self.set_run)
        results.events.paths.connect(lambda res: self.set_results(state.paths, res))
        state.events.paths.connect(lambda specs: self.set_results(specs, results.paths))

    def set_run(self, bundle) -> None:
        self.bundle = bundle
        self.results = {}
        self.list.clear()
        self._clear_plots()

    def _clear_plots(self) -> None:
        for p in (self.p_prob, self.p_trace, self.p_dist):
            p.clear()
        self.strip.clear()
        self.strip.setVisible(False)
        self.summary.setText("")

    def set_results(self, specs: tuple, results: dict) -> None:
        """Refresh the list from the state's paths and the window's computed results."""
        self._specs, self.results = tuple(specs), dict(results)
        current = self.list.currentItem()
        cur_id = current.data(Qt.ItemDataRole.UserRole) if current is not None else None
        self.list.blockSignals(True)
        self.list.clear()
        for spec in specs:
            res = results.get(spec.id)
            status = "computing…" if res is None else res.summary
            epoch = self.bundle.epochs[spec.epoch_index] if self.bundle is not None else spec.epoch_index
            it = QListWidgetItem(f"#{spec.id} {PATH_NAMES[spec.kind]} (epoch {epoch})")
            it.setToolTip(status)
            it.setData(Qt.ItemDataRole.UserRole, spec.id)
            it.setFlags(it.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            it.setCheckState(Qt.CheckState.Checked if spec.visible else Qt.CheckState.Unchecked)
            it.setForeground(QColor(path_color(spec.id)))
            self.list.addItem(it)
            if spec.id == cur_id or (cur_id is None and spec is specs[-1]):
                self.list.setCurrentItem(it)
        self.list.blockSignals(False)
        self._show_selected()

    def export_csv(self, path) -> str:
        """The selected path's diagnostics (:func:`app.export.tables.path_table`) as CSV."""
        from geometry.errors import SplineAtlasError

        it = self.list.currentItem()
        res = self.results.get(int(it.data(Qt.ItemDataRole.UserRole))) if it is not None else None
        if res is None:
            raise SplineAtlasError("select a traced path first; there is nothing to export yet.")
        names = self.bundle.class_names if self.bundle is not None else []
        return str(write_csv(path, *path_table(res, names)))

    def _on_item_changed(self, it: QListWidgetItem) -> None:
        self.state.set_path_visible(int(it.data(Qt.ItemDataRole.UserRole)), it.checkState() == Qt.CheckState.Checked)

    def _delete(self) -> None:
        it = self.list.currentItem()
        if it is not None:
            self.state.remove_path(int(it.data(Qt.ItemDataRole.UserRole)))

    def _show_selected(self) -> None:
        self._clear_plots()
        it = self.list.currentItem()
        if it is None:
            return
        res = self.results.get(int(it.data(Qt.ItemDataRole.UserRole)))
        if res is None:
            self.summary.setText("computing…")
            return
        self.summary.setText(res.summary + f"; farthest from the slice plane: {float(res.off_plane.max()):.3g}")
        t = res.steps
        names = self.bundle.class_names if self.bundle is not None else []
        for c in range(res.probs.shape[1]):
            self.p_prob.plot(t, res.probs[:, c], pen=pg.mkPen(class_color(c), width=2), name=names[c] if c < len(names) else str(c))
        if np.isfinite(res.trace_g).any():
            self.p_trace.plot(t, res.trace_g, pen=pg.mkPen(self.theme.foreground, width=1.5))
        has_target = bool(np.isfinite(res.distance).any())
        self.p_dist.setTitle(DISTANCE_TITLE if has_target else NO_TARGET_TITLE)
        if has_target:
            self.p_dist.plot(t, res.distance, pen=pg.mkPen(self.theme.foreground, width=1.5))
        shape = self.bundle.image_shape if self.bundle is not None else None
        if shape is not None:
            idx = np.unique(np.linspace(0, len(res.X) - 1, min(STRIP_IMAGES, len(res.X))).round().astype(int))
            shown = display_images(res.X[idx], shape, self.bundle.preprocessing)  # one scale for the strip
            for k in range(len(idx)):
                vb = self.strip.addViewBox(row=0, col=k, lockAspect=True, enableMouse=False)
                vb.invertY(True)
                vb.addItem(pg.ImageItem(np.swapaxes(shown.images[k], 0, 1), levels=(shown.vmin, shown.vmax)))
            self.strip.setVisible(True)
