"""Window-wide keyboard shortcuts: epoch and layer stepping, playback, Esc, and the filter that routes them.

``handle_key`` acts on the viewer state only, so a key does exactly what the matching slider or button does.
"""

from __future__ import annotations

from typing import Callable

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import QAbstractItemView, QAbstractSlider, QAbstractSpinBox, QApplication, QComboBox, QLineEdit, QMessageBox, QTextEdit

from ..model.state import ViewerState

SHORTCUTS = (
    "←/→  previous/next epoch\n↑/↓  more/fewer layers\nSpace  play/pause the epoch sweep\n"
    "Esc  cancel the current pick\nShift+click (normal-path tool)  a fan of 8 normal paths\n"
    "Ctrl+Z  undo the last pick or path edit\n"
    "Ctrl+O  open · Ctrl+Shift+O  open with your model class · Ctrl+S  save session · Ctrl+E  export\n"
    "Ctrl+0  reset the view\nMouse: drag to pan, wheel to zoom (re-tessellates the window)"
)


def handle_key(state: ViewerState, key: int, has_run: bool, set_status: Callable[[str], None]) -> bool:
    """Apply a window-wide key to ``state``; returns True when handled."""
    if key == Qt.Key.Key_Escape:
        state.cancel_picks()
        if state.pick_mode != "inspect":
            set_status("Pick cancelled.")
        return True
    if not has_run:
        return False
    actions = {
        Qt.Key.Key_Left: lambda: state.step_epoch(-1),
        Qt.Key.Key_Right: lambda: state.step_epoch(1),
        Qt.Key.Key_Up: lambda: state.set_depth(state.depth + 1),
        Qt.Key.Key_Down: lambda: state.set_depth(state.depth - 1),
        Qt.Key.Key_Space: lambda: state.set_playing(not state.playing),
    }
    if key not in actions:
        return False
    actions[key]()
    return True


def show_keys(parent) -> None:
    QMessageBox.information(parent, "Keyboard shortcuts", SHORTCUTS)


class KeyFilter(QObject):
    """Routes arrows/space/Esc to the window unless a text field, spin box, list or slider has focus."""

    def __init__(self, window):
        super().__init__(window)
        self.window = window

    def eventFilter(self, obj, ev) -> bool:
        if ev.type() != QEvent.Type.KeyPress or ev.modifiers() & ~Qt.KeyboardModifier.KeypadModifier:
            return False
        w = QApplication.focusWidget()
        if w is not None and w.window() is not self.window:
            return False
        if isinstance(w, (QLineEdit, QTextEdit, QAbstractSpinBox, QComboBox, QAbstractItemView, QAbstractSlider)) and ev.key() != Qt.Key.Key_Escape:
            return False
        if obj is not w or w is None or w is self.window:
            return False  # once, at the focus widget; keys sent to the window go to its keyPressEvent
        return self.window.handle_key(ev.key())
