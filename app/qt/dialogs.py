"""The window's small dialogs, its recent-files menu and its scrolling panels."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
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


class OpenWithModelDialog(QDialog):
    """File > Open with your model class…: the app's twin of ``--model FILE.py:CLASS [--model-kwargs JSON]
    [--input-shape ...]``. The checkpoint (or run folder) and the class that defines its architecture;
    :meth:`model_ref` parses them with the CLI's own parser, so both give the same errors."""

    def __init__(self, parent, start_dir: str):
        super().__init__(parent)
        self.setWindowTitle("Open with your model class")
        self.start_dir = start_dir
        form = QFormLayout(self)
        self.path = QLineEdit()
        self.path.setPlaceholderText("lenet.pt, a run folder, model.safetensors, epoch=3-step=120.ckpt …")
        self.model_file = QLineEdit()
        self.model_file.setPlaceholderText("models.py")
        self.cls = QLineEdit()
        self.cls.setPlaceholderText("LeNet5   (or torchvision:resnet18 in the file field, empty class)")
        self.kwargs = QLineEdit()
        self.kwargs.setPlaceholderText('{"num_classes": 10}   (optional)')
        self.shape = QLineEdit()
        self.shape.setPlaceholderText("1 28 28   (without the batch axis; optional if the first layer tells)")
        form.addRow("Checkpoint or run:", self._with_browse(self.path, self._browse_path))
        form.addRow("Model file (.py):", self._with_browse(self.model_file, self._browse_model))
        form.addRow("Class:", self.cls)
        form.addRow("Constructor keywords (JSON):", self.kwargs)
        form.addRow("Input shape:", self.shape)
        note = QLabel("Opening imports the model file, so its code runs: only for code you trust.")
        note.setWordWrap(True)
        form.addRow(note)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Open | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self.resize(640, self.sizeHint().height())

    def _with_browse(self, edit: QLineEdit, browse: Callable[[], None]) -> QWidget:
        row = QWidget()
        lay = QHBoxLayout(row)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(edit, 1)
        b = QPushButton("Browse…")
        b.clicked.connect(browse)
        lay.addWidget(b)
        return row

    def _browse_path(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Checkpoint", self.start_dir, "Checkpoints (*.pt *.pth *.safetensors *.ckpt *.bin);;All files (*)")
        if path:
            self.path.setText(path)

    def _browse_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Model file", self.start_dir, "Python files (*.py)")
        if path:
            self.model_file.setText(path)

    def model_text(self) -> str:
        """The ``--model`` value: ``FILE.py:CLASS`` or ``torchvision:NAME``."""
        f, c = self.model_file.text().strip(), self.cls.text().strip()
        return f if ":" in f and not c else f"{f}:{c}"

    def model_ref(self):
        """The parsed reference (raises SplineAtlasError with the CLI's one-line message)."""
        from geometry.errors import SplineAtlasError
        from geometry.networks.user_model import parse_model_ref

        shape_text = self.shape.text().replace(",", " ").split()
        try:
            shape = [int(v) for v in shape_text] or None
        except ValueError:
            raise SplineAtlasError(f"input shape {printable(self.shape.text(), 40)!r}: give whole numbers, e.g. 1 28 28.") from None
        if not self.path.text().strip():
            raise SplineAtlasError("give the checkpoint or run folder to open.")
        return parse_model_ref(self.model_text(), self.kwargs.text().strip() or None, shape)
