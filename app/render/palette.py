"""The one palette of Spline Atlas: class, path, boundary and anchor colours, the hash and layer ramps and
the slope colour map, as float RGBA in [0, 1]. The window (``app.qt.theme`` builds its Qt colours from
these), exported figures and videos, and the 3D view all colour from here, so a class has one colour
everywhere.
"""

from __future__ import annotations

import colorsys
import functools

import numpy as np

CLASS_COLORS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#3C00F0", "#691E00", "#96D269")
"""Classes 0..9, colour-blind-safe: Okabe & Ito's seven hues, then three chosen to stay apart from them and
from each other under simulated protanopia, deuteranopia and tritanopia (Machado et al. 2009), both at full
strength and as tiles are drawn (45 % over white); tests/test_palette.py holds the distances. Beyond 10
classes no qualitative palette stays colour-blind-safe: :func:`class_rgba` continues with golden-angle hues
(distinct, not colour-blind-safe), and the legend and inspector name every class."""
PATH_COLORS = ("#ff00aa", "#00b3b3", "#ff7f0e", "#7b3fe4", "#2ca02c", "#8c564b")
"""Traced paths, by path id (1-based) modulo the list."""
BOUNDARY_COLOR = "#e0102a"
NEUTRAL_COLOR = "#7f7f7f"
FOLLOW_COLOR = "#000000"  # a followed tile's outline (drawn over a white halo: visible on every class colour)
"""Curves of reference quantities (random points) beside the data's."""
CHANGED_COLOR = "#d000d0"
"""Compare mode: the outline and hatch of regions whose activation pattern differs in the other network."""
ANCHOR_COLOR = "#ffd400"
UNKNOWN = (0.5, 0.5, 0.5, 0.25)
"""Tiles whose value is unknown (no class, NaN slope)."""
TILE_ALPHA = 0.45
SLOPE_CMAP = "viridis"  # perceptually uniform, for ||A_w||
LAYER_CMAP = "plasma"  # layer of origin 1..L (0: light grey)
HASH_COLORS = 48


def hex_rgba(color: str, alpha: float = 1.0) -> tuple[float, float, float, float]:
    c = color.lstrip("#")
    return (int(c[0:2], 16) / 255, int(c[2:4], 16) / 255, int(c[4:6], 16) / 255, float(alpha))


def class_rgba(n: int, alpha: float = 1.0) -> np.ndarray:
    """(n, 4) float RGBA of classes 0..n-1: :data:`CLASS_COLORS`, then :func:`extra_class_rgba` beyond 10."""
    n = int(n)
    base = np.array([hex_rgba(c, alpha) for c in CLASS_COLORS])
    if n <= len(base):
        return base[:n]
    extra = extra_class_rgba(n - len(base)).copy()
    extra[:, 3] = alpha
    return np.concatenate([base, extra])


@functools.lru_cache(maxsize=8)
def extra_class_rgba(n: int) -> np.ndarray:
    """(n, 4) colours of classes 10, 11, ...: golden-angle hues at alternating lightness, so every class has
    its own colour however many there are (not colour-blind-safe; see :data:`CLASS_COLORS`)."""
    out = []
    for i in range(int(n)):
        r, g, b = colorsys.hls_to_rgb((0.07 + i * 0.618033988749895) % 1.0, (0.38, 0.55, 0.7)[i % 3], 0.75)
        out.append((r, g, b, 1.0))
    arr = np.array(out).reshape(-1, 4)
    arr.flags.writeable = False
    return arr


def class_hex(c: int) -> str:
    """'#rrggbb' of class ``c`` (the window's Qt colours)."""
    r, g, b, _ = class_rgba(int(c) + 1)[int(c)]
    return "#%02x%02x%02x" % (round(r * 255), round(g * 255), round(b * 255))


def path_color(path_id: int) -> str:
    return PATH_COLORS[(int(path_id) - 1) % len(PATH_COLORS)]


@functools.lru_cache(maxsize=4)
def hash_palette(n: int = HASH_COLORS) -> np.ndarray:
    """(n, 4) float RGBA well-separated colours for activation-pattern hashes (golden-angle hues)."""
    out = []
    for i in range(n):
        r, g, b = colorsys.hsv_to_rgb((i * 0.618033988749895) % 1.0, 0.45 + 0.3 * ((i * 7) % 3) / 2, 0.92 - 0.12 * (i % 2))
        out.append((r, g, b, 1.0))
    arr = np.array(out)
    arr.flags.writeable = False
    return arr


def colormap(name: str, t) -> np.ndarray:
    """(n, 4) float RGBA of matplotlib colour map ``name`` at ``t`` in [0, 1] (NaN -> the map's low end)."""
    import matplotlib

    t = np.clip(np.nan_to_num(np.asarray(t, dtype=np.float64)), 0.0, 1.0)
    return np.asarray(matplotlib.colormaps[name](t), dtype=np.float64)


def layer_rgba(depth: int) -> np.ndarray:
    """(depth + 1, 4) float RGBA for 'layer of origin' 0..depth (0 = never cut: light grey)."""
    ramp = colormap(LAYER_CMAP, 0.1 + 0.8 * np.arange(depth) / max(depth - 1, 1)) if depth else np.zeros((0, 4))
    return np.vstack([[[200 / 255, 200 / 255, 200 / 255, 1.0]], ramp])


def to_bytes(rgba) -> np.ndarray:
    """Float RGBA in [0, 1] -> uint8 (what Qt and image writers take)."""
    return np.clip(np.round(np.asarray(rgba, dtype=np.float64) * 255), 0, 255).astype(np.uint8)


__all__ = [
    "ANCHOR_COLOR",
    "BOUNDARY_COLOR",
    "CHANGED_COLOR",
    "CLASS_COLORS",
    "LAYER_CMAP",
    "NEUTRAL_COLOR",
    "PATH_COLORS",
    "SLOPE_CMAP",
    "TILE_ALPHA",
    "UNKNOWN",
    "class_hex",
    "class_rgba",
    "colormap",
    "extra_class_rgba",
    "hash_palette",
    "hex_rgba",
    "layer_rgba",
    "path_color",
    "to_bytes",
]
