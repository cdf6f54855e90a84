"""Figure of a hyperplane density map (geometry.tessellation.density): layer l's bent-hyperplane length
per unit area over the slice, with its colour bar and units."""

from __future__ import annotations

from . import style


def render_density_figure(ed, title: str, width: int = 1100, height: int = 900):
    """A matplotlib Figure of the :class:`EdgeDensity` ``ed`` (u right, v up, as the 2D view)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    dpi = style.fit_dpi(width, height)
    with style.figure_style():
        fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi, layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        extent = (ed.u_edges[0], ed.u_edges[-1], ed.v_edges[0], ed.v_edges[-1])
        im = ax.imshow(ed.density.T, origin="lower", extent=extent, cmap="magma", interpolation="nearest", aspect="equal")
        bar = fig.colorbar(im, ax=ax, shrink=0.85)
        bar.set_label(f"layer {ed.layer + 1} edge length per unit area (1 / slice unit)")
        ax.set_xlabel("u (slice coordinate)")
        ax.set_ylabel("v (slice coordinate)")
        style.fit_text(ax.set_title(f"hyperplane density, layer {ed.layer + 1} — {title}"), 0.8 * width)
    return fig


__all__ = ["render_density_figure"]
