"""Data browser: the run's dataset as thumbnails (image data) or a scatter (low-D data), and slice choice.

Clicking data points collects the indices that define a slice: three points (SplineCam plane), one
point (its DeepFool direction + a random direction), or none (input plane / PCA). ``slice_requested``
carries the resulting :class:`app.model.state.SliceChoice`; the window builds the slice in a worker.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QImage, QPixmap
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QPushButton, QSpinBox, QStackedWidget, QVBoxLayout, QWidget

from ..model.state import SliceChoice
from ..render.images import display_images
from .theme import Theme, class_color

SLICE_LABELS = {
    "input": "Input plane (2D inputs)",
    "points": "Plane through 3 picked points",
    "deepfool": "Point + DeepFool + random direction",
    "pca": "PCA of the data",
    "random": "Random plane (seed)",
}
NEEDED = {"input": 0, "points": 3, "deepfool": 1, "pca": 0, "random": 0}
MAX_THUMBS = 20_000  # thumbnails listed (the bundled digits have 1,438; each is a 40 px icon)


class DataBrowser(QWidget):
    slice_requested = Signal(object)  # SliceChoice

    def __init__(self, theme: Theme, parent: QWidget | None = None):
        super().__init__(parent)
        self.theme = theme
        self._preprocessing = None
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        self.title = QLabel("No run open")
        self.title.setWordWrap(True)
        lay.addWidget(self.title)
        self.stack = QStackedWidget()
        self.scatter_w = pg.PlotWidget(background=theme.background)
        self.scatter_w.getPlotItem().setMenuEnabled(False)
        self.scatter_w.getPlotItem().hideButtons()
        self.scatter_w.setMinimumHeight(180)
        self.scatter = pg.ScatterPlotItem(size=5, pxMode=True, hoverable=True)
        self.scatter.sigClicked.connect(self._on_scatter_click)
        self.scatter_w.addItem(self.scatter)
        self.chosen_marks = pg.ScatterPlotItem(size=15, symbol="star", pen=pg.mkPen(theme.foreground), brush=pg.mkBrush("#ffd400"))
        self.scatter_w.addItem(self.chosen_marks)
        self.thumbs = QListWidget()
        self.thumbs.setViewMode(QListWidget.ViewMode.IconMode)
        self.thumbs.setIconSize(QSize(40, 40))
        self.thumbs.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.thumbs.setSelectionMode(QListWidget.SelectionMode.NoSelection)
        self.thumbs.setUniformItemSizes(True)
        self.thumbs.itemClicked.connect(lambda it: self.toggle_index(int(it.data(Qt.ItemDataRole.UserRole))))
        self.stack.addWidget(self.scatter_w)
        self.stack.addWidget(self.thumbs)
        lay.addWidget(self.stack, 1)
        row = QHBoxLayout()
        row.addWidget(QLabel("Slice:"))
        self.kind = QComboBox()
        for k, label in SLICE_LABELS.items():
            self.kind.addItem(label, k)
        self.kind.currentIndexChanged.connect(self._update_hint)
        row.addWidget(self.kind, 1)
        lay.addLayout(row)
        row2 = QHBoxLayout()
        self.seed = QSpinBox()
        self.seed.setRange(0, 10_000)
        self.seed.setPrefix("seed ")
        self.seed.setToolTip("Seed of the random direction(s) (DeepFool and random slices)")
        row2.addWidget(self.seed)
        self.clear_btn = QPushButton("Clear picks")
        self.clear_btn.clicked.connect(self.clear_chosen)
        row2.addWidget(self.clear_btn)
        self.apply_btn = QPushButton("Use this slice")
        self.apply_btn.setDefault(True)
        self.apply_btn.clicked.connect(self._apply)
        row2.addWidget(self.apply_btn)
        lay.addLayout(row2)
        self.hint = QLabel("")
        self.hint.setWordWrap(True)
        lay.addWidget(self.hint)
        self.X = np.zeros((0, 2))
        self.y = np.zeros(0, dtype=np.int64)
        self.xy = np.zeros((0, 2))
        self.chosen: list[int] = []
        self.input_dim = 0
        self._update_hint()

    # -- data ----------------------------------------------------------------------------------
    def set_dataset(self, title: str, X: np.ndarray, y: np.ndarray, input_dim: int, image_shape=None, preprocessing=None) -> None:
        """Show a run's training points (thumbnails for images, de-normalised by ``preprocessing``)."""
        self.title.setText(title)
        self._preprocessing = preprocessing
        self.X, self.y, self.input_dim = X, y, input_dim
        self.chosen = []
        model = self.kind.model()
        model.item(0).setEnabled(input_dim == 2)
        for i in (1, 2, 3):
            model.item(i).setEnabled(len(X) >= 3)
        model.item(4).setEnabled(input_dim >= 2)
        self.kind.setCurrentIndex(0 if input_dim == 2 else (1 if len(X) >= 3 else 4))
        if image_shape is not None and len(X):
            self.stack.setCurrentWidget(self.thumbs)
            self._fill_thumbs(image_shape)
        else:
            self.stack.setCurrentWidget(self.scatter_w)
            if len(X) and X.shape[1] > 2:
                mu = X.mean(0)
                _, _, vt = np.linalg.svd(X - mu, full_matrices=False)
                self.xy = (X - mu) @ vt[:2].T
                self.scatter_w.getPlotItem().setLabels(bottom="PC 1", left="PC 2")
            else:
                self.xy = X[:, :2] if len(X) else np.zeros((0, 2))
                self.scatter_w.getPlotItem().setLabels(bottom="x₁", left="x₂")
            self.scatter.setData(pos=self.xy, data=np.arange(len(self.xy)), brush=[pg.mkBrush(class_color(int(c), 200)) for c in y], pen=None)
        self._show_chosen()

    def _fill_thumbs(self, image_shape) -> None:
        self.thumbs.clear()
        h, w = image_shape[-2:]
        n = min(len(self.X), MAX_THUMBS)
        shown = display_images(self.X[:n], image_shape, self._preprocessing)
        g = shown.as_uint8()
        for i in range(n):
            arr = np.ascontiguousarray(g[i])
            fmt, stride = (QImage.Format.Format_RGB888, 3 * w) if shown.rgb else (QImage.Format.Format_Grayscale8, w)
            qimg = QImage(arr.data, w, h, stride, fmt).copy()
            pm = QPixmap.fromImage(qimg).scaled(40, 40, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.FastTransformation)
            it = QListWidgetItem(QIcon(pm), str(int(self.y[i])))
            it.setData(Qt.ItemDataRole.UserRole, i)
            it.setToolTip(f"training point {i}, label {int(self.y[i])}")
            self.thumbs.addItem(it)
        if n < len(self.X):
            self.title.setText(self.title.text() + f"<br>showing the first {n:,} of {len(self.X):,} images")

    # -- picking -------------------------------------------------------------------------------
    def _on_scatter_click(self, item, points, ev=None) -> None:
        if len(points):
            self.toggle_index(int(points[0].data()))

    def toggle_index(self, i: int) -> None:
        need = max(NEEDED[self.current_kind()], 1)
        if i in self.chosen:
            self.chosen.remove(i)
        else:
            self.chosen.append(i)
            self.chosen = self.chosen[-need:]
        self._show_chosen()

    def clear_chosen(self) -> None:
        self.chosen = []
        self._show_chosen()

    def current_kind(self) -> str:
        return self.kind.currentData()

    def set_choice(self, choice: SliceChoice) -> None:
        """Reflect the window's current slice choice (after loading a session, for example)."""
        i = self.kind.findData(choice.kind)
        if i >= 0:
            self.kind.blockSignals(True)
            self.kind.setCurrentIndex(i)
            self.kind.blockSignals(False)
        self.seed.setValue(choice.seed)
        self.chosen = list(choice.indices)
        self._show_chosen()

    def _show_chosen(self) -> None:
        if len(self.xy) and self.chosen:
            idx = [i for i in self.chosen if i < len(self.xy)]
            self.chosen_marks.setData(pos=self.xy[idx])
        else:
            self.chosen_marks.setData([], [])
        for r in range(self.thumbs.count()):
            it = self.thumbs.item(r)
            on = int(it.data(Qt.ItemDataRole.UserRole)) in self.chosen
            it.setBackground(QColor("#ffd400") if on else QColor(0, 0, 0, 0))
        self._update_hint()

    def _update_hint(self) -> None:
        k = self.current_kind()
        need = NEEDED.get(k, 0)
        if need:
            self.hint.setText(
                f"Click {need} data point{'s' if need > 1 else ''} above ({len(self.chosen)}/{need} chosen: {', '.join(map(str, self.chosen)) or 'none'})."
            )
        else:
            self.hint.setText("")
        self.apply_btn.setEnabled(len(self.chosen) >= need)

    def _apply(self) -> None:
        k = self.current_kind()
        need = NEEDED[k]
        self.slice_requested.emit(SliceChoice(k, tuple(self.chosen[:need]) if need else (), int(self.seed.value())))
