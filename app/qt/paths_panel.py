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
    """A traced path.

    X: (n, D) input points along the path (what is drawn); u: (n, 2) their projections into the slice;
    off_plane: (n,) distance of each point from the slice plane. Diagnostics per step t (m steps):
    steps: (m,) step numbers; probs: (m, C) p(y|x_t); trace_g: (m,) Tr G(x_t); distance: (m,)
    ||d − x_t|| (NaN without a target). summary: one line (kind, steps, reached/stagnated, classes).
    """

    X: np.ndarray
    u: np.ndarray
    off_plane: np.ndarray
    steps: np.ndarray
    probs: np.ndarray
    trace_g: np.ndarray
    distance: np.ndarray
    summary: str
    marks: np.ndarray | None = None   # (m, 2) slice coordinates of exact region crossings (segments), or None


def _module(name: str):
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def path_kind_available(kind: str) -> bool:
    """Whether the engine for this path kind is present (a straight segment needs only forward passes)."""
    if kind == "segment":
        return _module("geometry.local_data_matrix") is not None
    if kind in ("horizontal", "normal"):
        lp = _module("geometry.leaf_paths")
        return lp is not None and hasattr(lp, f"{kind}_paths")
    if kind == "region":
        rp = _module("geometry.region_paths")
        return rp is not None and hasattr(rp, "region_path")
    return False


LEAF_KINDS = ("horizontal", "normal")


def compute_leaf_paths(bundle, slice_, specs, progress=None, cancel=None) -> dict[int, PathResult]:
    """Trace leaf paths ``specs`` (one kind, one epoch, one step budget) in a single batched engine call;
    returns {spec.id: PathResult}. Each path is what it would be alone: its own step size and, for a
    normal path, the random direction seeded by its id."""
    lp = _module("geometry.leaf_paths")
    if lp is None:
        raise SplineAtlasError("leaf paths are not available in this build.")
    kinds = {(sp.kind, sp.epoch_index, sp.steps) for sp in specs}
    if len(kinds) != 1 or next(iter(kinds))[0] not in LEAF_KINDS:
        raise SplineAtlasError("a batch of leaf paths needs one kind, epoch and step budget.")
    kind, epoch_index, steps = next(iter(kinds))
    net = bundle.network(epoch_index)
    S = slice_.to_input(np.array([sp.start for sp in specs], np.float64))
    if kind == "horizontal":
        Dst = slice_.to_input(np.array([sp.end for sp in specs], np.float64))
        alpha = np.array([sp.step_size for sp in specs]) * np.maximum(np.linalg.norm(Dst - S, axis=1), 1e-12)
        res = lp.horizontal_paths(net, S, Dst, step_size=alpha, max_steps=steps, progress=progress, cancel=cancel)
    else:
        alpha = np.array([sp.step_size for sp in specs], np.float64)
        W = np.concatenate([lp.random_directions(1, S.shape[1], seed=sp.id) for sp in specs])
        res = lp.normal_paths(net, S, W, step_size=alpha, steps=steps, progress=progress, cancel=cancel)
    out = {}
    for i, sp in enumerate(specs):
        n = int(res.num_steps[i])
        X = np.asarray(res.points[i][res.point_steps <= n], np.float64)
        summary = (f"{kind} leaf path, {n} steps of {alpha[i]:.3g}, {lp.STATUS_NAMES[int(res.status[i])]}, "
                   f"classes {_class_sequence(res.predicted[i, :n + 1])}")
        dist = res.distance[i, :n + 1] if kind == "horizontal" else np.full(n + 1, np.nan)
        out[sp.id] = PathResult(X, slice_.project(X), slice_.distance_to_plane(X), np.arange(n + 1),
                                res.probs[i, :n + 1], res.trace[i, :n + 1], dist, summary)
    return out


def compute_path(bundle, slice_, spec: PathSpec, progress=None, cancel=None) -> PathResult:
    """Trace ``spec`` on the run's checkpoint ``spec.epoch_index`` (worker thread; engine calls only).

    Step sizes: ``spec.step_size`` times the picked segment's length for horizontal paths (so a path
    makes sense at any zoom), in input units for normal paths.
    """
    if spec.kind in LEAF_KINDS:
        return compute_leaf_paths(bundle, slice_, [spec], progress, cancel)[spec.id]
    net = bundle.network(spec.epoch_index)
    s = slice_.to_input(np.asarray(spec.start, np.float64)[None])[0]
    d = None if spec.end is None else slice_.to_input(np.asarray(spec.end, np.float64)[None])[0]
    if spec.kind == "segment":
        from geometry.local_data_matrix import local_data_matrix

        t = np.linspace(0.0, 1.0, SEGMENT_SAMPLES)[:, None]
        X = s[None] * (1 - t) + d[None] * t
        ldm = local_data_matrix(net, X, cancel=cancel)
        classes = _class_sequence(ldm.predicted)
        marks, walk_text = None, ""
        lw = _module("geometry.regions.linewalk")
        if lw is not None and hasattr(lw, "line_walk") and bundle.piecewise_affine:
            try:
                walk = lw.line_walk(net, s, d, cancel=cancel)
            except SplineAtlasError as exc:
                walk_text = f"; no exact line walk ({exc})"
            else:
                marks = slice_.project(walk.points[1:-1])
                walk_text = (f"; exact line walk: {walk.n_regions} regions, "
                             f"mean Hamming step {float(np.mean(walk.hamming)) if len(walk.hamming) else 0:.2f}")
        return PathResult(X, slice_.project(X), slice_.distance_to_plane(X), np.arange(len(X)), ldm.probs,
                          ldm.trace, np.linalg.norm(X - d[None], axis=1),
                          f"straight segment, classes {classes}{walk_text}", marks)
    if spec.kind == "region":
        rp = _module("geometry.region_paths")
        if rp is None:
            raise SplineAtlasError("same-class region paths are not available in this build.")
        res = rp.region_path(net, s, d, progress=progress, cancel=cancel)
        A = np.asarray(res.anchors, np.float64)
        per = max(2, min(32, 400 // max(len(A) - 1, 1)))
        t = np.linspace(0.0, 1.0, per, endpoint=False)[:, None]
        X = np.concatenate([a0[None] * (1 - t) + a1[None] * t for a0, a1 in zip(A[:-1], A[1:])] + [A[-1:]])
        from geometry.local_data_matrix import local_data_matrix

        ldm = local_data_matrix(net, X, cancel=cancel)
        return PathResult(X, slice_.project(X), slice_.distance_to_plane(X), np.arange(len(X)), ldm.probs,
                          ldm.trace, np.linalg.norm(X - d[None], axis=1),
                          f"same-class region path (class {res.label}), {len(A)} anchors, depth {res.depth}: "
                          f"{res.message}")
    raise SplineAtlasError(f"unknown path kind {spec.kind!r}.")


def _class_sequence(pred) -> str:
    """'0 → 2 → 1' : the predicted classes along a path, consecutive repeats merged."""
    pred = np.asarray(pred).reshape(-1)
    if len(pred) == 0:
        return "—"
    keep = np.concatenate([[True], pred[1:] != pred[:-1]])
    seq = [str(int(c)) for c in pred[keep]]
    return " → ".join(seq if len(seq) <= 8 else seq[:4] + ["…"] + seq[-3:])


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
            epoch = self.bundle.epochs[spec.epoch_index] if self.bundle is not None else spec.epoch_index
            it = QListWidgetItem(f"#{spec.id} {PATH_NAMES[spec.kind]} (epoch {epoch})")
            it.setToolTip(status)
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
        t = res.steps
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
