"""Result types of the exact tessellation: one frozen object per (slice, checkpoint, depth).

Conventions shared by :class:`Tessellation2D` and :class:`Tessellation3D`:

* ``u`` are slice coordinates (``x(u) = slice.origin + slice.basis @ u``); everything geometric
  (vertices, domain, boundary) is in slice coordinates, float64.
* "Layer" ``j`` is the j-th nonlinearity of the network, **0-based** in arrays (``edge_layer``,
  ``codes``), 1-based only in user-facing text. ``depth = l`` means layers ``0..l-1`` were used.
* A region of depth ``l`` is a maximal convex piece of the domain on which the activation pattern of
  layers ``0..l-1`` is constant; depth ``l`` refines depth ``l-1`` (``parent`` links them).
* Activation codes are stored bit-packed per layer (``np.packbits(..., axis=1, bitorder="little")``)
  for ReLU / LeakyReLU / Abs layers (bit = pre-activation > 0, as ``Network.trace``), and as int32
  argmax indices (``Network.trace``'s, into each map's H*W) for MaxPool layers; use :meth:`pattern` to
  unpack. A tessellation's ``codes`` are :class:`LayerCodes`: each layer's codes are held once, at the
  depth that cut that layer, and shared by the finer depths.
* ``classes``: at full depth, the predicted class (argmax of the logits; binary single-logit nets:
  ``logit > 0``) at the region's interior point; the full network's argmax may still change inside a
  full-depth region (the decision boundary crosses it): ``class_mixed`` says where. At partial depth
  ``l < L``: the full network's class if it is the same everywhere on the region (all its full-depth
  descendants have that class and none is mixed), else ``-1``; ``-1`` everywhere when the full depth
  was not computed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from geometry.slices import Slice
from geometry.tessellation.loops import next_in_loop


def unpack_code(code: np.ndarray, width: int, kind: str) -> np.ndarray:
    """Bit-packed ``(R, ceil(width/8)) uint8`` -> ``(R, width) bool``; maxpool codes -> int64 indices."""
    if kind == "maxpool2d":
        return np.asarray(code, dtype=np.int64)
    return np.unpackbits(code, axis=1, count=width, bitorder="little").astype(bool)


def pack_pattern(pattern: np.ndarray, kind: str) -> np.ndarray:
    """``(R, width) bool`` -> ``(R, ceil(width/8)) uint8``; maxpool argmax indices (into a map's H*W,
    always < 2**31) are stored as int32, half of int64."""
    if kind == "maxpool2d":
        return np.ascontiguousarray(pattern, dtype=np.int32)
    return np.packbits(np.asarray(pattern, dtype=bool), axis=1, bitorder="little")


def ragged_ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The indices ``starts[0] .. starts[0] + counts[0] - 1, starts[1] ..`` concatenated: the items of
    the blocks ``counts`` long at ``starts`` of a ragged array (polygon loops, face loops)."""
    counts = np.asarray(counts, dtype=np.int64)
    return np.repeat(np.asarray(starts, dtype=np.int64) - (np.cumsum(counts) - counts), counts) + np.arange(int(counts.sum()))


@dataclass(frozen=True, eq=False)
class LayerCodes(Sequence):
    """The per-layer activation codes of one depth's R regions, sharing every earlier layer's codes with
    the depth where that layer was cut instead of copying them for each finer depth.

    ``codes[j]`` is layer j's ``(R, ...)`` code array (as :func:`pack_pattern` makes it); it is
    ``own[j][rows[j]]`` where ``own[j]`` holds layer j's codes on the regions of depth j + 1 and
    ``rows[j]`` (int32, or None where the regions are those) names each region's ancestor there. Indexing
    allocates one layer; :meth:`rows_bytes` and :meth:`chunk` allocate only what they return. A
    tessellation's results then hold each layer's codes once, on the fewest regions that carry them.
    """

    own: tuple = ()
    rows: tuple | None = None
    n: int | None = None

    def __post_init__(self):
        own = tuple(self.own)
        rows = tuple(self.rows) if self.rows is not None else (None,) * len(own)
        n = self.n
        if n is None:
            n = (own[-1].shape[0] if rows[-1] is None else len(rows[-1])) if own else 0
        object.__setattr__(self, "own", own)
        object.__setattr__(self, "rows", rows)
        object.__setattr__(self, "n", int(n))

    @classmethod
    def of(cls, codes) -> LayerCodes:
        """``codes`` as LayerCodes (a tuple or list of per-layer arrays on the same regions, or LayerCodes)."""
        if isinstance(codes, LayerCodes):
            return codes
        codes = tuple(np.asarray(c) for c in codes)
        return cls(codes, n=codes[0].shape[0] if codes else 0)

    def refine(self, parent: np.ndarray, new: np.ndarray) -> LayerCodes:
        """The codes of the regions one layer deeper: ``parent`` (R',) names each one's region here, ``new``
        (R', ...) is the new layer's codes on them."""
        parent = np.asarray(parent, dtype=np.int32)
        rows = tuple(parent if r is None else r[parent] for r in self.rows)
        return LayerCodes(self.own + (new,), rows + (None,), n=len(parent))

    def __len__(self) -> int:
        return len(self.own)

    def __getitem__(self, j):
        if isinstance(j, slice):
            return [self[i] for i in range(*j.indices(len(self)))]
        own, rows = self.own[j], self.rows[j]
        return own if rows is None else own[rows]

    def chunk(self, a: int, b: int) -> list[np.ndarray]:
        """Every layer's codes on regions ``a:b`` only."""
        return self.take(slice(a, b))

    def take(self, regions) -> list[np.ndarray]:
        """Every layer's codes on the regions ``regions`` only (an index array or a slice)."""
        return [own[regions] if rows is None else own[rows[regions]] for own, rows in zip(self.own, self.rows)]

    def rows_bytes(self, depth: int | None = None) -> np.ndarray:
        """(R, B) uint8: each region's codes of layers ``0..depth-1`` (default all) as bytes in layer
        order, one row per region: the key that names its activation pattern."""
        parts = [np.ascontiguousarray(self[j]).view(np.uint8).reshape(self.n, -1) for j in range(len(self) if depth is None else depth)]
        return np.ascontiguousarray(np.concatenate(parts, axis=1)) if parts else np.zeros((self.n, 0), np.uint8)

    @property
    def nbytes(self) -> int:
        """Bytes held by this object's arrays (shared ones counted in full)."""
        return sum(o.nbytes for o in self.own) + sum(r.nbytes for r in self.rows if r is not None)


@dataclass(frozen=True)
class LayerSummary:
    """What a tessellation needs to know about one nonlinearity: its 0-based index, kind, width."""

    index: int
    kind: str  # relu, leaky_relu, abs, maxpool2d
    width: int


@dataclass(frozen=True, eq=False)
class Tessellation2D:
    """The exact linear regions of a 2D slice of a piecewise-affine network, after ``depth`` layers.

    Geometry (slice coordinates, float64):
      domain: (m, 2) convex polygon, counter-clockwise (the box corners for a box domain).
      vertices: (V, 2) all region polygons' vertices concatenated, each polygon counter-clockwise,
        not repeating its first vertex.
      offsets: (R + 1,) int64; region r's polygon is ``vertices[offsets[r]:offsets[r+1]]``.
      edge_layer: (V,) int16; the 0-based layer whose neuron created the edge from vertex i to the
        next vertex of its polygon (-1: the domain boundary). A view draws ``depth-1`` dark, older grey.
    Activation:
      layers: the network's nonlinearities (LayerSummary), all L of them.
      codes: :class:`LayerCodes` of ``depth`` layers (a tuple is converted); codes[j] is layer j's
        pattern on these R regions, bit-packed ``(R, ceil(w_j/8)) uint8`` (bit k = neuron k's
        pre-activation > 0), or ``(R, w_j) int32`` argmax indices for a maxpool layer. :meth:`pattern`
        unpacks.
      parent: (R,) int64 index of the depth-1 region containing each region (zeros at depth 1).
    Output (only at full depth ``depth == len(layers)``; else None / NaN):
      out_linear: (R, C, 2) float64 and out_offset: (R, C) float64: on region r the logits are
        ``out_linear[r] @ u + out_offset[r]`` (C = output_dim, 1 for a binary single-logit net).
      slope_norm: (R,) float64, the spectral norm ||A_w||_2 of the logits' Jacobian w.r.t. the FULL
        input x (not just the slice) on each region; NaN at partial depth.
    Classes and decision boundary:
      classes: (R,) int64, see the module docstring (-1 = not constant / unknown).
      class_mixed: (R,) bool, the full network's argmax changes inside the region (full depth only).
      boundary_segments: (S, 2, 2) float64 exact argmax decision boundary of the full network: the
        segments where the top class and the runner-up tie (binary single-logit: logit = 0). The same
        array at every depth (empty when the full depth was not computed).
      boundary_classes: (S, 2) int64 the two classes separated by each segment (c0 < c1).
      boundary_region: (S,) int64 the full-depth region each segment lies in (index at full depth).
      class_cells: optional exact argmax cells (full depth only): ``class_cell_vertices (Q_V, 2)``,
        ``class_cell_offsets (Q+1,)``, ``class_cell_class (Q,)``, ``class_cell_region (Q,)``.
    Bookkeeping: ``tolerance`` (distance in u below which points count as on a line), ``seconds``
      (wall time of the whole computation up to this depth), ``device`` (where it ran), ``pieces`` (how
      many sub-windows were tessellated and glued to stay within the memory budget; 1: none), ``chunks``
      (how many chunks of regions went through the deeper layers one after the other, for the same reason).
    """

    slice: Slice
    domain: np.ndarray
    depth: int
    layers: tuple[LayerSummary, ...]
    vertices: np.ndarray
    offsets: np.ndarray
    edge_layer: np.ndarray
    codes: LayerCodes
    parent: np.ndarray
    classes: np.ndarray
    class_mixed: np.ndarray
    slope_norm: np.ndarray
    out_linear: np.ndarray | None = None
    out_offset: np.ndarray | None = None
    boundary_segments: np.ndarray = field(default_factory=lambda: np.zeros((0, 2, 2)))
    boundary_classes: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.int64))
    boundary_region: np.ndarray = field(default_factory=lambda: np.zeros((0,), dtype=np.int64))
    class_cell_vertices: np.ndarray | None = None
    class_cell_offsets: np.ndarray | None = None
    class_cell_class: np.ndarray | None = None
    class_cell_region: np.ndarray | None = None
    num_classes: int = 0
    tolerance: float = 1e-9
    seconds: float = 0.0
    device: str = "cpu"
    pieces: int = 1
    chunks: int = 1

    def __post_init__(self):
        object.__setattr__(self, "codes", LayerCodes.of(self.codes))

    # -- sizes -------------------------------------------------------------------------------
    @property
    def num_regions(self) -> int:
        return int(self.offsets.shape[0] - 1)

    def __len__(self) -> int:
        return self.num_regions

    @property
    def full_depth(self) -> bool:
        return self.depth == len(self.layers)

    @property
    def counts(self) -> np.ndarray:
        """(R,) int64 number of vertices of each polygon."""
        return np.diff(self.offsets)

    # -- per region --------------------------------------------------------------------------
    def polygon(self, r: int) -> np.ndarray:
        """(n, 2) counter-clockwise vertices of region r."""
        return self.vertices[self.offsets[r] : self.offsets[r + 1]]

    def polygons(self) -> list[np.ndarray]:
        return np.split(self.vertices, self.offsets[1:-1])

    def pattern(self, layer: int) -> np.ndarray:
        """Layer ``layer`` (0-based, < depth) pattern on every region: (R, w) bool, or (R, w) int64 for maxpool."""
        info = self.layers[layer]
        return unpack_code(self.codes[layer], info.width, info.kind)

    @property
    def patterns(self) -> list[np.ndarray]:
        """All ``depth`` unpacked patterns (allocates; prefer :meth:`pattern`)."""
        return [self.pattern(j) for j in range(self.depth)]

    def areas(self) -> np.ndarray:
        """(R,) float64 polygon areas (shoelace; positive for CCW)."""
        return _ragged_shoelace(self.vertices, self.offsets)

    def centroids(self) -> np.ndarray:
        """(R, 2) float64 area centroids of the polygons."""
        return _ragged_centroids(self.vertices, self.offsets)

    def domain_area(self) -> float:
        d = self.domain
        return float(0.5 * np.sum(d[:, 0] * np.roll(d[:, 1], -1) - np.roll(d[:, 0], -1) * d[:, 1]))

    def region_of(self, u: np.ndarray, tol: float | None = None) -> np.ndarray:
        """(n,) int64 index of the region containing each point of ``u (n, 2)``; -1 outside the domain.

        Points on a shared edge get one of the adjacent regions. Pure geometry (grid bucketing of the
        polygons' bounding boxes + half-plane tests), independent of the network.
        """
        from geometry.tessellation.locate import locate_points

        return locate_points(self.vertices, self.offsets, np.asarray(u, dtype=np.float64), self.tolerance if tol is None else tol)

    def edges(self, layer: int | None = None) -> np.ndarray:
        """(E, 2, 2) all polygon edges (each interior edge appears once per adjacent region), optionally
        only those created by ``layer`` (0-based; -1 = domain boundary)."""
        seg = np.stack([self.vertices, self.vertices[next_in_loop(self.offsets)]], axis=1)
        if layer is None:
            return seg
        return seg[self.edge_layer == layer]

    @cached_property
    def vertex_table(self):
        """The regions on one shared vertex table (:class:`~geometry.tessellation.vertex_table.PolygonMesh`):
        each vertex once, each edge once with its layer and its two regions; built on first use, then kept."""
        from geometry.tessellation.vertex_table import polygon_mesh, weld_radius

        return polygon_mesh(self.vertices, self.offsets, self.edge_layer, weld_radius(self.tolerance))

    # -- export ------------------------------------------------------------------------------
    def to_json(self) -> dict:
        """JSON-ready dict: domain, origin, basis, regions [{vertices (CCW), pattern, class, slope_norm}],
        decision_boundary [[[u0, v0], [u1, v1]], ...] (see also :func:`geometry.tessellation.export`)."""
        from geometry.tessellation.export import tessellation_to_json

        return tessellation_to_json(self)

    def to_json_string(self) -> str:
        return json.dumps(self.to_json())


@dataclass(frozen=True, eq=False)
class Tessellation3D:
    """The exact linear regions (convex polyhedra) of a 3D slice after ``depth`` layers.

    Geometry (slice coordinates, float64):
      domain: (6,) box ``[umin, umax, vmin, vmax, wmin, wmax]``.
      vertices: (V, 3) all cells' vertices; cell r owns ``vertices[vertex_offsets[r]:vertex_offsets[r+1]]``.
      vertex_offsets: (R + 1,) int64.
      face_indices: (I,) int64 GLOBAL indices into ``vertices``; face f is the loop
        ``face_indices[face_offsets[f]:face_offsets[f+1]]``, ordered counter-clockwise seen from
        outside the cell (outward normal by the right-hand rule).
      face_offsets: (F + 1,) int64.
      cell_face_offsets: (R + 1,) int64; cell r's faces are ``cell_face_offsets[r]:cell_face_offsets[r+1]``.
      face_layer: (F,) int16 0-based layer whose neuron created the face's plane (-1: domain box).
    Activation, classes, output: as :class:`Tessellation2D` (codes, parent, classes, class_mixed,
      slope_norm, out_linear (R, C, 3), out_offset (R, C)).
    Decision boundary (full network, same array at every depth): ``boundary_vertices (BV, 3)``,
      ``boundary_offsets (B+1,)`` convex polygons (vertex loops), ``boundary_classes (B, 2)``,
      ``boundary_region (B,)``.
    Bookkeeping: ``tolerance``, ``seconds``, ``device`` as :class:`Tessellation2D`; ``chunks`` (how many
      chunks of cells went through the deeper layers one after the other to stay within the memory
      budget; 1: none).
    """

    slice: Slice
    domain: np.ndarray
    depth: int
    layers: tuple[LayerSummary, ...]
    vertices: np.ndarray
    vertex_offsets: np.ndarray
    face_indices: np.ndarray
    face_offsets: np.ndarray
    cell_face_offsets: np.ndarray
    face_layer: np.ndarray
    codes: LayerCodes
    parent: np.ndarray
    classes: np.ndarray
    class_mixed: np.ndarray
    slope_norm: np.ndarray
    out_linear: np.ndarray | None = None
    out_offset: np.ndarray | None = None
    boundary_vertices: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    boundary_offsets: np.ndarray = field(default_factory=lambda: np.zeros((1,), dtype=np.int64))
    boundary_classes: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.int64))
    boundary_region: np.ndarray = field(default_factory=lambda: np.zeros((0,), dtype=np.int64))
    num_classes: int = 0
    tolerance: float = 1e-9
    seconds: float = 0.0
    device: str = "cpu"
    chunks: int = 1

    def __post_init__(self):
        object.__setattr__(self, "codes", LayerCodes.of(self.codes))

    @property
    def num_regions(self) -> int:
        return int(self.vertex_offsets.shape[0] - 1)

    def __len__(self) -> int:
        return self.num_regions

    @property
    def full_depth(self) -> bool:
        return self.depth == len(self.layers)

    def pattern(self, layer: int) -> np.ndarray:
        info = self.layers[layer]
        return unpack_code(self.codes[layer], info.width, info.kind)

    @property
    def patterns(self) -> list[np.ndarray]:
        return [self.pattern(j) for j in range(self.depth)]

    def polyhedron(self, r: int) -> tuple[np.ndarray, list[np.ndarray]]:
        """Cell r as (vertices (n, 3), faces: list of LOCAL index loops into those vertices)."""
        v0, v1 = self.vertex_offsets[r], self.vertex_offsets[r + 1]
        faces = [
            self.face_indices[self.face_offsets[f] : self.face_offsets[f + 1]] - v0 for f in range(self.cell_face_offsets[r], self.cell_face_offsets[r + 1])
        ]
        return self.vertices[v0:v1], faces

    def volumes(self) -> np.ndarray:
        """(R,) float64 cell volumes (divergence theorem over fan-triangulated faces)."""
        fo = self.face_offsets
        nf = np.diff(fo)
        first = np.repeat(self.face_indices[fo[:-1]], nf)
        pos = np.arange(self.face_indices.shape[0])
        within = pos - np.repeat(fo[:-1], nf)
        nxt = np.where(within + 1 < np.repeat(nf, nf), pos + 1, np.repeat(fo[:-1], nf))
        a = self.vertices[first]
        b = self.vertices[self.face_indices]
        c = self.vertices[self.face_indices[nxt]]
        vol6 = np.einsum("ij,ij->i", a, np.cross(b, c))
        face_of = np.repeat(np.arange(nf.shape[0]), nf)
        face_vol = np.bincount(face_of, vol6, minlength=nf.shape[0]) / 6.0
        cell_of_face = np.repeat(np.arange(self.num_regions), np.diff(self.cell_face_offsets))
        return np.bincount(cell_of_face, face_vol, minlength=self.num_regions)

    def centroids(self) -> np.ndarray:
        """(R, 3) vertex means (interior points of the convex cells)."""
        cnt = np.diff(self.vertex_offsets)
        cell = np.repeat(np.arange(self.num_regions), cnt)
        s = np.zeros((self.num_regions, 3))
        np.add.at(s, cell, self.vertices)
        return s / np.maximum(cnt, 1)[:, None]

    def domain_volume(self) -> float:
        d = np.asarray(self.domain, dtype=np.float64)
        return float((d[1] - d[0]) * (d[3] - d[2]) * (d[5] - d[4]))

    def region_of(self, u: np.ndarray, tol: float | None = None) -> np.ndarray:
        """(n,) int64 index of the cell containing each point of ``u (n, 3)``; -1 outside the domain."""
        from geometry.tessellation.locate import locate_points_3d

        return locate_points_3d(self, u, self.tolerance if tol is None else tol)

    @cached_property
    def vertex_table(self):
        """The cells on one shared vertex table (:class:`~geometry.tessellation.vertex_table.CellMesh`): each
        vertex once, face loops into it, each face's neighbour cell, each edge once; built on first use."""
        from geometry.tessellation.vertex_table import cell_mesh

        return cell_mesh(self)

    def boundary_polygons(self) -> list[np.ndarray]:
        return np.split(self.boundary_vertices, self.boundary_offsets[1:-1])

    def to_json(self) -> dict:
        from geometry.tessellation.export import tessellation_to_json

        return tessellation_to_json(self)


Tessellation = Tessellation2D | Tessellation3D


def _ragged_shoelace(vertices: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    n = vertices.shape[0]
    if n == 0:
        return np.zeros(offsets.shape[0] - 1)
    nxt = next_in_loop(offsets)
    x, y = vertices[:, 0], vertices[:, 1]
    cross = x * y[nxt] - x[nxt] * y
    return 0.5 * np.add.reduceat(cross, offsets[:-1]) if offsets.shape[0] > 1 else np.zeros(0)


def _ragged_centroids(vertices: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    nxt = next_in_loop(offsets)
    x, y = vertices[:, 0], vertices[:, 1]
    cross = x * y[nxt] - x[nxt] * y
    a = np.add.reduceat(cross, offsets[:-1]) / 2.0
    cx = np.add.reduceat((x + x[nxt]) * cross, offsets[:-1]) / (6.0 * a)
    cy = np.add.reduceat((y + y[nxt]) * cross, offsets[:-1]) / (6.0 * a)
    return np.stack([cx, cy], axis=1)
