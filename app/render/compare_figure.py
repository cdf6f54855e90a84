"""The comparison figure: the two networks' exact tiles side by side on one slice, each region whose
activation pattern differs in the other network outlined and hatched (:mod:`app.jobs.compare`). Written by
``splineatlas compare`` and the Compare tab's export, drawn with the slice figure's own code."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from . import palette, style
from .slice_figure import FigureOptions, build_slice_scene, draw_slice


def side_title(side, other) -> str:
    n, k = len(side.changed), int(side.changed.sum())
    return f"{side.label}: {k:,} of {n:,} regions change pattern at {other.label}"


def render_comparison(comparison, options: FigureOptions | None = None):
    """A Figure (Agg canvas attached) with the two sides of ``comparison`` (:class:`app.jobs.compare.Comparison`)
    at full depth, linked axes, and one legend."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.collections import PolyCollection
    from matplotlib.figure import Figure

    opt = (options or FigureOptions(width=2000, height=1000, dpi=150)).check()
    with style.figure_style(opt.font_scale):
        fig = Figure(figsize=((opt.width + 1e-3) / opt.dpi, (opt.height + 1e-3) / opt.dpi), dpi=opt.dpi, layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(1, 2, sharex=True, sharey=True)
        fig.side_axes = []
        sides = comparison.sides()
        for i, (ax, side) in enumerate(zip(axes, sides)):
            other = sides[1 - i]
            scene = build_slice_scene(
                side.bundle, side.epoch_index, comparison.slice_, comparison.window, tessellations=side.by_depth, title=side_title(side, other)
            )
            draw_slice(fig, ax, scene, replace(opt, show_legend=opt.show_legend and i == 1))  # one legend for both
            full = side.by_depth[-1]
            polys = [p for p, c in zip(full.polygons(), side.changed) if c]
            ax.add_collection(
                PolyCollection(polys, facecolors="none", edgecolors=palette.CHANGED_COLOR, linewidths=1.0, hatch="///", zorder=3.5, gid="changed-regions")
            )
        if opt.show_title:
            title = (
                f"{comparison.slice_.description}: exact regions of two networks · "
                "hatched: the activation pattern differs in the other network (at the region's centroid)"
            )
            style.fit_text(fig.suptitle(title, fontsize="large", color="#202020"), 0.96 * opt.width)
    return fig


def changed_polygons(side) -> tuple[np.ndarray, np.ndarray]:
    """(vertices, offsets) of the side's changed regions at full depth, as the Compare tab draws them."""
    t = side.by_depth[-1]
    keep = np.asarray(side.changed, bool)
    counts = np.diff(t.offsets)
    verts = t.vertices[np.repeat(keep, counts)]
    return verts, np.concatenate([[0], np.cumsum(counts[keep])]).astype(np.int64)
