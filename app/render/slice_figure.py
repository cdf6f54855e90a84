"""The 2D slice figure: exact tiles as vector polygons, layer edges, exact decision boundary, data.

:func:`build_slice_scene` gathers what a figure shows (Qt-free, through :mod:`app.jobs`, so the CLI
and the window use the same engine calls and cache); :func:`render_slice` draws a
:class:`SliceScene` into a matplotlib Figure (no pyplot, no global state); :func:`save_figure` writes
PNG (chosen pixel size and DPI), SVG or PDF atomically; :func:`figure_to_rgb` gives the pixels (video
frames). In vector output the tiles are one ``<path>`` per region inside the SVG group ``id="tiles"``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from geometry.errors import SplineAtlasError

from geometry.safe_io import atomic_output

from ..model.state import COLOR_MODE_LABELS, COLOR_MODES
from . import palette, style
from .tiles import TileColours
from .tiles import tile_colours as shared_tile_colours

MODE_LABELS = {k: v[0].lower() + v[1:] for k, v in COLOR_MODE_LABELS.items()}
FIGURE_FORMATS = (".png", ".svg", ".pdf")


@dataclass(frozen=True, eq=False)
class SliceScene:
    """What one slice figure shows (all in slice coordinates u).

    tessellations: Tessellation2D for depths 1..L (one pass of the engine); depth: 1-based layer depth
    shown; window: (umin, umax, vmin, vmax); class_names: (C,); points_u (N, 2) / points_y (N,): data
    (their projections when D > 2, drawn lighter); anchors_u: (k, 2) the slice's defining points;
    paths: ((label, u (n, 2), colour), ...); marker: (2,) a highlighted point (path animations);
    title: figure title; axis_labels: the two axis labels.
    """

    tessellations: tuple
    depth: int
    window: tuple[float, float, float, float]
    class_names: tuple[str, ...]
    points_u: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    points_y: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    points_on_plane: bool = True
    anchors_u: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    paths: tuple = ()
    marker: np.ndarray | None = None
    sites: np.ndarray | None = None  # (R, 2) power-diagram sites of the shown depth, drawn as on screen
    title: str = ""
    axis_labels: tuple[str, str] = ("u₁", "u₂")
    boundary_name: str = "decision boundary"  # a regression run's: "level set f = L"
    follow: np.ndarray | None = None  # (2,) a point whose tile at the shown depth is outlined (a region followed)

    @property
    def full(self):
        return self.tessellations[-1]

    @property
    def current(self):
        return self.tessellations[self.depth - 1]


@dataclass(frozen=True)
class FigureOptions:
    """How a figure is drawn. width/height in pixels at ``dpi`` (PNG is exactly width x height; SVG/PDF
    have the same physical size, width/dpi inches). ``font_scale`` multiplies the default font sizes."""

    mode: str = "class"
    width: int = 1200
    height: int = 1000
    dpi: int = 200
    show_edges: bool = True
    show_boundary: bool = True
    show_points: bool = True
    show_legend: bool = True
    show_colorbar: bool = True
    show_title: bool = True
    font_scale: float = 1.0

    def check(self) -> "FigureOptions":
        if self.mode not in COLOR_MODES:
            raise SplineAtlasError(f"colour mode must be one of {', '.join(COLOR_MODES)}; got {self.mode!r}.")
        if not (16 <= self.width <= 20000 and 16 <= self.height <= 20000):
            raise SplineAtlasError(f"figure size {self.width}x{self.height} px is out of range (16..20000).")
        if not 10 <= self.dpi <= 2400:
            raise SplineAtlasError(f"dpi {self.dpi} is out of range (10..2400).")
        return self


# -- gathering the scene -------------------------------------------------------------------------
def build_slice_scene(
    bundle,
    epoch_index: int,
    slice_,
    window,
    depth: int | None = None,
    cache=None,
    max_regions: int = 200_000,
    progress=None,
    cancel=None,
    title: str | None = None,
    tessellations=None,
) -> SliceScene:
    """Tessellate ``window`` of ``slice_`` at checkpoint ``epoch_index`` of ``bundle`` (app.jobs.RunBundle)
    and collect the data to draw. Same engine call and cache key as the window (app.jobs.tessellate_all);
    ``tessellations``: that call's result when the caller already has it."""
    from app import jobs

    n = len(bundle.run)
    if not -n <= epoch_index < n:
        raise SplineAtlasError(f"checkpoint index {epoch_index} is out of range; the run has {n} checkpoints.")
    epoch_index %= n
    L = bundle.depth
    depth = L if depth is None else int(depth)
    if not 1 <= depth <= L:
        raise SplineAtlasError(f"layer must be between 1 and {L}; got {depth}.")
    window = tuple(float(w) for w in window)
    if tessellations is None:
        tessellations = jobs.tessellate_all(bundle, epoch_index, slice_, window, max_regions, cache, progress, cancel)
    tess = tuple(tessellations)
    X, y = bundle.points()
    if len(X):
        u = slice_.project(X)
        inside = (u[:, 0] >= window[0]) & (u[:, 0] <= window[1]) & (u[:, 1] >= window[2]) & (u[:, 1] <= window[3])
        u, y = u[inside], np.asarray(y)[inside]
    else:
        u, y = np.zeros((0, 2)), np.zeros(0, dtype=np.int64)
    anchors = slice_.anchors if slice_.anchors.shape[0] and slice_.ambient_dim > 2 else np.zeros((0, 2))
    if anchors.shape[0] and anchors.shape[1] != 2:
        anchors = slice_.project(anchors)
    labels = (
        ("x₁", "x₂")
        if bundle.input_dim == 2 and np.allclose(slice_.basis, np.eye(2)) and np.allclose(slice_.origin, 0)
        else ("u₁ (slice axis 1, input units)", "u₂ (slice axis 2, input units)")
    )
    if title is None:
        t = tess[depth - 1]
        layers = f"layers 1–{depth}" if depth > 1 else "layer 1"
        title = f"{bundle.name} · epoch {bundle.epochs[epoch_index]} · {layers} of {L} · {t.num_regions:,} regions"
    return SliceScene(
        tess,
        depth,
        window,
        tuple(bundle.class_names),
        u,
        np.asarray(y, dtype=np.int64),
        bundle.input_dim == 2,
        np.asarray(anchors, dtype=np.float64),
        title=title,
        axis_labels=labels,
        boundary_name=bundle.boundary_name,
    )


# -- colours: the one tile colouring (app.render.tiles), shared with the window's 2D tab -------------------
def tile_colours(scene: SliceScene, mode: str) -> TileColours:
    """The tiling drawn in ``mode`` and its colours (:func:`app.render.tiles.tile_colours`)."""
    return shared_tile_colours(scene.tessellations, scene.depth, mode, len(scene.class_names), palette.TILE_ALPHA)


def _split(vertices: np.ndarray, offsets: np.ndarray) -> list[np.ndarray]:
    return np.split(vertices, offsets[1:-1]) if offsets.shape[0] > 1 else []


# -- drawing -------------------------------------------------------------------------------------
def render_slice(scene: SliceScene, options: FigureOptions | None = None, side_panels: int = 0):
    """Draw ``scene`` into a new matplotlib Figure (Agg canvas attached) of options' pixel size.

    side_panels: number of extra axes stacked in a right-hand column (path animations use them); the
    figure's ``side_axes`` attribute lists them.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    opt = (options or FigureOptions()).check()
    with style.figure_style(opt.font_scale):
        fig = Figure(figsize=((opt.width + 1e-3) / opt.dpi, (opt.height + 1e-3) / opt.dpi), dpi=opt.dpi, layout="constrained")
        FigureCanvasAgg(fig)
        if side_panels:
            gs = fig.add_gridspec(side_panels, 2, width_ratios=[1.9, 1.0])
            ax = fig.add_subplot(gs[:, 0])
            fig.side_axes = [fig.add_subplot(gs[k, 1]) for k in range(side_panels)]
        else:
            ax = fig.add_subplot(1, 1, 1)
            fig.side_axes = []
        draw_slice(fig, ax, scene, opt)
    return fig


def draw_slice(fig, ax, scene: SliceScene, opt: FigureOptions) -> None:
    """Draw the slice figure's content into ``ax`` (colour bar and legend attached to ``fig``)."""
    from matplotlib.collections import LineCollection, PolyCollection
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    tiles = tile_colours(scene, opt.mode)
    pc = PolyCollection(_split(tiles.vertices, tiles.offsets), facecolors=tiles.rgba, edgecolors="none", linewidths=0, antialiased=False)
    pc.set_gid("tiles")
    ax.add_collection(pc)
    if tiles.overlay is not None:
        oc = PolyCollection(_split(tiles.overlay[0], tiles.overlay[1]), facecolors=tiles.overlay[2], edgecolors="none", linewidths=0, antialiased=False)
        oc.set_gid("class-cells")
        ax.add_collection(oc)
    t = scene.current
    w = scene.window
    legend = []
    if opt.mode == "class":
        legend += [
            Patch(facecolor=palette.class_rgba(len(scene.class_names), 0.75)[i], edgecolor="none", label=n) for i, n in enumerate(scene.class_names[:12])
        ]
    if opt.show_edges:
        table = t.vertex_table  # each edge once: a shared edge is not stroked twice
        seg, el = table.segments, table.edge_layer
        old, new = seg[(el >= 0) & (el < t.depth - 1)], seg[el == t.depth - 1]
        lw = 0.4  # points: the same at every dpi
        if len(old):
            lc = LineCollection(old, colors=[style.EDGE_OLD], linewidths=lw)
            lc.set_gid("edges-older-layers")
            ax.add_collection(lc)
        if len(new):
            lc = LineCollection(new, colors=[style.EDGE_NEW], linewidths=lw * 1.4)
            lc.set_gid("edges-newest-layer")
            ax.add_collection(lc)
        legend.append(Line2D([], [], color=style.EDGE_NEW, lw=1.2, label=f"cuts of layer {t.depth}"))
        if t.depth > 1:
            legend.append(Line2D([], [], color=style.EDGE_OLD, lw=1.2, label="cuts of layer 1" if t.depth == 2 else f"cuts of layers 1–{t.depth - 1}"))
    if opt.mode == "layer":
        cols = palette.layer_rgba(len(scene.full.layers))
        legend += [Patch(facecolor=cols[j], label=f"tile last cut by layer {j}") for j in range(1, t.depth + 1)]
    if opt.show_boundary and len(scene.full.boundary_segments):
        bc = LineCollection(scene.full.boundary_segments, colors=palette.BOUNDARY_COLOR, linewidths=1.6)
        bc.set_gid("decision-boundary")
        ax.add_collection(bc)
        legend.append(Line2D([], [], color=palette.BOUNDARY_COLOR, lw=1.6, label=f"{scene.boundary_name} (exact)"))
    if opt.show_points and len(scene.points_u):
        cols = palette.class_rgba(max(len(scene.class_names), int(scene.points_y.max(initial=0)) + 1), 0.95 if scene.points_on_plane else 0.5)
        ax.scatter(
            scene.points_u[:, 0],
            scene.points_u[:, 1],
            s=7 if len(scene.points_u) > 300 else 14,
            c=cols[scene.points_y],
            edgecolors=(0, 0, 0, 0.6),
            linewidths=0.3,
            zorder=3,
            gid="data-points",
        )
        legend.append(
            Line2D(
                [],
                [],
                ls="none",
                marker="o",
                mfc="#bbbbbb",
                mec="k",
                mew=0.4,
                ms=4.5,
                label="training data" if scene.points_on_plane else "training data (projected)",
            )
        )
    if len(scene.anchors_u):
        ax.scatter(
            scene.anchors_u[:, 0],
            scene.anchors_u[:, 1],
            marker="*",
            s=140,
            c=palette.ANCHOR_COLOR,
            edgecolors="k",
            linewidths=0.7,
            zorder=5,
            gid="slice-anchors",
        )
        legend.append(Line2D([], [], ls="none", marker="*", mfc=palette.ANCHOR_COLOR, mec="k", ms=9, label="slice's defining points"))
    for label, pu, colour in scene.paths:
        pu = np.asarray(pu)
        ax.plot(pu[:, 0], pu[:, 1], color=colour, lw=1.6, zorder=4, gid="path")
        ax.plot(pu[:1, 0], pu[:1, 1], "o", color=colour, ms=4, zorder=4)
        legend.append(Line2D([], [], color=colour, lw=1.6, label=label))
    if scene.sites is not None and len(scene.sites):
        ax.plot(scene.sites[:, 0], scene.sites[:, 1], "x", color="#202020", ms=4, mew=0.9, zorder=5, gid="sites")
        legend.append(Line2D([], [], ls="none", marker="x", color="#202020", label=f"power-diagram sites (layer {scene.depth})"))
    if scene.marker is not None:
        ax.plot([scene.marker[0]], [scene.marker[1]], "o", ms=9, mfc="white", mec="k", mew=1.5, zorder=6, gid="inspected-point")
    if scene.follow is not None:
        t_cur = scene.current
        r = int(t_cur.region_of(np.asarray(scene.follow, dtype=np.float64).reshape(1, 2))[0])
        if r >= 0:
            poly = t_cur.polygon(r)
            from matplotlib import patheffects

            halo = [patheffects.Stroke(linewidth=4.6, foreground="white"), patheffects.Normal()]
            ax.fill(poly[:, 0], poly[:, 1], facecolor="none", edgecolor=palette.FOLLOW_COLOR, lw=2.4, zorder=6, gid="followed-tile", path_effects=halo)
            area = float(t_cur.areas()[r])
            legend.append(Line2D([], [], color=palette.FOLLOW_COLOR, lw=2.4, label=f"tile followed (area {area:.3g})"))
    ax.set_xlim(w[0], w[1])
    ax.set_ylim(w[2], w[3])
    ax.set_aspect("equal", adjustable="box")
    ax.set_xlabel(scene.axis_labels[0])
    ax.set_ylabel(scene.axis_labels[1])
    if opt.show_title and scene.title:
        if getattr(fig, "side_axes", None):  # the title spans the figure above the slice and its side panels
            style.fit_text(fig.suptitle(scene.title, fontsize="large"), 0.96 * opt.width)
        else:
            share = _width_share(ax) * (0.78 if tiles.levels is not None else 0.92)
            style.fit_text(ax.set_title(scene.title), share * opt.width)
    if opt.show_colorbar and tiles.levels is not None:  # slope, density: a measured colouring has its scale
        import matplotlib
        from matplotlib.cm import ScalarMappable
        from matplotlib.colors import Normalize

        sm = ScalarMappable(Normalize(*tiles.levels), matplotlib.colormaps[palette.SLOPE_CMAP])
        cb = fig.colorbar(sm, ax=ax, shrink=0.85, pad=0.02)
        cb.set_label(r"$\|A_\omega\|_2$ (spectral norm of the tile's slope)" if opt.mode == "slope" else tiles.colorbar_label)
    if opt.mode == "hash":
        legend.insert(0, Patch(facecolor=palette.hash_palette()[3], label="tiles: activation-pattern hash"))
    if opt.show_legend and legend:
        room = opt.width / opt.dpi * (0.8 if tiles.levels is not None else 1.0) / opt.font_scale  # inches
        ncol = max(1, min(4, len(legend), int(room / 1.9)))
        fig.legend(handles=legend, loc="outside lower center", ncols=ncol, frameon=False)


def _width_share(ax) -> float:
    """The fraction of the figure's width that ``ax``'s grid cell spans (before any layout)."""
    spec = ax.get_subplotspec()
    if spec is None:
        return 1.0
    ratios = np.asarray(spec.get_gridspec().get_width_ratios() or [1.0] * spec.get_gridspec().ncols, dtype=float)
    return float(ratios[spec.colspan.start : spec.colspan.stop].sum() / ratios.sum())


def figure_to_rgb(fig) -> np.ndarray:
    """(H, W, 3) uint8 pixels of ``fig`` (Agg)."""
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def save_figure(fig, path: str | Path, dpi: int | None = None) -> Path:
    """Write ``fig`` as PNG/SVG/PDF (by suffix) to a temporary file, then rename: never a partial file."""
    path = Path(path)
    if path.suffix.lower() not in FIGURE_FORMATS:
        raise SplineAtlasError(f"figure format {path.suffix or '(none)'} is not supported; use .png, .svg or .pdf.")
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=dpi or fig.dpi, format=path.suffix.lower()[1:])
    return path


def export_slice_figure(scene: SliceScene, path: str | Path, options: FigureOptions | None = None) -> Path:
    """Render ``scene`` with ``options`` and save it to ``path`` (.png/.svg/.pdf)."""
    opt = options or FigureOptions()
    fig = render_slice(scene, opt)
    return save_figure(fig, path, opt.dpi)


__all__ = [
    "COLOR_MODES",
    "FigureOptions",
    "SliceScene",
    "build_slice_scene",
    "export_slice_figure",
    "figure_to_rgb",
    "render_slice",
    "save_figure",
    "tile_colours",
]
