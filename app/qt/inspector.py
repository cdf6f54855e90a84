"""Inspector: what the network does at the clicked point (class probabilities, region, slope, distances).

Shows a :class:`app.jobs.PointReport`; it computes nothing itself.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFormLayout, QLabel, QVBoxLayout, QWidget

from .theme import Theme, class_color


REGION_ROWS = ("qp", "bits", "neigh", "cheb", "rdist")  # filled by app.jobs.region_geometry (LPs, a QP)


def _fmt(v: float, digits: int = 4) -> str:
    return "—" if v is None or not np.isfinite(v) else f"{v:.{digits}g}"


class Inspector(QWidget):
    """Form of values + a probability bar chart + (image data) the input and the power-diagram centroid."""

    def __init__(self, theme: Theme, parent: QWidget | None = None):
        super().__init__(parent)
        self.theme = theme
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        self.hint = QLabel("Click a point in the slice to inspect it.")
        self.hint.setWordWrap(True)
        lay.addWidget(self.hint)
        form = QFormLayout()
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        self.fields: dict[str, QLabel] = {}
        for key, label, tip in [
            ("u", "u, v", "slice coordinates of the point"),
            ("class", "predicted", "argmax of the network's output"),
            ("region", "region", "tile index in the current slice at the current layer depth, and the number of tiles"),
            ("hash", "pattern hash", "CRC32 of the activation pattern of layers 1..depth"),
            ("active", "active units", "active / total units per layer (1-based)"),
            ("slope", "‖A_ω‖₂", "spectral norm of the network's Jacobian on this region (full input space)"),
            ("bdist", "to boundary (slice)", "distance in the slice to the nearest exact decision-boundary segment"),
            ("deepfool", "to boundary (DeepFool)", "‖r(x)‖ of DeepFool's minimal perturbation in the full input space"),
            ("qp", "to boundary inside region (QP)", "exact smallest ‖δ‖ with x + δ still in x's region (∩ data box) "
             "and a different predicted class (a QP); none when the decision boundary does not cross the region"),
            ("trace", "Tr G", "trace of the local data matrix G(x) = Jᵀ diag(p) J"),
            ("centroid", "centroid μ", "power-diagram centroid of the point's cell at the current layer "
             "(∇ₓ Σₖ z_l,k(x), Balestriero et al. eq. 20)"),
            ("bits", "active bits", "non-redundant inequalities of the region in the full input space (LP)"),
            ("neigh", "neighbours", "regions sharing a facet (flip one active bit)"),
            ("cheb", "Chebyshev radius", "radius of the largest ball inside the region ∩ data box (LP)"),
            ("rdist", "to region boundary", "exact distance from x to its region's boundary (full input space)"),
        ]:
            lab = QLabel("—")
            lab.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            lab.setWordWrap(True)
            lab.setToolTip(tip)
            name = QLabel(label + ":")
            name.setToolTip(tip)
            form.addRow(name, lab)
            self.fields[key] = lab
        self._form_rows = form
        lay.addLayout(form)
        self.bars = pg.PlotWidget(background=theme.background)
        self.bars.setMinimumHeight(130)
        self.bars.setMaximumHeight(190)
        pi = self.bars.getPlotItem()
        pi.setMenuEnabled(False)
        pi.hideButtons()
        pi.setLabel("left", "p(class | x)")
        pi.setYRange(0, 1, padding=0.02)
        pi.setMouseEnabled(False, False)
        self.bar_item = pg.BarGraphItem(x=[], height=[], width=0.7)
        pi.addItem(self.bar_item)
        lay.addWidget(self.bars)
        self.image_label = QLabel("input x  |  power-diagram centroid μ")
        self.images = pg.GraphicsLayoutWidget()
        self.images.setMinimumHeight(110)
        self.img_x = pg.ImageItem()
        self.img_c = pg.ImageItem()
        for it in (self.img_x, self.img_c):
            vb = self.images.addViewBox(lockAspect=True, enableMouse=False)
            vb.invertY(True)
            vb.addItem(it)
        self.image_label.setVisible(False)
        self.images.setVisible(False)
        lay.addWidget(self.image_label)
        lay.addWidget(self.images)
        lay.addStretch(1)
        self.report = None
        self._region_rows = False
        self._class_names: list[str] = []
        self._image_shape = None

    def set_run(self, class_names, image_shape) -> None:
        self._class_names = list(class_names)
        self._image_shape = image_shape
        ax = self.bars.getPlotItem().getAxis("bottom")
        ax.setTicks([[(i, n if len(n) <= 8 else n[:7] + "…") for i, n in enumerate(self._class_names)]])
        self.clear()

    def clear(self) -> None:
        self.report = None
        for lab in self.fields.values():
            lab.setText("—")
        self.bar_item.setOpts(x=[], height=[])
        self.hint.setText("Click a point in the slice to inspect it.")
        self.images.setVisible(False)
        self.image_label.setVisible(False)

    def set_busy(self, u) -> None:
        self.hint.setText(f"Inspecting ({u[0]:.4g}, {u[1]:.4g}) …")

    def set_report(self, r) -> None:
        """Show an :class:`app.jobs.PointReport`."""
        self.report = r
        names = self._class_names or [str(i) for i in range(len(r.probs))]
        f = self.fields
        self.hint.setText("Inspected point (click elsewhere to move it; Esc cancels a pick).")
        f["u"].setText(f"({r.u[0]:.5g}, {r.u[1]:.5g})")
        f["class"].setText(f"{names[r.predicted] if r.predicted < len(names) else r.predicted}  "
                           f"(p = {r.probs[r.predicted]:.3f})")
        f["region"].setText("—" if r.region < 0 else f"#{r.region} of {r.region_count}")
        f["hash"].setText(r.pattern_hash)
        f["active"].setText("  ".join(f"L{i + 1}: {a}/{w}" if a >= 0 else f"L{i + 1}: argmax" if a == -1
                                      else f"L{i + 1}: smooth" for i, (a, w) in enumerate(r.active)))
        f["slope"].setText(_fmt(r.slope_norm))
        f["bdist"].setText(_fmt(r.boundary_distance_slice))
        f["deepfool"].setText(_fmt(r.deepfool_distance))
        f["trace"].setText(_fmt(r.trace_g))
        for k in REGION_ROWS:
            f[k].setText("computing…" if self._region_rows else "—")
        x = np.arange(len(r.probs))
        brushes = [pg.mkBrush(class_color(i)) for i in x]
        self.bar_item.setOpts(x=x, height=r.probs, width=0.7, brushes=brushes)
        if r.centroid is None:
            f["centroid"].setText("—")
        else:
            c = np.asarray(r.centroid).reshape(-1)
            f["centroid"].setText(f"layer {r.centroid_layer}: " + (
                "(" + ", ".join(f"{v:.4g}" for v in c) + ")" if len(c) <= 4 else "image below"))
        if self._image_shape is not None:
            shape = self._image_shape[-2:]
            self.img_x.setImage(r.x.reshape(shape).T, autoLevels=True)
            if r.centroid is not None:
                self.img_c.setImage(np.asarray(r.centroid).reshape(shape).T, autoLevels=True)
                self.image_label.setText(f"input x  |  power-diagram centroid μ (layer {r.centroid_layer})")
            else:
                self.img_c.clear()
                self.image_label.setText("input x")
            self.images.setVisible(True)
            self.image_label.setVisible(True)

    def set_row_visible(self, key: str, visible: bool) -> None:
        """Hide rows whose engine is not available (no empty controls)."""
        self._form_rows.setRowVisible(self.fields[key], visible)

    def enable_region_rows(self, on: bool) -> None:
        self._region_rows = on
        for k in REGION_ROWS:
            self.set_row_visible(k, on)

    def set_region_info(self, info: dict) -> None:
        """Fill the full-input-space rows from :func:`app.jobs.region_geometry` (or an 'error')."""
        f = self.fields
        if "error" in info:
            for k in REGION_ROWS:
                f[k].setText("—")
            f["bits"].setText(info["error"])
            return
        names = self._class_names
        if info.get("qp_exists") is None:
            f["qp"].setText("—")
        elif not info["qp_exists"]:
            f["qp"].setText("none inside region")
        else:
            t = info["qp_target"]
            f["qp"].setText(f"{_fmt(info['qp_distance'])}  (to {names[t] if t < len(names) else t})")
        f["bits"].setText(f"{info['active_bits']} of {info['n_bits']}")
        f["neigh"].setText(str(info["neighbours"]))
        f["cheb"].setText(_fmt(info.get("chebyshev_radius")))
        f["rdist"].setText(_fmt(info.get("boundary_distance")))
