"""Paths tab: the kept paths (toggle, delete) and, for the selected one, its diagnostics along the path.

A path is traced in a worker by :func:`compute_path` (engine calls only) and drawn over the slice by
the 2D view (projected into the plane, labelled with how far it leaves it). This tab shows the
probabilities of every class, Tr G and the distance to the target along the path, and for image data
a strip of intermediate inputs.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
import torch
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QPushButton, QSplitter,
                               QVBoxLayout, QWidget)

from geometry.errors import SplineAtlasError

from ..state import PATH_NAMES, PathSpec, ViewerState
from .theme import Theme, class_color

STRIP_IMAGES = 10
SEGMENT_SAMPLES = 200


@dataclass(frozen=True)
class PathResult:
    """A traced path. X: (n, D) input points; u: (n, 2) their projections into the slice; off_plane: (n,)
    distance of each point from the slice plane; probs: (n, C); trace_g: (n,) Tr G (NaN if not computed);
    distance: (n,) ||target - x_t|| (NaN without a target); summary: one line (reached? steps, classes)."""

    X: np.ndarray
    u: np.ndarray
    off_plane: np.ndarray
    probs: np.ndarray
    trace_g: np.ndarray
    distance: np.ndarray
    summary: str


def _leaf_paths():
    try:
        return importlib.import_module("geometry.leaf_paths")
    except ImportError:
        return None


def _region_paths():
    try:
        return importlib.import_module("geometry.region_paths")
    except ImportError:
        return None


def path_kind_available(kind: str) -> bool:
    """Whether the engine for this path kind is present (segment needs only a forward pass)."""
    if kind == "segment":
        return True
    if kind in ("horizontal", "normal"):
        lp = _leaf_paths()
        return lp is not None and hasattr(lp, f"{kind}_paths")
    if kind == "region":
        rp = _region_paths()
        return rp is not None and hasattr(rp, "region_path")
    return False


def _diagnostics(net, X: np.ndarray, target: np.ndarray | None, cancel=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """probs (n, C), Tr G (n,), distance to target (n,) along the points X (n, D)."""
    from geometry.local_data_matrix import local_data_matrix

    ldm = local_data_matrix(net, X, cancel=cancel)
    dist = np.full(len(X), np.nan) if target is None else np.linalg.norm(X - target[None], axis=1)
    return ldm.probs, ldm.trace, dist


def compute_path(bundle, slice_, spec: PathSpec, progress=None, cancel=None) -> PathResult:
    """Trace ``spec`` on the run's checkpoint ``spec.epoch_index`` (worker thread; engine calls only)."""
    net = bundle.run.network(spec.epoch_index)
    s = slice_.to_input(np.asarray(spec.start, np.float64)[None])[0]
    d = None if spec.end is None else slice_.to_input(np.asarray(spec.end, np.float64)[None])[0]
    summary = ""
    if spec.kind == "segment":
        t = np.linspace(0.0, 1.0, SEGMENT_SAMPLES)[:, None]
        X = s[None] * (1 - t) + d[None] * t
        summary = f"straight segment, {SEGMENT_SAMPLES} samples"
    elif spec.kind in ("horizontal", "normal"):
        lp = _leaf_paths()
        if lp is None:
            raise SplineAtlasError("leaf paths are not available in this build.")
        fn = getattr(lp, f"{spec.kind}_paths")
        kwargs = dict(steps=spec.steps, step_size=spec.step_size * _scale(slice_, spec), progress=progress, cancel=cancel)
        res = fn(net, s[None], d[None], **kwargs) if spec.kind == "horizontal" else fn(net, s[None], **kwargs)
        X = _path_points(res)
        summary = _path_summary(res)
    elif spec.kind == "region":
        rp = _region_paths()
        if rp is None:
            raise SplineAtlasError("same-class region paths are not available in this build.")
        res = rp.region_path(net, s, d, cancel=cancel)
        X = np.asarray(res.points if hasattr(res, "points") else res.anchors, np.float64)
        ok = bool(getattr(res, "success", getattr(res, "succeeded", True)))
        summary = f"region path, {len(X)} anchors, {'stays in the class' if ok else 'did not succeed within the budget'}"
    else:
        raise SplineAtlasError(f"unknown path kind {spec.kind!r}.")
    if cancel is not None and cancel():
        raise SplineAtlasError("cancelled")
    probs, trace, dist = _diagnostics(net, X, d, cancel)
    return PathResult(X, slice_.project(X), slice_.distance_to_plane(X), probs, trace, dist, summary)


def _scale(slice_, spec) -> float:
    """Step sizes are given relative to the picked segment's length (or 1 for normal paths)."""
    if spec.end is None:
        return 1.0
    return float(np.linalg.norm(np.subtract(spec.end, spec.start))) or 1.0


def _path_points(res) -> np.ndarray:
    pts = getattr(res, "points", None)
    if pts is None:
        pts = getattr(res, "path")
    pts = np.asarray(pts.detach().cpu() if isinstance(pts, torch.Tensor) else pts, np.float64)
    if pts.ndim == 3:  # (paths, steps, D) or (steps, paths, D): one path was asked for
        pts = pts[0] if pts.shape[0] == 1 else pts[:, 0]
    lengths = getattr(res, "lengths", None)
    if lengths is not None:
        pts = pts[: int(np.asarray(lengths).reshape(-1)[0])]
    return pts


def _path_summary(res) -> str:
    parts = []
    for name in ("reached", "stagnated"):
        v = getattr(res, name, None)
        if v is not None:
            parts.append(f"{name}: {bool(np.asarray(v).reshape(-1)[0])}")
    return ", ".join(parts)


class PathsPanel(QWidget):
    """List of paths (checkbox = visible, Delete) and plots of the selected path."""

    def __init__(self, state: ViewerState, theme: Theme, parent: QWidget | None = None):
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
        row.addWidget(self.delete_btn)
        row.addWidget(self.clear_btn)
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
        self.p_dist = self.plots.addPlot(row=2, col=0, title="distance to the target ‖d − x_t‖")
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
        from .main_window import PATH_COLORS

        for spec in specs:
            res = results.get(spec.id)
            status = "computing…" if res is None else res.summary
            it = QListWidgetItem(f"#{spec.id} {PATH_NAMES[spec.kind]} (epoch index {spec.epoch_index}) — {status}")
            it.setData(Qt.ItemDataRole.UserRole, spec.id)
            it.setFlags(it.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            it.setCheckState(Qt.CheckState.Checked if spec.visible else Qt.CheckState.Unchecked)
            it.setForeground(QColor(PATH_COLORS[(spec.id - 1) % len(PATH_COLORS)]))
            self.list.addItem(it)
            if spec.id == cur_id or (cur_id is None and spec is specs[-1]):
                self.list.setCurrentItem(it)
        self.list.blockSignals(False)
        self._show_selected()

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
        t = np.arange(len(res.X))
        names = self.bundle.class_names if self.bundle is not None else []
        for c in range(res.probs.shape[1]):
            self.p_prob.plot(t, res.probs[:, c], pen=pg.mkPen(class_color(c), width=2),
                             name=names[c] if c < len(names) else str(c))
        if np.isfinite(res.trace_g).any():
            self.p_trace.plot(t, res.trace_g, pen=pg.mkPen(self.theme.foreground, width=1.5))
        if np.isfinite(res.distance).any():
            self.p_dist.plot(t, res.distance, pen=pg.mkPen(self.theme.foreground, width=1.5))
        shape = self.bundle.image_shape if self.bundle is not None else None
        if shape is not None:
            idx = np.unique(np.linspace(0, len(res.X) - 1, min(STRIP_IMAGES, len(res.X))).round().astype(int))
            for k, i in enumerate(idx):
                vb = self.strip.addViewBox(row=0, col=k, lockAspect=True, enableMouse=False)
                vb.invertY(True)
                vb.addItem(pg.ImageItem(res.X[i].reshape(shape[-2:]).T))
            self.strip.setVisible(True)
