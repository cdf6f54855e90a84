"""Figure of a generator's spline manifold: the latent tiles coloured by log volume change, the exact
manifold in output space (each tile's polygon through its own affine map; D = 3) with samples, or for a
generator of images its pictures on a grid over the latent window, and the histogram of the output-space
density each sampler draws from (exact per tile)."""

from __future__ import annotations

import numpy as np

from . import style


def render_generator_figure(tiles, samples: dict, title: str, data=None, width: int = 2400, height: int = 800, grid=None):
    """``samples``: {label: (X (n, D), which (n,), density (n,))}; the first one is drawn on the manifold.
    ``grid``: an :class:`app.jobs.manifold3d.ImageGrid` drawn in the middle instead (a generator of images)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.collections import PolyCollection
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    t = tiles.tess
    logv = np.log(np.maximum(tiles.volume, 1e-300))
    norm = Normalize(float(logv.min()), float(logv.max()) if logv.max() > logv.min() else float(logv.min()) + 1e-9)
    polys = [t.vertices[t.offsets[r] : t.offsets[r + 1]] for r in range(t.num_regions)]
    dpi = style.fit_dpi(width, height)
    with style.figure_style():
        fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi, layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 3, 1)
        pc = PolyCollection(polys, array=logv, cmap="viridis", norm=norm, edgecolors="k", linewidths=0.2)
        ax.add_collection(pc)
        ax.set_xlim(t.domain[:, 0].min(), t.domain[:, 0].max())
        ax.set_ylim(t.domain[:, 1].min(), t.domain[:, 1].max())
        ax.set_aspect("equal")
        ax.set_xlabel("z₁ (latent)")
        ax.set_ylabel("z₂ (latent)")
        ax.set_title(f"{t.num_regions} latent tiles")
        fig.colorbar(pc, ax=ax, shrink=0.8).set_label("log sqrt(det(AᵀA)) (log volume change)")
        label, (X, _, _) = next(iter(samples.items()))
        if grid is not None:
            ag = fig.add_subplot(1, 3, 2)
            z0, z1, w0, w1 = grid.window
            ag.imshow(grid.mosaic, cmap="gray", vmin=0, vmax=255, extent=(z0, z1, w0, w1), interpolation="nearest", aspect="equal")
            ag.set_xlabel("z₁ (latent)")
            ag.set_ylabel("z₂ (latent)")
            r, c = grid.latent.shape[:2]
            ag.set_title(f"G(z) on a {r} x {c} grid (cell centres)")
        elif tiles.A.shape[1] == 3:
            ax3 = fig.add_subplot(1, 3, 2, projection="3d")
            images = tiles.image_vertices()
            faces = [images[t.offsets[r] : t.offsets[r + 1]] for r in range(t.num_regions)]
            ax3.add_collection3d(Poly3DCollection(faces, facecolors=style_colours(logv, norm), edgecolors=(0, 0, 0, 0.15), linewidths=0.2, alpha=0.6))
            ax3.scatter(X[:, 0], X[:, 1], X[:, 2], s=1.5, c="#d62728", depthshade=False, label=f"{label} samples")
            if data is not None:
                ax3.scatter(data[:, 0], data[:, 1], data[:, 2], s=1, c="k", alpha=0.3, depthshade=False, label="training data")
            lo, hi = images.min(0), images.max(0)
            ax3.set_xlim(lo[0], hi[0])
            ax3.set_ylim(lo[1], hi[1])
            ax3.set_zlim(lo[2], hi[2])
            ax3.set_xlabel("x₁")
            ax3.set_ylabel("x₂")
            ax3.set_zlabel("x₃")
            ax3.set_title("the manifold: exact tile images")
            ax3.legend(loc="upper left", fontsize="small", frameon=False)
        ah = fig.add_subplot(1, 3, 3)
        every = np.concatenate([d for _, _, d in samples.values()])
        every = every[every > 0]
        bins = np.geomspace(every.min(), every.max() * 1.0001, 40) if every.size and every.max() > every.min() else 10
        for name, (_, _, dens) in samples.items():
            ah.hist(dens[dens > 0], bins=bins, histtype="step", lw=1.6, label=name)
        ah.set_xscale("log")
        ah.set_xlabel("density on the manifold at the sample (1 / output unit²)")
        ah.set_ylabel("number of samples")
        ah.set_title("density on the manifold: uniform is one bar")
        ah.legend(frameon=False)
        style.fit_text(fig.suptitle(title), 0.95 * width)
    return fig


def style_colours(values: np.ndarray, norm) -> np.ndarray:
    import matplotlib

    return matplotlib.colormaps["viridis"](norm(values))


__all__ = ["render_generator_figure"]
