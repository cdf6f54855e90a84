"""Inspector: what the network does at the clicked point (class probabilities, region, slope, distances).

Shows a :class:`app.jobs.PointReport`; it computes nothing itself.
"""

from __future__ import annotations

import json

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QFormLayout, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from ..render.images import display_images
from ..render.report import INSPECTOR_ROWS, REGION_ROWS, region_text, report_document, report_text
from .theme import Theme, class_color


class Inspector(QWidget):
    """Form of values + a probability bar chart + (image data) the input and the power-diagram centroid."""

    def __init__(self, theme: Theme, parent: QWidget | None = None):
        super().__init__(parent)
        self.theme = theme
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        self.hint = QLabel("Click a point in the slice to inspect it.")
        self.hint.setWordWrap(True)
        top = QHBoxLayout()
        top.addWidget(self.hint, 1)
        self.copy_btn = QPushButton("Copy")
        self.copy_btn.setToolTip("Copy the report (every row and the raw numbers) as JSON, as `splineatlas inspect --json` writes it")
        self.copy_btn.setEnabled(False)
        self.copy_btn.clicked.connect(self.copy_report)
        top.addWidget(self.copy_btn, 0, Qt.AlignmentFlag.AlignTop)
        lay.addLayout(top)
        form = QFormLayout()
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        self.fields: dict[str, QLabel] = {}
        for key, label, tip in INSPECTOR_ROWS:
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
        self.region_info = None
        self._region_rows = False
        self._class_names: list[str] = []
        self._image_shape = None
        self._preprocessing = None
        self._output_shape = None

    def set_run(self, class_names, image_shape, preprocessing=None, output_shape=None) -> None:
        """A run was opened; ``output_shape``: a generator's image outputs (its G(z) is shown as a picture)."""
        self._output_shape = output_shape
        self._class_names = list(class_names)
        self._image_shape = image_shape
        self._preprocessing = preprocessing
        ax = self.bars.getPlotItem().getAxis("bottom")
        ax.setTicks([[(i, n if len(n) <= 8 else n[:7] + "…") for i, n in enumerate(self._class_names)]])
        self.clear()

    def report_json(self) -> str:
        """The shown report as JSON (the rows and raw numbers; the region rows once they are computed)."""
        return json.dumps(report_document(self.report, self._class_names, self.region_info), indent=1)

    def copy_report(self) -> None:
        if self.report is not None:
            QApplication.clipboard().setText(self.report_json())

    def clear(self) -> None:
        self.report = None
        self.region_info = None
        self.copy_btn.setEnabled(False)
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
        self.region_info = None
        self.copy_btn.setEnabled(True)
        self.report = r
        f = self.fields
        self.hint.setText("Inspected point (click elsewhere to move it; Esc cancels a pick).")
        for k, text in report_text(r, self._class_names).items():
            f[k].setText(text)
        for k in REGION_ROWS:
            f[k].setText("computing…" if self._region_rows else "—")
        x = np.arange(len(r.probs))
        brushes = [pg.mkBrush(class_color(i)) for i in x]
        self.bar_item.setOpts(x=x, height=r.probs, width=0.7, brushes=brushes)
        self.bars.setVisible(r.value is None and r.output is None)  # a regression or generator output has no class probabilities
        if r.output is not None and self._output_shape is not None:  # a generator's picture G(z)
            shown = display_images(r.output, self._output_shape)
            self.img_x.setImage(np.swapaxes(shown.images[0], 0, 1), levels=(shown.vmin, shown.vmax))
            self.img_c.clear()
            self.image_label.setText("generated G(z)")
            self.images.setVisible(True)
            self.image_label.setVisible(True)
        elif self._image_shape is not None:
            self._show_image(self.img_x, r.x)
            if r.centroid is not None:
                self._show_image(self.img_c, np.asarray(r.centroid))
                self.image_label.setText(f"input x  |  power-diagram centroid μ (layer {r.centroid_layer})")
            else:
                self.img_c.clear()
                self.image_label.setText("input x")
            self.images.setVisible(True)
            self.image_label.setVisible(True)

    def _show_image(self, item, x: np.ndarray) -> None:
        """One input as a picture (de-normalised with the run's preprocessing; colour for RGB)."""
        shown = display_images(x, self._image_shape, self._preprocessing)
        img = np.swapaxes(shown.images[0], 0, 1)  # pyqtgraph's images are (x, y)
        if self._preprocessing is None and not shown.rgb:
            item.setImage(img, autoLevels=True)
        else:
            item.setImage(img, levels=(shown.vmin, shown.vmax))

    def set_row_visible(self, key: str, visible: bool) -> None:
        """Hide rows whose engine is not available (no empty controls)."""
        self._form_rows.setRowVisible(self.fields[key], visible)

    def enable_region_rows(self, on: bool) -> None:
        self._region_rows = on
        for k in REGION_ROWS:
            self.set_row_visible(k, on)

    def set_region_info(self, info: dict) -> None:
        """Fill the full-input-space rows from :func:`app.jobs.region_geometry` (or an 'error')."""
        self.region_info = info
        for k, text in region_text(info, self._class_names).items():
            self.fields[k].setText(text)
