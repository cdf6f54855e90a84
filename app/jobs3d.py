"""The 3D tab's engine calls, Qt-free: choose a 3D slice, tessellate it (cached), cut it by the clipping plane.

Like :mod:`app.jobs`, each function is a thin wrapper over ``geometry`` that the window runs in a
worker with ``progress(fraction, message)`` and ``cancel() -> bool``; nothing here draws.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from geometry.cache import ResultCache, cache_key
from geometry.errors import SplineAtlasError
from geometry.slices import Slice, box_domain

from .view3d_state import ClipPlane, Slice3Choice

Progress = Callable[[float, str], None] | None
Cancel = Callable[[], bool] | None

TESSELLATION3_VERSION = 1


def engine3d_available() -> bool:
    """Whether the engine can tessellate 3D slices (``geometry.tessellation.solid`` has landed)."""
    try:
        import geometry.tessellation.solid  # noqa: F401
    except ImportError:
        return False
    return True


def default_choice(input_dim: int) -> Slice3Choice:
    """The input space for 3-input nets, else PCA with three components."""
    return Slice3Choice("input" if input_dim == 3 else "pca")


def cube_box(box, pad: float = 0.0) -> tuple[float, ...]:
    """Grow a box (6,) so all three sides equal the longest (plus ``pad`` of it), keeping its centre."""
    b = np.asarray(box, dtype=np.float64).reshape(3, 2)
    c = b.mean(1)
    half = max(float((b[:, 1] - b[:, 0]).max()), 1e-6) / 2 * (1 + pad)
    return tuple(np.stack([c - half, c + half], 1).reshape(-1).tolist())


def make_slice3(bundle, choice: Slice3Choice, epoch_index: int = -1, progress: Progress = None,
                cancel: Cancel = None) -> tuple[Slice, tuple[float, ...]]:
    """The 3D slice for ``choice`` and its box (slice coordinates, a cube around the data / defining point).

    kinds: "input" (3-input nets: the input space), "pca" (top 3 principal directions of the run's data),
    "deepfool" (through dataset point ``choice.index``: its DeepFool direction r(x) and two random
    directions drawn with ``choice.seed``; box ±2.5 ||r||).
    """
    X, _ = bundle.points()
    if choice.kind == "input":
        if bundle.input_dim != 3:
            raise SplineAtlasError(f"the input space is a 3D slice only for 3-input networks; this one has "
                                   f"{bundle.input_dim} inputs. Use PCA or a DeepFool slice.")
        sl = Slice.input_plane(3)
        box = box_domain(sl, X if len(X) else None, margin=0.08)
    elif choice.kind == "pca":
        if len(X) < 4:
            raise SplineAtlasError("a PCA slice needs the run's dataset; this run has none. Use a DeepFool slice.")
        if bundle.input_dim < 3:
            raise SplineAtlasError("a 3D slice needs at least 3 input dimensions; this network has "
                                   f"{bundle.input_dim}.")
        sl = Slice.pca(X, k=3, description="PCA space (top 3 components)")
        box = box_domain(sl, X, margin=0.05)
    elif choice.kind == "deepfool":
        from geometry.deepfool import deepfool

        if len(X) == 0:
            raise SplineAtlasError("a DeepFool slice needs a dataset point; this run has no dataset.")
        if bundle.input_dim < 3:
            raise SplineAtlasError(f"a 3D slice needs at least 3 input dimensions; this network has {bundle.input_dim}.")
        i = int(choice.index) % len(X)
        x = X[i]
        if progress:
            progress(0.2, "DeepFool direction")
        res = deepfool(bundle.run.network(epoch_index), x[None], cancel=cancel)
        r = res.perturbation[0]
        if not np.linalg.norm(r) > 0:
            raise SplineAtlasError("DeepFool found no boundary direction at this point; pick another point.")
        w = np.random.default_rng(choice.seed).standard_normal((2, x.shape[0]))
        sl = Slice.from_directions(x, np.vstack([r[None], w]), anchors=np.stack([x, x + r]),
                                   description=f"point {i} + DeepFool direction + 2 random directions")
        s = 2.5 * float(np.linalg.norm(r))
        box = np.array([-s, s, -s, s, -s, s])
    else:
        raise SplineAtlasError(f"unknown 3D slice kind {choice.kind!r}.")
    return sl, cube_box(box)


def tessellation3_key(bundle, epoch_index: int, slice3: Slice, box, max_cells: int) -> str:
    return cache_key("tessellation-3d", TESSELLATION3_VERSION, bundle.run.checkpoint_hash(epoch_index),
                     slice3.origin, slice3.basis, np.asarray(box, dtype=np.float64), int(max_cells))


def tessellate3_all(bundle, epoch_index: int, slice3: Slice, box, max_cells: int, cache: ResultCache | None = None,
                    progress: Progress = None, cancel: Cancel = None) -> list:
    """Exact tessellation of the 3D slice's box at every depth 1..L (list of Tessellation3D), cached."""
    key = tessellation3_key(bundle, epoch_index, slice3, box, max_cells)
    if cache is not None:
        hit = cache.get(key)
        if hit is not None:
            return hit
    if not engine3d_available():
        raise SplineAtlasError("the 3D tessellation engine is not installed in this build "
                               "(geometry.tessellation.solid is missing); the 3D view needs it.")
    from geometry.tessellation import tessellate_all_depths

    net = bundle.run.network(epoch_index)
    result = list(tessellate_all_depths(net, slice3, np.asarray(box, dtype=np.float64), max_regions=int(max_cells),
                                        progress=progress, cancel=cancel))
    if cache is not None:
        cache.put(key, result)
    return result


def clip_slice(slice3: Slice, box, clip: ClipPlane) -> tuple[Slice, tuple[float, float, float, float]]:
    """The clipping plane ``u[axis] = position`` of the 3D slice as a 2D slice, and its window.

    2D coordinates (a, b) are the two other slice coordinates in order, so the 3D point is
    ``u[others] = (a, b), u[axis] = position`` and ``slice2.to_input((a, b)) == slice3.to_input(u)``.
    """
    axis = int(clip.axis)
    others = [k for k in range(3) if k != axis]
    u = np.zeros(3)
    u[axis] = clip.position
    origin = slice3.to_input(u[None])[0]
    basis = slice3.basis[:, others]
    names = "uvw"
    desc = f"clipping plane {names[axis]} = {clip.position:.4g} of the 3D slice ({slice3.description})"
    anchors = np.zeros((0, 2))
    sl = Slice(origin, basis, anchors, desc)
    b = np.asarray(box, dtype=np.float64).reshape(3, 2)
    window = (float(b[others[0], 0]), float(b[others[0], 1]), float(b[others[1], 0]), float(b[others[1], 1]))
    return sl, window


def plane_to_3d(clip: ClipPlane, ab) -> np.ndarray:
    """(2,) coordinates in the clipping plane's 2D slice -> (3,) coordinates of the 3D slice."""
    axis = int(clip.axis)
    others = [k for k in range(3) if k != axis]
    u = np.zeros(3)
    u[axis] = clip.position
    u[others] = np.asarray(ab, dtype=np.float64).reshape(2)
    return u


def plane_from_3d(clip: ClipPlane, u) -> tuple[float, float]:
    axis = int(clip.axis)
    others = [k for k in range(3) if k != axis]
    u = np.asarray(u, dtype=np.float64).reshape(3)
    return float(u[others[0]]), float(u[others[1]])


def is_clip_slice(slice2: Slice | None, slice3: Slice | None, clip: ClipPlane, tol: float = 1e-9) -> bool:
    """Whether the 2D slice ``slice2`` is the clipping plane of ``slice3`` (the linked views agree)."""
    if slice2 is None or slice3 is None or slice2.ambient_dim != slice3.ambient_dim:
        return False
    sl, _ = clip_slice(slice3, (0, 1, 0, 1, 0, 1), clip)
    scale = max(1.0, float(np.abs(sl.origin).max()))
    return bool(np.allclose(sl.origin, slice2.origin, atol=tol * scale) and np.allclose(sl.basis, slice2.basis, atol=tol))


def points3(bundle, slice3: Slice, max_points: int = 4000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dataset points projected into the 3D slice: u (n, 3), labels (n,), distance from the 3D slice (n,)."""
    X, y = bundle.points()
    if len(X) > max_points:
        keep = np.random.default_rng(0).choice(len(X), max_points, replace=False)
        X, y = X[keep], y[keep]
    if len(X) == 0:
        return np.zeros((0, 3)), np.zeros(0, np.int64), np.zeros(0)
    return slice3.project(X), np.asarray(y), slice3.distance_to_plane(X)


# -- what the 3D view draws (Qt-free: shared by the tab and `splineatlas render3d`) ---------------------
EDGE_COLORS_LIGHT = ((0.08, 0.08, 0.08, 0.67), (0.35, 0.35, 0.35, 0.3), (0.16, 0.16, 0.16, 0.78))
"""Face outlines: newest layer, earlier layers, the box (RGBA in [0, 1])."""


@dataclass(frozen=True, eq=False)
class Scene3D:
    """Arrays for one frame of the 3D view (slice coordinates, exploded when asked).

    faces: positions (P, 3) float32, triangles (T, 3) uint32, tri_colors (T, 4) float32;
    edge_pos (2E, 3) float32 segment end points and edge_colors (2E, 4) (None when outlines are off);
    boundary_pos (Q, 3), boundary_tris (B, 3) (None when hidden or empty);
    pick_tris (K, 3, 3) the drawn surfaces a click can hit and pick_offsets (K, 3) their explode translation;
    counts: dict of cells, faces shown, faces total, triangles, boundary polygons; seconds/device of the engine.
    cull_back: draw only the faces whose outward normal points at the camera (each cell's near side: every
    interior plane carries two coincident faces, one per adjacent cell, so this halves the translucent
    overdraw without changing the picture); off when a filter may keep one face of a pair only.
    """

    positions: np.ndarray
    triangles: np.ndarray
    tri_colors: np.ndarray
    edge_pos: np.ndarray | None
    edge_colors: np.ndarray | None
    boundary_pos: np.ndarray | None
    boundary_tris: np.ndarray | None
    pick_tris: np.ndarray
    pick_offsets: np.ndarray
    counts: dict
    cull_back: bool = True

    def summary(self) -> str:
        c = self.counts
        return (f"{c['cells']:,} cells at depth {c['depth']} · {c['faces_shown']:,} of {c['faces']:,} faces shown · "
                f"{c['triangles']:,} triangles · {c['boundary_polygons']:,} boundary polygons · "
                f"{c['seconds']:.2f} s ({c['device']})")


def scene_arrays(tess_by_depth: list, depth: int, color_mode: str, settings, box,
                 class_colors: np.ndarray | None = None, layer_colors: np.ndarray | None = None,
                 edge_colors=EDGE_COLORS_LIGHT) -> Scene3D:
    """Build everything the 3D view draws for ``depth`` (1-based) from a list of Tessellation3D (depths 1..L).

    settings: :class:`app.view3d_state.View3DSettings` (filters, explode, opacity, what to show).
    color_mode: class / slope (per cell, from its full-depth descendants at partial depth) / layer (the
    layer that created each face) / hash (activation pattern of the cell).
    """
    from geometry import mesh3d

    t_by = tess_by_depth
    depth = min(max(int(depth), 1), len(t_by))
    t, full = t_by[depth - 1], t_by[-1]
    s = settings
    if s.only_layer:
        mask = mesh3d.layer_face_mask(t, s.only_layer - 1, include_domain=s.show_domain_faces)
    else:
        mask = mesh3d.layer_face_mask(t, None, include_domain=s.show_domain_faces)
    if s.near_boundary:
        d = s.near_distance * float(np.linalg.norm(np.diff(np.asarray(box, dtype=np.float64).reshape(3, 2), axis=1)))
        crossed = None
        if depth < len(t_by) and len(full.boundary_region):
            crossed = np.zeros(t.num_regions, dtype=bool)
            crossed[mesh3d.ancestors(t_by, depth)[np.asarray(full.boundary_region, dtype=np.int64)]] = True
        mask &= mesh3d.near_boundary_face_mask(t, d, crossed)
    fm = mesh3d.face_mesh(t, mask, explode=s.explode)
    if color_mode in ("class", "slope"):
        cls, slope = mesh3d.descendant_values(t_by, depth)
        vals = cls[fm.face_cell] if color_mode == "class" else slope[fm.face_cell]
        rgba = mesh3d.colorize(vals, color_mode, alpha=s.opacity, class_colors=class_colors)
    elif color_mode == "layer":
        rgba = mesh3d.colorize(np.asarray(t.face_layer)[fm.faces], "layer", alpha=s.opacity, layer_colors=layer_colors)
    else:
        rgba = mesh3d.colorize(mesh3d.pattern_hashes(t)[fm.face_cell], "hash", alpha=s.opacity)
    face_index = np.searchsorted(fm.faces, fm.tri_face)
    tri_rgba = rgba[face_index]
    edge_pos = edge_col = None
    if s.show_edges and fm.edges.shape[0]:
        edge_pos = fm.positions[fm.edges.reshape(-1)]
        lay = np.asarray(t.face_layer)[fm.edge_face]
        new, old, dom = (np.asarray(c, dtype=np.float32) for c in edge_colors)
        col = np.where((lay == depth - 1)[:, None], new, np.where((lay < 0)[:, None], dom, old)).astype(np.float32)
        # thousands of overlapping outlines turn black: fade them with their number (1 below ~1500 segments)
        density = min(1.0, (1500.0 / max(fm.edges.shape[0], 1)) ** 0.5)
        col[:, 3] = np.clip(col[:, 3] * (0.5 + s.opacity) * max(density, 0.2), 0, 1)
        edge_col = np.repeat(col, 2, axis=0)
    bm = mesh3d.boundary_mesh(full)
    pick_t, pick_o = [], []
    bpos = btri = None
    if s.show_boundary and bm.triangles.shape[0]:
        if s.explode:
            off = mesh3d.explode_offsets(full, s.explode)
            reg = np.asarray(full.boundary_region, dtype=np.int64)[bm.tri_polygon]
            tri_pos = bm.positions[bm.triangles] + off[reg][:, None, :]
            bpos = tri_pos.reshape(-1, 3)
            btri = np.arange(bpos.shape[0]).reshape(-1, 3)
            pick_o.append(off[reg])
        else:
            bpos, btri = bm.positions, bm.triangles
            tri_pos = bpos[btri]
            pick_o.append(np.zeros((btri.shape[0], 3)))
        pick_t.append(tri_pos)
    positions, triangles = fm.positions, fm.triangles
    if not s.show_faces:
        triangles = np.zeros((0, 3), np.uint32)
        tri_rgba = np.zeros((0, 4), np.float32)
    elif fm.triangles.shape[0]:
        pick_t.append(fm.positions.astype(np.float64)[fm.triangles])
        pick_o.append(fm.offsets[fm.face_cell[face_index]])
    counts = dict(cells=t.num_regions, depth=depth, faces_shown=fm.num_faces, faces=int(t.face_offsets.shape[0] - 1),
                  triangles=int(triangles.shape[0]), boundary_polygons=int(full.boundary_offsets.shape[0] - 1),
                  seconds=float(full.seconds), device=str(full.device))
    return Scene3D(positions, triangles, tri_rgba, edge_pos, edge_col, bpos, btri,
                   np.concatenate(pick_t) if pick_t else np.zeros((0, 3, 3)),
                   np.concatenate(pick_o) if pick_o else np.zeros((0, 3)), counts,
                   cull_back=not s.near_boundary)


def section_arrays(tess_by_depth: list, depth: int, color_mode: str, clip: ClipPlane,
                   class_colors: np.ndarray | None = None, alpha: float = 0.75):
    """The clipping plane's exact cross-section of the cells at ``depth``, as a coloured cap mesh.

    Returns positions (n, 3) float32, triangles (T, 3) uint32, per-triangle RGBA (T, 4) and the polygons'
    outlines as segment end points (2E, 3) -- or None when the plane cuts no cell. Colours: the cells' class (slope: ||A_w||; hash: pattern hash; layer: class).
    """
    from geometry import mesh3d

    depth = min(max(int(depth), 1), len(tess_by_depth))
    t = tess_by_depth[depth - 1]
    P, off, cells = mesh3d.plane_section(t, clip.axis, clip.position)
    if cells.shape[0] == 0:
        return None
    if color_mode == "hash":
        rgba = mesh3d.colorize(mesh3d.pattern_hashes(t)[cells], "hash", alpha=alpha)
    else:
        cls, slope = mesh3d.descendant_values(tess_by_depth, depth)
        mode = "slope" if color_mode == "slope" else "class"
        rgba = mesh3d.colorize((slope if mode == "slope" else cls)[cells], mode, alpha=alpha, class_colors=class_colors)
    tris, poly = mesh3d.triangulate_faces(np.arange(P.shape[0]), off)
    return P.astype(np.float32), tris.astype(np.uint32), rgba[poly], _loop_segments(P, off).astype(np.float32)


def _loop_segments(P: np.ndarray, off: np.ndarray) -> np.ndarray:
    """(2E, 3) end points of the edges of ragged polygon loops (for a segments line visual)."""
    n = np.diff(off)
    pos = np.arange(P.shape[0])
    start = np.repeat(off[:-1], n)
    nxt = np.where(pos + 1 < np.repeat(off[1:], n), pos + 1, start)
    return np.stack([P, P[nxt]], axis=1).reshape(-1, 3)
