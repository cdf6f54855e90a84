"""Colours and light/dark theme: follows the system colour scheme, sets pyqtgraph's defaults to match.

Colours come from the one palette (:mod:`app.render.palette`); this module makes Qt colours of them and
picks the few theme colours (background, edges) of the light or dark scheme.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette

from ..render import palette
from ..render.palette import BOUNDARY_COLOR, CLASS_COLORS  # noqa: F401  (the one palette, as Qt colours below)


def is_dark() -> bool:
    """Whether the system (or the app palette) is in dark mode."""
    app = QGuiApplication.instance()
    if app is None:
        return False
    try:
        scheme = app.styleHints().colorScheme()
        if scheme == Qt.ColorScheme.Dark:
            return True
        if scheme == Qt.ColorScheme.Light:
            return False
    except AttributeError:  # Qt < 6.5
        pass
    return app.palette().color(QPalette.ColorRole.Window).lightness() < 128


def class_color(c: int, alpha: int = 255) -> QColor:
    col = QColor(palette.class_hex(c))
    col.setAlpha(alpha)
    return col


def class_rgba(n: int) -> np.ndarray:
    """(n, 4) uint8 class colours of the one palette."""
    return palette.to_bytes(palette.class_rgba(n))


def use_dark_palette(app) -> None:
    """Force a dark Fusion palette (for ``--theme dark`` where the system gives no dark scheme)."""
    app.setStyle("Fusion")
    pal = QPalette()
    base, window, text = QColor("#1e1f22"), QColor("#2b2d30"), QColor("#dfe1e5")
    for role, col in [
        (QPalette.ColorRole.Window, window),
        (QPalette.ColorRole.WindowText, text),
        (QPalette.ColorRole.Base, base),
        (QPalette.ColorRole.AlternateBase, window),
        (QPalette.ColorRole.Text, text),
        (QPalette.ColorRole.Button, window),
        (QPalette.ColorRole.ButtonText, text),
        (QPalette.ColorRole.ToolTipBase, window),
        (QPalette.ColorRole.ToolTipText, text),
        (QPalette.ColorRole.Highlight, QColor("#3574f0")),
        (QPalette.ColorRole.HighlightedText, QColor("#ffffff")),
    ]:
        pal.setColor(role, col)
    app.setPalette(pal)


class Theme:
    """The few colours the views need, for the current light/dark scheme."""

    def __init__(self, dark: bool | None = None):
        self.dark = is_dark() if dark is None else dark
        if self.dark:
            self.background, self.foreground = "#1e1f22", "#d8d8d8"
            self.edge_new, self.edge_old, self.edge_domain = QColor(240, 240, 240, 230), QColor(150, 150, 150, 110), QColor(200, 200, 200, 200)
            self.tile_alpha = 150
        else:
            self.background, self.foreground = "#ffffff", "#202020"
            self.edge_new, self.edge_old, self.edge_domain = QColor(20, 20, 20, 170), QColor(90, 90, 90, 75), QColor(40, 40, 40, 200)
            self.tile_alpha = 110
        self.unknown = QColor(128, 128, 128, 60)

    def apply_pyqtgraph(self) -> None:
        pg.setConfigOptions(antialias=True, background=self.background, foreground=self.foreground)
