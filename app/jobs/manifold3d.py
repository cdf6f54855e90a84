"""What the 3D tab and ``splineatlas render3d`` draw for a generator (2 latent inputs into R³), Qt-free: its
spline manifold in output space as the exact image of the 2D view's latent tiles (each tile's polygon
through its own affine map), coloured by log volume change as the 2D tiles are, with the training data and
samples of the latent prior, MaGNET or polarity sampling on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from geometry.errors import SplineAtlasError
from geometry.generative import generate, latent_of, output_density, sample_latent, tiles_of
from geometry.tessellation import mesh3d

from ..render.tiles import tile_colours
from ..model.view3d import View3DSettings
from .scene3d import EDGE_COLORS_LIGHT, Drawing3D, Scene3D, _loop_segments

MANIFOLD_AXES = ("x1", "x2", "x3")
SAMPLE_RGBA = (0.84, 0.15, 0.16, 0.95)
DATA_RGBA = (0.1, 0.1, 0.1, 0.45)
POINT_SIZE = 3.5
SURFACE_ALPHA = 0.8
DEFAULT_OPACITY = View3DSettings().opacity


@dataclass(frozen=True)
class ImageGrid:
    """A generator's pictures on a rows x cols grid over the latent ``window``: ``mosaic`` uint8 (one picture,
    row 0 at the top = the largest z2), ``latent`` (rows, cols, 2) the grid's latent points, ``outputs``
    (rows, cols, D) the generator there (its own forward pass)."""

    mosaic: np.ndarray
    latent: np.ndarray
    outputs: np.ndarray
    window: tuple

    def caption(self) -> str:
        r, c = self.latent.shape[:2]
        z0, z1, w0, w1 = self.window
        return (
            f"G(z) on a {r} x {c} grid of the latent window (cell centres): z1 from {z0:.3g} to {z1:.3g} left to right, "
            f"z2 from {w1:.3g} to {w0:.3g} top to bottom"
        )


def image_grid(net, window, output_shape, n: int = 8) -> ImageGrid:
    """An n x n :class:`ImageGrid` of a generator of images over the latent ``window``."""
    from geometry.generative import generate_grid

    from ..render.images import display_images, image_mosaic

    Z, X = generate_grid(net, window, n, n)
    shown = display_images(X.reshape(n * n, -1), output_shape)
    return ImageGrid(image_mosaic(shown, n, n), Z, X, tuple(float(w) for w in window))


def is_manifold_run(bundle) -> bool:
    """Whether the 3D tab shows this run's manifold: a generator with 2 latent inputs."""
    return bundle is not None and bundle.run.task == "generate" and bundle.input_dim == 2


def sampler_label(sampler: str, rho: float) -> str:
    return f"polarity (ρ = {rho:g})" if sampler == "polarity" else sampler


@dataclass(frozen=True, eq=False)
class ManifoldScene(Scene3D):
    """A :class:`Scene3D` of a generator's manifold, with the samples drawn on it: ``latent`` (n, 2) slice
    coordinates, ``samples`` (n, 3) their outputs, ``density`` (n,) the sampler's density on the manifold at
    each (1 / output unit², exact per tile), and the tiles (for picking back to the latent plane)."""

    tiles: object = None
    latent: np.ndarray | None = None
    samples: np.ndarray | None = None
    density: np.ndarray | None = None
    sampler: str = "magnet"
    rho: float = 1.0

    def summary(self) -> str:
        c = self.counts
        text = (
            f"manifold: {c['cells']:,} latent tiles (full depth) mapped exactly · area {c['area']:.4g} output units² · "
            f"volume change {c['vmin']:.3g}..{c['vmax']:.3g}"
        )
        if self.density is not None and len(self.density):
            d = self.density[self.density > 0]
            spread = float(d.max() / d.min()) if len(d) else float("nan")
            text += (
                f" · red: {len(self.density):,} {sampler_label(self.sampler, self.rho)} samples, density on the manifold max/min = {spread:.3g} (uniform: 1)"
            )
        if c.get("data"):
            text += f" · dark: {c['data']:,} training points"
        return text


def manifold_drawing(tess, data_outputs, settings, edge_colors=EDGE_COLORS_LIGHT) -> Drawing3D:
    """The whole 3D frame of a generator: ``tess`` the full-depth latent tessellation (the 2D view's),
    ``data_outputs`` (n, 3) the training targets or None, ``settings`` View3DSettings (sampler, rho, samples,
    seed, what is shown)."""
    if tess.out_linear.shape[1] != 3:
        raise SplineAtlasError(f"the manifold view draws generators into R³; this one maps into R^{tess.out_linear.shape[1]}.")
    tiles = tiles_of(tess)
    images = tiles.image_vertices()
    rgba = tile_colours([tess], 1, "volume", 0).rgba.astype(np.float32)
    rgba[:, 3] = min(1.0, max(0.05, SURFACE_ALPHA * settings.opacity / DEFAULT_OPACITY))  # the opacity slider's default is this alpha
    tris, tri_tile = mesh3d.triangulate_faces(np.arange(images.shape[0]), tess.offsets)
    positions = images.astype(np.float32)
    edge_pos = edge_col = None
    if settings.show_edges:
        edge_pos = _loop_segments(images, tess.offsets).astype(np.float32)
        edge_col = np.tile(np.asarray(edge_colors[1], np.float32), (len(edge_pos), 1))
    latent = samples = density = None
    if settings.sampler != "none" and settings.samples > 0:
        latent, which = sample_latent(tiles, settings.samples, settings.sampler, settings.rho, settings.sample_seed)
        samples = generate(tiles, latent, which)
        density = output_density(tiles, which, settings.sampler, settings.rho)
    v = tiles.volume
    shown_data = settings.show_points and data_outputs is not None
    counts = dict(
        cells=tess.num_regions, area=float(tiles.output_area.sum()), vmin=float(v.min()), vmax=float(v.max()), data=len(data_outputs) if shown_data else 0
    )
    shown = tris if settings.show_faces else np.zeros((0, 3), np.int64)
    scene = ManifoldScene(
        positions,
        shown.astype(np.uint32),
        rgba[tri_tile] if settings.show_faces else np.zeros((0, 4), np.float32),
        edge_pos,
        edge_col,
        None,
        None,
        images[tris],
        np.zeros((len(tris), 3)),
        counts,
        cull_back=False,
        tiles=tiles,
        latent=latent,
        samples=samples,
        density=density,
        sampler=settings.sampler,
        rho=float(settings.rho),
    )
    pts, cols = [], []
    if shown_data and len(data_outputs):
        pts.append(np.asarray(data_outputs, dtype=np.float64))
        cols.append(np.tile(DATA_RGBA, (len(data_outputs), 1)))
    if samples is not None:
        pts.append(samples)
        cols.append(np.tile(SAMPLE_RGBA, (len(samples), 1)))
    points = (np.concatenate(pts), np.concatenate(cols).astype(np.float32), POINT_SIZE) if pts else None
    every = np.concatenate([images, *pts]) if pts else images
    return Drawing3D(box=output_box(every), scene=scene, points=points, axis_labels=MANIFOLD_AXES, points_over_faces=True)


def output_box(points: np.ndarray, pad: float = 0.04) -> np.ndarray:
    """(6,) box around ``points`` (n, 3), padded by ``pad`` of its largest side (never flat)."""
    lo, hi = points.min(0), points.max(0)
    span = max(float((hi - lo).max()), 1e-9)
    lo, hi = lo - pad * span, hi + pad * span
    flat = hi - lo < 1e-9 * span
    hi[flat] += 1e-3 * span
    return np.stack([lo, hi], axis=1).reshape(-1)


def data_outputs(bundle, max_points: int = 4000) -> np.ndarray | None:
    """(n, 3) the run's training targets (points of the data manifold), subsampled like the 3D slice's data."""
    ds = bundle.dataset
    if ds is None:
        return None
    y = np.asarray(ds.y_train, dtype=np.float64).reshape(len(ds.y_train), -1)
    if y.shape[1] != 3:
        return None
    if len(y) > max_points:
        y = y[np.random.default_rng(0).choice(len(y), max_points, replace=False)]
    return y


def latent_at(scene: ManifoldScene, x) -> np.ndarray | None:
    """The latent slice point (2,) whose image is the clicked manifold point ``x`` (3,), or None."""
    hit = latent_of(scene.tiles, x, tol=1e-4)
    return None if hit is None else hit[0]


def manifold_point(scene: ManifoldScene, z) -> np.ndarray | None:
    """(3,) the image on the manifold of the latent slice point ``z`` (2,) (its tile's exact map), or None
    outside the tessellated window."""
    from geometry.tessellation.locate import locate_points

    t = scene.tiles.tess
    z = np.asarray(z, dtype=np.float64).reshape(1, 2)
    r = int(locate_points(t.vertices, t.offsets, z)[0])
    return None if r < 0 else generate(scene.tiles, z, np.array([r]))[0]


__all__ = [
    "ImageGrid",
    "image_grid",
    "MANIFOLD_AXES",
    "ManifoldScene",
    "data_outputs",
    "is_manifold_run",
    "latent_at",
    "manifold_drawing",
    "manifold_point",
    "output_box",
    "sampler_label",
]
