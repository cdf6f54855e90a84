"""Side panel of the 3D tab: edits the Qt-free :class:`app.model.view3d.View3DState` (and shows a summary).

3D slice (input space / PCA / point + DeepFool direction), camera, what is drawn, face filters (one
layer, near the decision boundary), exploded view, opacity, the clipping plane, and the cell budget.
"""

from __future__ import annotations

import numpy as np

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QGroupBox, QLabel, QPushButton, QSlider, QSpinBox, QVBoxLayout, QWidget

from ..model.view3d import BOX_SCALE_RANGE, MANIFOLD_SAMPLERS, Slice3Choice, View3DState

SLICE3_LABELS = {
    "input": "Input space (3 inputs)",
    "pca": "PCA (3 components)",
    "deepfool": "Point + DeepFool dir. + 2 random",
    "random": "Random directions (seed)",
}
SAMPLER_LABELS = {
    "none": "none",
    "prior": "latent prior (uniform)",
    "magnet": "MaGNET (uniform on the manifold)",
    "polarity": "polarity (density ∝ volume^ρ)",
}
MANIFOLD_HELP = "Drag: rotate · Shift+drag: pan · wheel: zoom · click the manifold: inspect its latent point (2D tab)"
HELP = "Drag: rotate · Shift+drag: pan · wheel: zoom · Ctrl+drag: move the clipping plane · click a surface: inspect it (the 2D tab shows the plane through it)"


class View3DControls(QWidget):
    """Controls of the 3D view. ``reset_camera`` is emitted by the Reset camera button."""

    reset_camera = Signal()

    def __init__(self, state3d: View3DState, parent: QWidget | None = None):
        super().__init__(parent)
        self.s3 = state3d
        self.setMinimumWidth(250)
        self.setMaximumWidth(300)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)

        g = self.slice_group = QGroupBox("3D slice")
        f = QFormLayout(g)
        self.kind = QComboBox()
        for k, label in SLICE3_LABELS.items():
            self.kind.addItem(label, k)
        self.kind.setToolTip(
            "Which 3D slice of input space: the input space itself (3-input networks), the top 3 "
            "principal directions of the data, or a data point with its DeepFool direction r(x) "
            "and two random directions"
        )
        self.point = QSpinBox()
        self.point.setRange(0, 0)
        self.point.setToolTip("Dataset point of the DeepFool slice")
        self.seed = QSpinBox()
        self.seed.setRange(0, 9999)
        self.seed.setToolTip("Seed of the random directions of the DeepFool slice")
        f.addRow("slice", self.kind)
        f.addRow("point", self.point)
        f.addRow("seed", self.seed)
        self.kind.currentIndexChanged.connect(self._choice_changed)
        self.point.valueChanged.connect(self._choice_changed)
        self.seed.valueChanged.connect(self._choice_changed)
        lay.addWidget(g)

        self.generator_group = self._generator_controls()
        lay.addWidget(self.generator_group)

        g = self.show_group = QGroupBox("Show")
        f = QFormLayout(g)
        self._show_form = f
        self.camera = QComboBox()
        self.camera.addItem("Turntable", "turntable")
        self.camera.addItem("Fly (W A S D, mouse)", "fly")
        self.camera.currentIndexChanged.connect(lambda i: self.s3.update_settings(camera=self.camera.itemData(i)))
        f.addRow("camera", self.camera)
        self.checks: dict[str, QCheckBox] = {}
        for key, label, tip in [
            ("show_faces", "region faces", "translucent faces of the cells, coloured like the 2D tiles"),
            ("show_edges", "face outlines", "outlines: newest layer dark, earlier layers grey"),
            ("show_boundary", "boundary", "the exact decision boundary, or a regression run's level set (opaque, red)"),
            ("show_points", "data points", "the dataset projected into the 3D slice"),
            ("show_paths", "paths", "traced paths, projected into the 3D slice"),
            ("show_domain_faces", "box faces", "faces of the box that bounds the slice"),
        ]:
            cb = QCheckBox(label)
            cb.setToolTip(tip)
            cb.setChecked(getattr(self.s3.settings, key))
            cb.toggled.connect(lambda on, k=key: self.s3.update_settings(**{k: on}))
            f.addRow(cb)
            self.checks[key] = cb
        self.layer = QComboBox()
        self.layer.addItem("all layers", 0)
        self.layer.setToolTip("Show only the faces created by the neurons of one layer")
        self.layer.currentIndexChanged.connect(lambda i: self.s3.update_settings(only_layer=self.layer.itemData(i) or 0))
        f.addRow("faces of", self.layer)
        self.near = QCheckBox("only near the boundary")
        self.near.setToolTip("Only faces of cells the decision boundary crosses, or within the given distance of it")
        self.near.toggled.connect(lambda on: self.s3.update_settings(near_boundary=on))
        f.addRow(self.near)
        self.near_d = QDoubleSpinBox()
        self.near_d.setRange(0.0, 1.0)
        self.near_d.setSingleStep(0.01)
        self.near_d.setDecimals(3)
        self.near_d.setValue(self.s3.settings.near_distance)
        self.near_d.setToolTip("Distance from the boundary, as a fraction of the box diagonal")
        self.near_d.valueChanged.connect(lambda v: self.s3.update_settings(near_distance=v))
        f.addRow("within", self.near_d)
        self.explode = QSlider(Qt.Orientation.Horizontal)
        self.explode.setRange(0, 100)
        self.explode.setToolTip("Exploded view: push every cell away from the box centre")
        self.explode.valueChanged.connect(lambda v: self.s3.update_settings(explode=v / 100 * 1.5))
        f.addRow("explode", self.explode)
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(int(round(self.s3.settings.opacity * 100)))
        self.opacity.valueChanged.connect(lambda v: self.s3.update_settings(opacity=v / 100))
        f.addRow("opacity", self.opacity)
        self.budget = QSpinBox()
        self.budget.setRange(100, 2_000_000)
        self.budget.setSingleStep(5000)
        self.budget.setValue(self.s3.settings.max_cells)
        self.budget.setToolTip("Most cells the 3D tessellation may create before it stops with a message")
        self.budget.editingFinished.connect(lambda: self.s3.update_settings(max_cells=self.budget.value()))
        f.addRow("max cells", self.budget)
        self.box_scale = QDoubleSpinBox()
        self.box_scale.setRange(*BOX_SCALE_RANGE)
        self.box_scale.setSingleStep(0.05)
        self.box_scale.setDecimals(2)
        self.box_scale.setValue(self.s3.settings.box_scale)
        self.box_scale.setToolTip("The box tessellated, as a fraction of the slice's box (about its centre): smaller boxes hold fewer cells")
        self.box_scale.editingFinished.connect(lambda: self.s3.update_settings(box_scale=self.box_scale.value()))
        f.addRow("box size", self.box_scale)
        lay.addWidget(g)

        g = self.clip_group = QGroupBox("Clipping plane")
        f = QFormLayout(g)
        self.clip_on = QCheckBox("clip")
        self.clip_on.setToolTip("Cut the volume by an axis-aligned plane (Ctrl+drag in the view moves it)")
        self.clip_on.toggled.connect(lambda on: self.s3.update_clip(enabled=on))
        f.addRow(self.clip_on)
        self.axis = QComboBox()
        for i, n in enumerate("uvw"):
            self.axis.addItem(f"{n} = const", i)
        self.axis.setCurrentIndex(self.s3.clip.axis)
        self.axis.currentIndexChanged.connect(lambda i: self.s3.update_clip(axis=i))
        f.addRow("plane", self.axis)
        self.pos = QSlider(Qt.Orientation.Horizontal)
        self.pos.setRange(0, 1000)
        self.pos.setValue(500)
        self.pos.valueChanged.connect(self._pos_changed)
        f.addRow("position", self.pos)
        self.pos_label = QLabel("—")
        f.addRow("", self.pos_label)
        self.side = QComboBox()
        self.side.addItem("keep below", False)
        self.side.addItem("keep above", True)
        self.side.currentIndexChanged.connect(lambda i: self.s3.update_clip(keep_above=bool(self.side.itemData(i))))
        f.addRow("side", self.side)
        self.link = QCheckBox("2D tab shows this plane")
        self.link.setChecked(self.s3.clip.link_2d)
        self.link.setToolTip("Linked views: the 2D tab shows the exact 2D tessellation of the clipping plane")
        self.link.toggled.connect(lambda on: self.s3.update_clip(link_2d=on))
        f.addRow(self.link)
        lay.addWidget(g)

        btn = self.reset_button = QPushButton("Reset camera")
        btn.clicked.connect(self.reset_camera.emit)
        lay.addWidget(btn)
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        lay.addWidget(self.summary)
        hint = self.hint = QLabel(HELP)
        hint.setWordWrap(True)
        hint.setStyleSheet("color: gray;")
        lay.addWidget(hint)
        lay.addStretch(1)
        self._updating = False
        self.s3.events.choice.connect(self._show_choice)
        self.s3.events.settings.connect(self.show_settings)
        self._show_choice(self.s3.choice)

    def _generator_controls(self) -> QGroupBox:
        """Samples on a generator's manifold, and the histogram of their density on it."""
        import pyqtgraph as pg

        g = QGroupBox("Samples on the manifold")
        f = QFormLayout(g)
        self.sampler = QComboBox()
        for k in MANIFOLD_SAMPLERS:
            self.sampler.addItem(SAMPLER_LABELS[k], k)
        self.sampler.setCurrentIndex(self.sampler.findData(self.s3.settings.sampler))
        self.sampler.setToolTip(
            "Latent points drawn from the exact tiles: the prior (uniform on the latent window), MaGNET (tile "
            "probability ∝ its output area: uniform on the manifold) or polarity sampling (∝ volume change^ρ)"
        )
        self.sampler.currentIndexChanged.connect(lambda i: self.s3.update_settings(sampler=self.sampler.itemData(i)))
        f.addRow("sampler", self.sampler)
        self.rho = QDoubleSpinBox()
        self.rho.setRange(-10.0, 10.0)
        self.rho.setSingleStep(0.25)
        self.rho.setValue(self.s3.settings.rho)
        self.rho.setToolTip("Polarity exponent ρ: ρ < 0 favours the dense (low-volume) parts, 0 is the prior, 1 is MaGNET")
        self.rho.editingFinished.connect(lambda: self.s3.update_settings(rho=self.rho.value()))
        f.addRow("ρ", self.rho)
        self.n_samples = QSpinBox()
        self.n_samples.setRange(0, 200_000)
        self.n_samples.setSingleStep(500)
        self.n_samples.setValue(self.s3.settings.samples)
        self.n_samples.editingFinished.connect(lambda: self.s3.update_settings(samples=self.n_samples.value()))
        f.addRow("samples", self.n_samples)
        self.density_plot = pg.PlotWidget()
        self.density_plot.setMinimumHeight(150)
        self.density_plot.setMaximumHeight(190)
        self.density_plot.setBackground(None)
        self.density_plot.setLabel("bottom", "log₁₀ density on the manifold (1/unit²)")
        self.density_plot.setLabel("left", "samples")
        self.density_plot.getAxis("bottom").enableAutoSIPrefix(False)
        self.density_plot.setMouseEnabled(False, False)
        self.density_plot.hideButtons()
        f.addRow(self.density_plot)
        self.grid_size = QSpinBox()
        self.grid_size.setRange(1, 32)
        self.grid_size.setValue(self.s3.settings.image_grid)
        self.grid_size.setToolTip("A generator of images: its pictures on an N x N grid over the 2D view's latent window")
        self.grid_size.editingFinished.connect(lambda: self.s3.update_settings(image_grid=self.grid_size.value()))
        f.addRow("pictures per side", self.grid_size)
        self._generator_form = f
        g.setVisible(False)
        return g

    def show_density(self, density) -> None:
        """Histogram of the samples' density on the manifold (one bar: uniform on it)."""
        import pyqtgraph as pg

        self.density_plot.clear()
        if density is None or not len(density) or not (density > 0).any():
            return
        d = np.log10(density[density > 0])
        lo, hi = float(d.min()), float(d.max())
        if hi - lo < 1e-6:
            lo, hi = lo - 0.05, hi + 0.05
        counts, edges = np.histogram(d, bins=31, range=(lo, hi))  # odd: a single value sits mid-bin
        self.density_plot.addItem(pg.BarGraphItem(x0=edges[:-1], x1=edges[1:], height=counts, brush=(214, 39, 40, 170), pen=None))

    # -- from the state -------------------------------------------------------------------------------
    def set_run(self, input_dim: int, depth: int, n_points: int, manifold: bool = False, images: bool = False) -> None:
        """A run was opened; ``manifold``: a generator's manifold is shown instead of a 3D slice; ``images``:
        a generator of images, whose pictures are shown on a grid."""
        self.generator_group.setTitle("Pictures over the latent window" if images else "Samples on the manifold")
        for w in (self.sampler, self.rho, self.n_samples, self.density_plot):
            self._generator_form.setRowVisible(w, not images)
        self._generator_form.setRowVisible(self.grid_size, images)
        self.slice_group.setVisible(not manifold)
        self.show_group.setVisible(not images)  # pictures: no surface, camera or faces
        self.reset_button.setVisible(not images)
        self.hint.setVisible(not images)
        self.clip_group.setVisible(not manifold)
        self.generator_group.setVisible(manifold)
        self.hint.setText(MANIFOLD_HELP if manifold else HELP)
        for key in ("show_boundary", "show_paths", "show_domain_faces"):
            self.checks[key].setEnabled(not manifold)
        for w in (self.layer, self.near, self.near_d, self.explode, self.budget):
            w.setEnabled(not manifold)
        self._updating = True
        try:
            self.layer.clear()
            self.layer.addItem("all layers", 0)
            for j in range(1, depth + 1):
                self.layer.addItem(f"layer {j} only", j)
            self.point.setRange(0, max(n_points - 1, 0))
            model = self.kind.model()
            for i in range(self.kind.count()):
                k = self.kind.itemData(i)
                ok = (
                    (k == "input" and input_dim == 3)
                    or (k == "pca" and input_dim >= 3 and n_points >= 4)
                    or (k == "deepfool" and input_dim >= 3 and n_points > 0)
                    or (k == "random" and input_dim >= 3)
                )
                model.item(i).setEnabled(ok)
        finally:
            self._updating = False
        self._show_choice(self.s3.choice)  # the combo names the slice shown, not its first entry

    def _show_choice(self, choice: Slice3Choice) -> None:
        self._updating = True
        try:
            i = self.kind.findData(choice.kind)
            if i >= 0:
                self.kind.setCurrentIndex(i)
            self.point.setValue(choice.index)
            self.seed.setValue(choice.seed)
            self.point.setEnabled(choice.kind == "deepfool")
            self.seed.setEnabled(choice.kind in ("deepfool", "random"))
        finally:
            self._updating = False

    def show_settings(self, st) -> None:
        """Show ``st`` (View3DSettings) without sending it back (e.g. after a session restored it)."""
        widgets = [
            self.camera,
            self.layer,
            self.near,
            self.near_d,
            self.explode,
            self.opacity,
            self.budget,
            self.box_scale,
            self.sampler,
            self.rho,
            self.n_samples,
            self.grid_size,
        ]
        widgets += list(self.checks.values())
        for w in widgets:
            w.blockSignals(True)
        try:
            self.camera.setCurrentIndex(max(self.camera.findData(st.camera), 0))
            self.layer.setCurrentIndex(max(self.layer.findData(st.only_layer), 0))
            self.near.setChecked(st.near_boundary)
            self.near_d.setValue(st.near_distance)
            self.explode.setValue(int(round(st.explode / 1.5 * 100)))
            self.opacity.setValue(int(round(st.opacity * 100)))
            self.budget.setValue(st.max_cells)
            self.box_scale.setValue(st.box_scale)
            self.sampler.setCurrentIndex(max(self.sampler.findData(st.sampler), 0))
            self.rho.setValue(st.rho)
            self.n_samples.setValue(st.samples)
            self.grid_size.setValue(st.image_grid)
            for key, cb in self.checks.items():
                cb.setChecked(getattr(st, key))
        finally:
            for w in widgets:
                w.blockSignals(False)

    def show_clip(self, clip, box) -> None:
        self._updating = True
        try:
            self.clip_on.setChecked(clip.enabled)
            self.axis.setCurrentIndex(clip.axis)
            lo, hi = box[2 * clip.axis], box[2 * clip.axis + 1]
            self.pos.setValue(int(round((clip.position - lo) / max(hi - lo, 1e-300) * 1000)))
            self.pos_label.setText(f"{'uvw'[clip.axis]} = {clip.position:.4g}")
            self.side.setCurrentIndex(1 if clip.keep_above else 0)
            self.link.setChecked(clip.link_2d)
        finally:
            self._updating = False

    def set_summary(self, text: str) -> None:
        self.summary.setText(text)

    # -- to the state ---------------------------------------------------------------------------------
    def _choice_changed(self, *_):
        if self._updating:
            return
        kind = self.kind.currentData()
        self.s3.set_choice(Slice3Choice(kind, self.point.value(), self.seed.value()))
        self.point.setEnabled(kind == "deepfool")
        self.seed.setEnabled(kind in ("deepfool", "random"))

    def _pos_changed(self, v: int) -> None:
        if self._updating:
            return
        box, axis = self.s3.box, self.s3.clip.axis
        lo, hi = box[2 * axis], box[2 * axis + 1]
        self.s3.update_clip(position=lo + (hi - lo) * v / 1000)
