"""Colours and light/dark theme: follows the system colour scheme, sets pyqtgraph's defaults to match.

Class colours are a colour-blind-friendly qualitative palette (Okabe-Ito, then Tableau);
continuous values (||A_w||) use the perceptually uniform viridis map.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette

CLASS_COLORS = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442",
                "#7f7f7f", "#8c564b", "#17becf", "#bcbd22", "#9467bd"]
BOUNDARY_COLOR = "#e0102a"


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
    col = QColor(CLASS_COLORS[int(c) % len(CLASS_COLORS)])
    col.setAlpha(alpha)
    return col


def class_rgba(n: int) -> np.ndarray:
    """(n, 4) uint8 class colours: the palette's cycle built once and repeated with numpy, so the cost on
    the GUI thread does not grow with a file's class count beyond one array of n rows."""
    cycle = np.array([class_color(i).getRgb() for i in range(len(CLASS_COLORS))], dtype=np.uint8)
    return cycle[np.arange(int(n)) % len(cycle)]


def slope_colormap() -> pg.ColorMap:
    return pg.colormap.get("viridis")


def hash_palette(n: int = 48) -> np.ndarray:
    """(n, 4) uint8 well-separated colours for activation-pattern hashes (golden-angle hues)."""
    out = []
    for i in range(n):
        c = QColor.fromHsvF((i * 0.618033988749895) % 1.0, 0.45 + 0.3 * ((i * 7) % 3) / 2, 0.92 - 0.12 * (i % 2))
        out.append(c.getRgb())
    return np.array(out, dtype=np.uint8)


def layer_rgba(depth: int) -> np.ndarray:
    """(depth + 1, 4) uint8 colours for 'layer of origin' 0..depth (0 = never cut: light grey)."""
    cmap = pg.colormap.get("plasma")
    cols = [np.array([200, 200, 200, 255], np.uint8)]
    for j in range(1, depth + 1):
        cols.append(np.asarray(cmap.map(0.1 + 0.8 * (j - 1) / max(depth - 1, 1), mode="byte"), np.uint8))
    return np.array(cols)


def use_dark_palette(app) -> None:
    """Force a dark Fusion palette (for ``--theme dark`` where the system gives no dark scheme)."""
    app.setStyle("Fusion")
    pal = QPalette()
    base, window, text = QColor("#1e1f22"), QColor("#2b2d30"), QColor("#dfe1e5")
    for role, col in [(QPalette.ColorRole.Window, window), (QPalette.ColorRole.WindowText, text),
                      (QPalette.ColorRole.Base, base), (QPalette.ColorRole.AlternateBase, window),
                      (QPalette.ColorRole.Text, text), (QPalette.ColorRole.Button, window),
                      (QPalette.ColorRole.ButtonText, text), (QPalette.ColorRole.ToolTipBase, window),
                      (QPalette.ColorRole.ToolTipText, text), (QPalette.ColorRole.Highlight, QColor("#3574f0")),
                      (QPalette.ColorRole.HighlightedText, QColor("#ffffff"))]:
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
