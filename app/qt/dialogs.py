"""The window's small dialogs, its recent-files menu and its scrolling panels."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QFileDialog,
    QFrame,
    QHeaderView,
    QInputDialog,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QMessageBox,
    QScrollArea,
    QWidget,
)

from geometry.safe_io import printable

from ..model.results import Results
from ..model.state import ViewerState

MAX_RECENT = 10


def scrolling(widget: QWidget) -> QScrollArea:
    """``widget`` inside a frameless scroll area that gives it all the room there is and scrolls below its
    minimum size: a tall panel no longer sets the window's minimum height."""
    area = QScrollArea()
    area.setWidget(widget)
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)  # scroll down, never clip sideways
    area.setMinimumWidth(widget.minimumSizeHint().width() + area.verticalScrollBar().sizeHint().width())
    return area


def ask_trust(parent, path: str, exc) -> bool:
    """Ask whether to run the code stored in ``path`` (default No)."""
    box = QMessageBox(
        QMessageBox.Icon.Warning,
        "Trust this file?",
        f"{printable(path, 200)}\n\nOpening this file runs code stored in it (a full pickle or a "
        f"TorchScript archive). Code from a file can do anything your user account can: read, "
        f"change or send your files. Open it only if you trust where it came from.\n\n"
        f"{printable(exc, 400)}",
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
        parent,
    )
    box.setDefaultButton(QMessageBox.StandardButton.No)
    box.button(QMessageBox.StandardButton.Yes).setText("Trust and open")
    return box.exec() == QMessageBox.StandardButton.Yes


def ask_budget(parent, state: ViewerState) -> None:
    n, ok = QInputDialog.getInt(parent, "Region budget", "Stop a tessellation beyond this many regions:", state.settings.max_regions, 1000, 50_000_000, 10_000)
    if ok:
        state.update_settings(max_regions=int(n))


def ask_threads(parent, state: ViewerState) -> None:
    """CPU threads of the engine (0: the cores other work leaves free, as the CLI's --threads default)."""
    n, ok = QInputDialog.getInt(
        parent, "Compute threads", "CPU threads for the engine (0: the cores not busy with other work):", state.settings.threads, 0, 1024
    )
    if ok:
        state.update_settings(threads=int(n))


def ask_path_settings(parent, state: ViewerState) -> None:
    """Step budget and relative step size of new leaf paths (the step rule of app.jobs.paths)."""
    st = state.settings
    steps, ok = QInputDialog.getInt(parent, "Path settings", "Step budget of new leaf paths:", st.path_steps, 1, 100_000)
    if not ok:
        return
    size, ok = QInputDialog.getDouble(
        parent, "Path settings", "Step size (fraction of the start–end distance; of max(‖start‖, 1) for normal paths):", st.path_step_size, 1e-6, 10.0, 4
    )
    if ok:
        state.update_settings(path_steps=int(steps), path_step_size=float(size))


class RecentFiles:
    """File > Open recent: the last MAX_RECENT files opened, kept in ``settings`` (a QSettings)."""

    def __init__(self, settings, menu, open_path: Callable[[str], None]):
        self.settings, self.menu, self.open_path = settings, menu, open_path
        self.refresh()

    def paths(self) -> list[str]:
        v = self.settings.value("recent", [])
        return [str(x) for x in ([v] if isinstance(v, str) else (v or []))]

    def add(self, path: str) -> None:
        path = str(Path(path).resolve())
        self.settings.setValue("recent", ([path] + [p for p in self.paths() if p != path])[:MAX_RECENT])
        self.refresh()

    def clear(self) -> None:
        self.settings.setValue("recent", [])
        self.refresh()

    def refresh(self) -> None:
        self.menu.clear()
        rec = self.paths()
        for p in rec:
            self.menu.addAction(p, lambda p=p: self.open_path(p))
        if rec:
            self.menu.addSeparator()
            self.menu.addAction("Clear list", self.clear)
        self.menu.setEnabled(bool(rec))


def save_csv(parent, results: Results, title: str, default_name: str, write: Callable[[str], str]) -> str | None:
    """Ask where to save a panel's table, then ``write(path)``; the status line says where it went, and a
    failure (nothing to export, a folder that cannot be written) is reported once, nothing else changes."""
    from geometry.errors import SplineAtlasError

    path, _ = QFileDialog.getSaveFileName(parent, title, default_name, "CSV table (*.csv)")
    if not path:
        return None
    if not path.lower().endswith(".csv"):
        path += ".csv"
    try:
        out = write(path)
    except (SplineAtlasError, OSError, ValueError) as exc:
        results.report_error(title, exc)
        return None
    results.set_status(f"wrote {out}")
    return out


class LayerList(QDialog):
    """Help > Network layers: what was imported, one row per layer (``Network.layer_table``, the rows
    ``splineatlas info`` prints): output shape, parameters, and which layers are piecewise-linear."""

    def __init__(self, parent, bundle, epoch_index: int):
        from ..render.report import LAYER_COLUMNS, layer_cells

        super().__init__(parent)
        self.setWindowTitle(f"Layers of {bundle.name}")
        net = bundle.network(epoch_index)
        self.rows = net.layer_table()
        lay = QVBoxLayout(self)
        bad = net.first_smooth_layer
        head = f"input {list(net.input_shape)} · {net.num_parameters():,} parameters · {net.depth} nonlinear layers · "
        head += "piecewise-affine: exact tools apply" if bad is None else f"not piecewise-affine: layer {bad.path} is {bad.kind} (gradient tools only)"
        lay.addWidget(QLabel(head))
        self.table = QTableWidget(len(self.rows), len(LAYER_COLUMNS))
        self.table.setHorizontalHeaderLabels([h for _, h in LAYER_COLUMNS])
        self.table.verticalHeader().setVisible(False)
        for r, row in enumerate(self.rows):
            for c, text in enumerate(layer_cells(row)):
                item = QTableWidgetItem(text)
                if c == 3:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(r, c, item)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        lay.addWidget(self.table)
        self.resize(560, min(640, 120 + 30 * len(self.rows)))


def show_layers(parent, results: Results, state: ViewerState) -> None:
    if results.bundle is None:
        results.set_status("Open a run first: the layer list shows its network.")
        return
    LayerList(parent, results.bundle, state.epoch_index).exec()
