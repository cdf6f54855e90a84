"""Training-dynamics figures from :class:`geometry.dynamics.DynamicsCurves` (matplotlib, no pyplot).

:func:`render_curves` draws a grid of panels against epoch (symlog x: runs are saved densely early):
accuracy, local complexity (train/test/random), exact region density near data / decision boundary /
random points, their boundary-to-data ratio (tiles migrating to the boundary: delayed robustness), mean Tr G, distance to the nearest region boundary
per layer. An optional epoch cursor marks the current checkpoint (as in the window's Training tab).
"""

from __future__ import annotations

import numpy as np

from . import palette, style

PANELS = ("accuracy", "local_complexity", "region_density", "migration", "trace_g", "boundary_distance")
PANEL_TITLES = {
    "accuracy": "accuracy",
    "local_complexity": "local complexity (hyperplanes crossing the frame)",
    "region_density": "exact regions per square (full depth)",
    "migration": "tiles at the decision boundary vs at the data",
    "trace_g": "mean Tr G(x) (test points)",
    "boundary_distance": "mean distance to nearest region boundary",
}


def _epoch_axis(ax, epochs: np.ndarray) -> None:
    ax.set_xscale("symlog", linthresh=max(1.0, float(np.min(epochs[epochs > 0], initial=1))))
    lo, hi = float(epochs.min()), float(max(epochs.max(), 1))
    ax.set_xlim(lo, hi if hi > lo else lo + 1)
    ax.set_xlabel("epoch")
    ax.grid(True, which="major", alpha=0.25, lw=0.5)


def draw_panel(ax, curves, panel: str, cursor_epoch: float | None = None) -> None:
    """Draw one panel of ``curves`` (a DynamicsCurves) into matplotlib axes ``ax``."""
    e = curves.epochs.astype(np.float64)
    L = curves.depth
    c = palette.CLASS_COLORS
    if panel == "accuracy":
        ax.plot(e, curves.column("train_accuracy"), color=c[0], lw=1.5, label="train")
        ax.plot(e, curves.column("test_accuracy"), color=c[5], lw=1.5, ls="--", label="test")
        ax.set_ylabel("accuracy")
        ax.set_ylim(-0.02, 1.02)
    elif panel == "local_complexity":
        for name, col, ls in (("lc_train", c[0], "-"), ("lc_test", c[5], "--"), ("lc_random", palette.NEUTRAL_COLOR, ":")):
            ax.plot(e, curves.column(name + "_total"), color=col, lw=1.5, ls=ls, label=name[3:])
        r = curves.points[0].lc_radius if curves.points else float("nan")
        ax.set_ylabel(f"LC (r = {r:.3g})")
    elif panel == "region_density":
        ax.plot(e, curves.column("density_data"), color=c[0], lw=1.5, label="around data")
        ax.plot(e, curves.column("density_boundary"), color=palette.BOUNDARY_COLOR, lw=1.5, label="on decision boundary")
        ax.plot(e, curves.column("density_random"), color=palette.NEUTRAL_COLOR, lw=1.2, ls=":", label="random points")
        h = curves.points[0].square_half_width if curves.points else float("nan")
        ax.set_ylabel(f"regions per {2 * h:.2g}×{2 * h:.2g} square")
    elif panel == "migration":
        ratio = curves.column("density_boundary") / curves.column("density_data")
        ax.plot(e, ratio, color="k", lw=1.5, label="boundary / data")
        ax.axhline(1.0, color="k", lw=0.6, ls=":", alpha=0.6)
        ax.set_ylabel("density ratio")
    elif panel == "trace_g":
        ax.plot(e, curves.column("mean_trace_g"), color=c[2], lw=1.5, label="mean Tr G")
        ax.set_ylabel("Tr G")
        v = curves.column("mean_trace_g")
        if np.all(v[np.isfinite(v)] > 0) and np.isfinite(v).sum() > 1 and np.nanmax(v) / max(np.nanmin(v), 1e-300) > 50:
            ax.set_yscale("log")
    elif panel == "boundary_distance":
        bd = curves.column("boundary_distance").reshape(len(curves.points), L)
        cols = palette.layer_rgba(L)
        for l in range(L):
            ax.plot(e, bd[:, l], color=cols[l + 1], lw=1.5, label=f"layer {l + 1}")
        ax.set_ylabel("distance (input units)")
    else:
        raise ValueError(f"unknown panel {panel!r}; one of {PANELS}")
    _epoch_axis(ax, curves.epochs)
    ax.set_title(PANEL_TITLES[panel])
    if cursor_epoch is not None:
        ax.axvline(cursor_epoch, color="k", lw=0.9, alpha=0.55, gid="epoch-cursor")
    ax.legend(loc="best", frameon=False)


def render_curves(
    curves,
    panels=PANELS,
    width: int = 1800,
    height: int = 1100,
    dpi: int = 150,
    cursor_epoch: float | None = None,
    font_scale: float = 1.0,
    title: str | None = None,
):
    """A Figure with ``panels`` (subset of PANELS) in a grid; pixel size width x height at ``dpi``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = list(panels)
    n = len(panels)
    cols = 1 if n == 1 else (2 if n <= 4 else 3)
    rows = (n + cols - 1) // cols
    with style.figure_style(font_scale):
        fig = Figure(figsize=((width + 1e-3) / dpi, (height + 1e-3) / dpi), dpi=dpi, layout="constrained")
        FigureCanvasAgg(fig)
        for k, p in enumerate(panels):
            draw_panel(fig.add_subplot(rows, cols, k + 1), curves, p, cursor_epoch)
        fig.suptitle(title if title is not None else f"Training dynamics · {curves.run_name}")
    return fig


__all__ = ["PANELS", "PANEL_TITLES", "draw_panel", "render_curves"]
