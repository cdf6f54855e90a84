"""What the 3D tab and ``splineatlas render3d`` draw, Qt-free: the 3D slice (the one slice vocabulary in
3D), the clipping plane as a 2D slice, and the arrays of one frame (faces, outlines, boundary, cap).
Tessellations come from :func:`app.jobs.tessellate.tessellate_all`, as in 2D.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from geometry.tessellation import mesh3d
from geometry.slices import Slice

from ..model.state import COLOR_MODE_LABELS
from ..model.view3d import ClipPlane, Slice3Choice
from ..render import palette
from ..render.faces import FACE_COLOR_MODES, colorize, log_volume_change
from ..render.tiles import pattern_hashes
from .tessellate import budget_note
from .bundle import Cancel, Progress, RunBundle
from .slicing import default_slice_choice, make_slice


def default_choice(bundle: RunBundle) -> Slice3Choice:
    """The 3D tab's default: the one slice vocabulary's default in 3D (input space for 3-input nets, else PCA,
    else random)."""
    return Slice3Choice.from_choice(default_slice_choice(bundle, dim=3))


def make_slice3(
    bundle: RunBundle, choice: Slice3Choice, epoch_index: int = -1, progress: Progress = None, cancel: Cancel = None
) -> tuple[Slice, tuple[float, ...]]:
    """The 3D slice for ``choice`` and its box (a cube in slice coordinates): :func:`app.jobs.slicing.make_slice`
    with ``dim=3``."""
    return make_slice(bundle, choice.as_choice(), epoch_index, dim=3, progress=progress, cancel=cancel)


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


def points_in_box(bundle, slice3: Slice, box) -> tuple[np.ndarray, np.ndarray, float]:
    """(u (n, 3), colours (n, 4) float32 in the class palette, marker size) of the dataset points inside the
    3D box, as the 3D tab and ``splineatlas render3d`` draw them."""
    u, y, _ = points3(bundle, slice3)
    b = np.asarray(box).reshape(3, 2)
    inside = np.all((u >= b[:, 0]) & (u <= b[:, 1]), axis=1)
    col = palette.class_rgba(int(y.max(initial=0)) + 1, alpha=0.95)[y[inside]].astype(np.float32)
    return u[inside], col, 7.0 if bundle.input_dim == 3 else 5.0


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
        return (
            f"{c['cells']:,} cells at depth {c['depth']} · {c['faces_shown']:,} of {c['faces']:,} faces shown · "
            f"{c['triangles']:,} triangles · {c['boundary_polygons']:,} boundary polygons · "
            f"{c['seconds']:.2f} s ({c['device']})"
            + (f" · {c['memory']} (memory budget)" if c.get("memory") else "")
            + (f" · {c['note']}" if c.get("note") else "")
        )


def scene_arrays(tess_by_depth: list, depth: int, color_mode: str, settings, box, edge_colors=EDGE_COLORS_LIGHT) -> Scene3D:
    """Build everything the 3D view draws for ``depth`` (1-based) from a list of Tessellation3D (depths 1..L).

    settings: :class:`app.model.view3d.View3DSettings` (filters, explode, opacity, what to show).
    color_mode: class / slope (per cell, from its full-depth descendants at partial depth) / layer (the
    layer that created each face) / hash (activation pattern of the cell). A 2D-only mode (density: a
    length per area) draws classes, and the summary says so.
    """
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
    note = None
    if color_mode not in FACE_COLOR_MODES:
        note = f"colours: predicted class ({COLOR_MODE_LABELS.get(color_mode, color_mode).lower()} is a map of the 2D tab)"
        color_mode = "class"
    if color_mode in ("class", "slope"):
        cls, slope = mesh3d.descendant_values(t_by, depth)
        vals = cls[fm.face_cell] if color_mode == "class" else slope[fm.face_cell]
        rgba = colorize(vals, color_mode, alpha=s.opacity)
    elif color_mode == "volume":
        rgba = colorize(_finite(mesh3d.descendant_mean(t_by, depth, log_volume_change(full)))[fm.face_cell], "slope", alpha=s.opacity)
    elif color_mode == "layer":
        rgba = colorize(np.asarray(t.face_layer)[fm.faces], "layer", alpha=s.opacity, depth=len(t_by))
    else:
        rgba = colorize(pattern_hashes(t.codes, t.num_regions)[fm.face_cell], "hash", alpha=s.opacity)
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
    counts = dict(
        cells=t.num_regions,
        depth=depth,
        faces_shown=fm.num_faces,
        faces=int(t.face_offsets.shape[0] - 1),
        triangles=int(triangles.shape[0]),
        boundary_polygons=int(full.boundary_offsets.shape[0] - 1),
        seconds=float(full.seconds),
        device=str(full.device),
        memory=budget_note(full),
    )
    if note:
        counts["note"] = note
    return Scene3D(
        positions,
        triangles,
        tri_rgba,
        edge_pos,
        edge_col,
        bpos,
        btri,
        np.concatenate(pick_t) if pick_t else np.zeros((0, 3, 3)),
        np.concatenate(pick_o) if pick_o else np.zeros((0, 3)),
        counts,
        cull_back=not s.near_boundary,
    )


def _finite(v: np.ndarray) -> np.ndarray:
    """Values with -inf (a flat map's log volume) as NaN: drawn in the unknown colour, off the colour scale."""
    return np.where(np.isfinite(v), v, np.nan)


def section_arrays(tess_by_depth: list, depth: int, color_mode: str, clip: ClipPlane, alpha: float = 0.75):
    """The clipping plane's exact cross-section of the cells at ``depth``, as a coloured cap mesh.

    Returns positions (n, 3) float32, triangles (T, 3) uint32, per-triangle RGBA (T, 4) and the polygons'
    outlines as segment end points (2E, 3) -- or None when the plane cuts no cell. Colours: the cells' class (slope: ||A_w||; volume: log volume change;
    hash: pattern hash; layer: class).
    """
    depth = min(max(int(depth), 1), len(tess_by_depth))
    t = tess_by_depth[depth - 1]
    P, off, cells = mesh3d.plane_section(t, clip.axis, clip.position)
    if cells.shape[0] == 0:
        return None
    if color_mode == "hash":
        rgba = colorize(pattern_hashes(t.codes, t.num_regions)[cells], "hash", alpha=alpha)
    elif color_mode == "volume":
        rgba = colorize(_finite(mesh3d.descendant_mean(tess_by_depth, depth, log_volume_change(tess_by_depth[-1])))[cells], "slope", alpha=alpha)
    else:
        cls, slope = mesh3d.descendant_values(tess_by_depth, depth)
        mode = "slope" if color_mode == "slope" else "class"
        rgba = colorize((slope if mode == "slope" else cls)[cells], mode, alpha=alpha)
    tris, poly = mesh3d.triangulate_faces(np.arange(P.shape[0]), off)
    return P.astype(np.float32), tris.astype(np.uint32), rgba[poly], _loop_segments(P, off).astype(np.float32)


def _loop_segments(P: np.ndarray, off: np.ndarray) -> np.ndarray:
    """(2E, 3) end points of the edges of ragged polygon loops (for a segments line visual)."""
    n = np.diff(off)
    pos = np.arange(P.shape[0])
    start = np.repeat(off[:-1], n)
    nxt = np.where(pos + 1 < np.repeat(off[1:], n), pos + 1, start)
    return np.stack([P, P[nxt]], axis=1).reshape(-1, 3)


# -- one frame of the 3D view, whole: the tab, its exports and `splineatlas render3d` draw this -------------
@dataclass(frozen=True, eq=False)
class Drawing3D:
    """Everything the 3D view draws, Qt-free, so that a PNG or turntable shows what the screen shows.

    box (6,) the slice's box; scene the faces/outlines/boundary (None: nothing computed yet); points
    (u (n, 3), RGBA (n, 4), size) or None; paths ((points (n, 3), RGBA), ...); marker (3,) the inspected
    point or None; clip the clipping plane (None or disabled: no cut); cap :func:`section_arrays` of the
    plane or None; axis_labels the names of the box's three axes; points_over_faces: draw the points after
    the translucent faces (points on a surface, e.g. samples on a generator's manifold; else the cells are
    drawn over the points inside them).
    """

    box: np.ndarray
    scene: Scene3D | None = None
    points: tuple | None = None
    paths: tuple = ()
    marker: np.ndarray | None = None
    clip: ClipPlane | None = None
    cap: tuple | None = None
    axis_labels: tuple = ("u", "v", "w")
    points_over_faces: bool = False


def path_lines(slice3: Slice | None, shown_paths, show: bool = True) -> tuple:
    """The traced paths ((spec, result) pairs, e.g. :meth:`Results.shown_paths`) as 3D polylines in the
    window's path colours; paths of another input dimension are left out."""
    if slice3 is None or not show:
        return ()
    return tuple((slice3.project(res.X), palette.hex_rgba(palette.path_color(spec.id))) for spec, res in shown_paths if res.X.shape[1] == slice3.ambient_dim)


def marker_point(slice2: Slice | None, slice3: Slice | None, clip: ClipPlane, inspected) -> np.ndarray | None:
    """The inspected 2D point placed in 3D, when the 2D slice is the clipping plane (else None)."""
    if inspected is None or not is_clip_slice(slice2, slice3, clip):
        return None
    return plane_to_3d(clip, inspected)


def cap_arrays(tess_by_depth: list | None, depth: int, color_mode: str, clip: ClipPlane | None):
    """The clipping plane's cross-section to draw (:func:`section_arrays`), or None when there is no cut."""
    if clip is None or not clip.enabled or not tess_by_depth:
        return None
    return section_arrays(tess_by_depth, depth, color_mode, clip)
