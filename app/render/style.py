"""Shared look of exported figures: palettes (the same as the window's, see app/qt/theme.py, restated
here because that module imports Qt) and publication defaults (fonts, line widths)."""
from __future__ import annotations

import colorsys
from contextlib import contextmanager

import numpy as np

# Colour-blind-friendly qualitative palette (Okabe-Ito, then Tableau): identical to app.qt.theme.CLASS_COLORS.
CLASS_COLORS = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442",
                "#7f7f7f", "#8c564b", "#17becf", "#bcbd22", "#9467bd"]
BOUNDARY_COLOR = "#e0102a"
ANCHOR_COLOR = "#ffd400"
EDGE_NEW = (0.08, 0.08, 0.08, 0.75)
EDGE_OLD = (0.35, 0.35, 0.35, 0.35)
UNKNOWN = (0.5, 0.5, 0.5, 0.25)
TILE_ALPHA = 0.45
SLOPE_CMAP = "viridis"
LAYER_CMAP = "plasma"

RC = {
    "font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "legend.fontsize": 8.5,
    "xtick.labelsize": 9, "ytick.labelsize": 9, "axes.linewidth": 0.8, "font.family": "DejaVu Sans",
    "svg.fonttype": "none", "pdf.fonttype": 42, "figure.facecolor": "white", "savefig.facecolor": "white",
}


def fit_dpi(width: int, height: int) -> int:
    """The dpi at which a ``width`` x ``height`` px figure is at least 6.4 x 4.8 inches (matplotlib's own
    default page): fonts, legend and title then keep their proportions at any pixel size (a small video
    frame at a fixed 200 dpi crowds its title and legend)."""
    return int(min(max(round(min(width / 6.4, height / 4.8)), 50), 1200))


@contextmanager
def figure_style(font_scale: float = 1.0):
    """matplotlib rc context with the export defaults (fonts scaled by ``font_scale``)."""
    import matplotlib as mpl

    rc = dict(RC)
    for k in ("font.size", "axes.titlesize", "axes.labelsize", "legend.fontsize", "xtick.labelsize", "ytick.labelsize"):
        rc[k] = rc[k] * font_scale
    with mpl.rc_context(rc):
        yield


def hex_rgba(color: str, alpha: float = 1.0) -> tuple[float, float, float, float]:
    c = color.lstrip("#")
    return (int(c[0:2], 16) / 255, int(c[2:4], 16) / 255, int(c[4:6], 16) / 255, alpha)


def class_rgba(n: int, alpha: float = 1.0) -> np.ndarray:
    """(n, 4) float RGBA class colours."""
    cycle = np.array([hex_rgba(c, alpha) for c in CLASS_COLORS])
    return cycle[np.arange(int(n)) % len(cycle)]


def hash_palette(n: int = 48) -> np.ndarray:
    """(n, 4) float RGBA well-separated colours for activation-pattern hashes (golden-angle hues, as the window)."""
    out = []
    for i in range(n):
        r, g, b = colorsys.hsv_to_rgb((i * 0.618033988749895) % 1.0, 0.45 + 0.3 * ((i * 7) % 3) / 2, 0.92 - 0.12 * (i % 2))
        out.append((r, g, b, 1.0))
    return np.array(out)


def layer_rgba(depth: int) -> np.ndarray:
    """(depth + 1, 4) float RGBA for 'layer of origin' 0..depth (0 = never cut: light grey), as the window."""
    import matplotlib

    cmap = matplotlib.colormaps[LAYER_CMAP]
    cols = [(200 / 255, 200 / 255, 200 / 255, 1.0)]
    for j in range(1, depth + 1):
        cols.append(tuple(cmap(0.1 + 0.8 * (j - 1) / max(depth - 1, 1))))
    return np.array(cols)
