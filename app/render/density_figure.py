"""Figure of a hyperplane density map (geometry.tessellation.density): layer l's bent-hyperplane length
per unit area over the slice, with its colour bar and units."""

from __future__ import annotations

import numpy as np

from . import style


def render_density_figure(ed, title: str, counts=None, width: int | None = None, height: int = 900):
    """A matplotlib Figure of the :class:`EdgeDensity` ``ed`` (u right, v up, as the 2D view), and beside it
    the :class:`CrossingCounts` ``counts`` when given."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = 1 if counts is None else 2
    width = width or (1100 if panels == 1 else 2000)
    dpi = style.fit_dpi(width, height)
    extent = (ed.u_edges[0], ed.u_edges[-1], ed.v_edges[0], ed.v_edges[-1])
    with style.figure_style():
        fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi, layout="constrained")
        FigureCanvasAgg(fig)
        maps = [(ed.density, "magma", f"layer {ed.layer + 1} edge length per unit area (1 / slice unit)", "edge length per unit area")]
        if counts is not None:
            maps.append(
                (
                    counts.counts,
                    "viridis",
                    f"layer {ed.layer + 1} neurons crossing the disc (r = {counts.radius:g})",
                    f"neurons whose zero set meets a disc of radius {counts.radius:g}",
                )
            )
        for k, (values, cmap, bar_label, name) in enumerate(maps):
            ax = fig.add_subplot(1, panels, k + 1)
            im = ax.imshow(values.T, origin="lower", extent=extent, cmap=cmap, interpolation="nearest", aspect="equal")
            fig.colorbar(im, ax=ax, shrink=0.85).set_label(bar_label)
            ax.set_xlabel("u (slice coordinate)")
            ax.set_ylabel("v (slice coordinate)")
            ax.set_title(name)
        style.fit_text(fig.suptitle(f"hyperplane density, layer {ed.layer + 1} — {title}"), 0.95 * width)
    return fig


def render_density_experiment(result, width: int = 1800, height: int = 1700):
    """The survey's Fig. 8 layout: a row per initialisation, a column per layer, each panel the share of
    that layer's hyperplane length per grid cell (one colour scale for all: where the hyperplanes are),
    with the data drawn over it and the concentration in the panel's title."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    configs = list(result.densities)
    shares = {c: [m.density * m.cell_area / max(m.total_length, 1e-300) for m in result.densities[c]] for c in configs}
    top = max(float(s.max()) for c in configs for s in shares[c]) or 1.0
    floor = top * 1e-3  # a log scale over three decades: a smooth spread and a single line both show
    from matplotlib.colors import LogNorm

    norm = LogNorm(floor, top)
    dpi = style.fit_dpi(width, height)
    with style.figure_style():
        fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi, layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(len(configs), len(result.layers), squeeze=False)
        im = None
        for i, c in enumerate(configs):
            for j, layer in enumerate(result.layers):
                ax, m = axes[i, j], result.densities[c][j]
                extent = (m.u_edges[0], m.u_edges[-1], m.v_edges[0], m.v_edges[-1])
                im = ax.imshow(np.maximum(shares[c][j].T, floor), origin="lower", extent=extent, cmap="magma", norm=norm, interpolation="nearest")
                ax.scatter(result.data[:, 0], result.data[:, 1], s=0.3, c="#4fc3f7", alpha=0.35, linewidths=0)
                share = result.concentration[c][j]
                on_data = "no hyperplane in the domain" if not np.isfinite(share) else f"{100 * share:.0f} % on data cells"
                ax.set_title(f"{c} · layer {layer}\n{on_data}", fontsize="small")
                ax.set_xlabel("x₁" if i == len(configs) - 1 else "")
                ax.set_ylabel("x₂" if j == 0 else "")
        fig.colorbar(im, ax=axes, shrink=0.6).set_label(f"share of the layer's hyperplane length per cell (log scale; below {floor:.1e}: the bottom colour)")
        style.fit_text(
            fig.suptitle(
                f"hyperplanes at initialisation, 2-{result.width}x{result.depth}-2 ReLU net, star-shaped data "
                f"(data cells: {100 * result.data_cells:.0f} % of the grid)"
            ),
            0.95 * width,
        )
    return fig


__all__ = ["render_density_experiment", "render_density_figure"]
