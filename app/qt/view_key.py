"""A screenshot of the 2D view that carries its own key: which slice point each pixel shows, where the
plot is, and the exact colour of each class's tiles as drawn. With the key, any test (or reader) can
check the picture against the network's forward pass pixel by pixel.

Key (JSON beside the PNG)::

    {"pixel_to_slice": [[a, b, c], [d, e, f]],   # u = a px + b py + c, v = d px + e py + f at pixel centres
     "plot_rect": [x0, y0, x1, y1],              # plot area in pixels (from the PNG's top-left)
     "class_colors": [[r, g, b], ...],           # class i's tile colour after transparency
     "epoch": E, "epoch_index": I, "depth": L, "mode": ..., "window": [umin, umax, vmin, vmax],
     "origin": [...], "basis": [[...], ...], "exact": true}
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PySide6.QtCore import QPoint
from PySide6.QtGui import QColor

from geometry.safe_io import atomic_output, write_text


def view_key(win) -> dict:
    """The key of ``win.view2d`` as :meth:`QWidget.grab` renders it now."""
    view = win.view2d
    plot = view.plot

    def to_slice(px: int, py: int) -> tuple[float, float]:
        """The slice point at the top-left corner of pixel (px, py) of ``view.grab()``."""
        vp = plot.viewport().mapFrom(view, QPoint(px, py))
        p = view.vb.mapSceneToView(plot.mapToScene(vp))
        return float(p.x()), float(p.y())

    # the mapping widget pixel -> slice is affine; read it off three integer pixels, then shift to centres
    o, ex, ey = to_slice(0, 0), to_slice(100, 0), to_slice(0, 100)
    a, d = (ex[0] - o[0]) / 100, (ex[1] - o[1]) / 100
    b, e = (ey[0] - o[0]) / 100, (ey[1] - o[1]) / 100
    c, f = o[0] + 0.5 * (a + b), o[1] + 0.5 * (d + e)
    vb_rect = plot.mapFromScene(view.vb.sceneBoundingRect()).boundingRect()
    top_left = plot.viewport().mapTo(view, vb_rect.topLeft())
    rect = vb_rect.translated(top_left - vb_rect.topLeft())
    bg = QColor(win.theme.background)
    from .theme import class_rgba

    rgba = class_rgba(max(win.bundle.num_classes, 1)).astype(np.float64)
    alpha = win.theme.tile_alpha / 255.0
    back = np.array([bg.red(), bg.green(), bg.blue()], dtype=np.float64)
    drawn = np.rint(alpha * rgba[:, :3] + (1 - alpha) * back).astype(int)
    st = win.state
    sl = st.slice
    return {
        "pixel_to_slice": [[a, b, c], [d, e, f]],
        "plot_rect": [rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1],
        "class_colors": drawn.tolist(),
        "epoch": int(win.bundle.epochs[st.epoch_index]),
        "epoch_index": int(st.epoch_index),
        "depth": int(st.depth),
        "mode": st.color_mode,
        "window": [float(v) for v in st.window],
        "origin": np.asarray(sl.origin, dtype=float).tolist(),
        "basis": np.asarray(sl.basis, dtype=float).tolist(),
        "exact": bool(win.tess is not None and not view.preview.isVisible()),
    }


def save_view(win, out: str | Path) -> dict:
    """Write the 2D view as a PNG and its key as ``<out>.json`` (both atomically); return the key."""
    out = Path(out)
    key = view_key(win)
    image = win.view2d.grab()
    with atomic_output(out) as tmp:
        if not image.save(str(tmp), "PNG"):
            raise OSError(f"could not write {out}")
    write_text(out.with_suffix(".json"), json.dumps(key, indent=1))
    return key
