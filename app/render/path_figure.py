"""Static figure of a traced path (the Paths tab as a publication figure): the slice with the path
projected into it, the class probabilities along the path, and — for image data — a strip of the
images at evenly spaced points of the path.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from . import palette, style
from .images import display_images
from .slice_figure import FigureOptions, SliceScene, draw_slice


def render_path_figure(
    scene: SliceScene,
    slice_,
    points: np.ndarray,
    probs: np.ndarray,
    label: str,
    class_names,
    image_shape=None,
    n_images: int = 8,
    options: FigureOptions | None = None,
    preprocessing=None,
):
    """Figure: slice + path (left), p(class | x_t) against step (right), image strip (bottom, image data).

    points: (K, D) the path in input space; probs: (K, C) class probabilities at those points;
    preprocessing: the run's (images are shown de-normalised, see app.render.images).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    opt = (options or FigureOptions(width=1600, height=900 if image_shape else 700, dpi=150)).check()
    points = np.asarray(points, dtype=np.float64)
    probs = np.asarray(probs, dtype=np.float64)
    u = slice_.project(points)
    off = slice_.distance_to_plane(points)
    lab = label + (f" (leaves the plane by ≤ {off.max():.2g})" if off.max() > 1e-9 else "")
    scene = replace(scene, paths=((lab, u, "#111111"),))
    with style.figure_style(opt.font_scale):
        fig = Figure(figsize=((opt.width + 1e-3) / opt.dpi, (opt.height + 1e-3) / opt.dpi), dpi=opt.dpi, layout="constrained")
        FigureCanvasAgg(fig)
        rows = 2 if image_shape else 1
        gs = fig.add_gridspec(rows, 2, width_ratios=[1.0, 1.15], height_ratios=[3.0, 1.0][:rows])
        ax = fig.add_subplot(gs[0, 0])
        draw_slice(fig, ax, scene, opt)
        pa = fig.add_subplot(gs[0, 1])
        C = probs.shape[1]
        names = list(class_names)[:C] + [str(c) for c in range(len(class_names), C)]
        cols = palette.class_rgba(C)
        steps = np.arange(probs.shape[0])
        for c in range(C):
            if probs[:, c].max() > 0.02:
                pa.plot(steps, probs[:, c], color=cols[c], lw=1.6, label=names[c])
        pa.set_xlabel("point along the path")
        pa.set_ylabel("p(class | x)")
        pa.set_ylim(-0.02, 1.02)
        pa.grid(True, alpha=0.25, lw=0.5)
        style.fit_text(pa.set_title("class probabilities along the path"), 0.5 * opt.width)
        pa.legend(loc="best", frameon=False, ncols=2 if C > 5 else 1)
        if image_shape:
            k = np.unique(np.round(np.linspace(0, len(points) - 1, n_images)).astype(int))
            sub = gs[1, :].subgridspec(1, len(k))
            shown = display_images(points[k], image_shape, preprocessing)
            for j, i in enumerate(k):
                a = fig.add_subplot(sub[0, j])
                a.imshow(shown.images[j], cmap=None if shown.rgb else "gray_r", vmin=shown.vmin, vmax=shown.vmax)
                a.set_xticks([])
                a.set_yticks([])
                a.set_title(f"{i}: {names[int(np.argmax(probs[i]))]}", fontsize=8 * opt.font_scale)
    return fig


__all__ = ["render_path_figure"]
