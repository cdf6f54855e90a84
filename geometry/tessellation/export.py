"""JSON export of a tessellation (the ``splineatlas tessellate --json`` schema), on its shared vertex table.

Schema (``format: "splineatlas-tessellation/2"``): ``domain`` (2D: CCW polygon vertices; 3D: box
[umin, umax, vmin, vmax, wmin, wmax]), ``origin`` (D,), ``basis`` (D x k, rows = input coordinates),
``anchors`` (slice coordinates of the points that defined the slice), ``depth``, ``num_layers``, ``layers``
[{kind, width}], ``points`` [[u, v(, w)], ...]: every vertex once (slice coordinates), ``edges`` [[i, j], ...]:
every edge once, as indices into ``points``;
2D: ``edge_layer`` [...] (0-based layer that made each edge, -1 = domain), ``edge_regions`` [[left, right],
...] (the regions on either side, -1 = outside), ``regions``: [{"loop": [i, ...] (indices into ``points``,
CCW), "pattern": [[0/1 per neuron of layer 1], ...] (maxpool layers: argmax indices), "class": int (-1: not
constant), "slope_norm": float | null}];
3D: ``regions``: [{"faces": [[i, j, k, ...], ...] (loops into ``points``, counter-clockwise seen from
outside), "face_layer": [...], "neighbours": [...] (the cell across each face, -1 = the domain box),
"pattern", "class", "slope_norm"}];
``decision_boundary``: 2D segments [[[u0, v0], [u1, v1]], ...] or 3D polygons [[[u, v, w], ...], ...],
``boundary_classes`` [[c0, c1], ...]. Version 1 repeated each vertex in every region touching it.
"""

from __future__ import annotations

import math

import numpy as np

FORMAT = "splineatlas-tessellation/2"


def _f(x) -> float | None:
    x = float(x)
    return None if math.isnan(x) else x


def tessellation_to_json(t) -> dict:
    pats = t.patterns
    R = t.num_regions
    table = t.vertex_table
    regions = []
    if hasattr(t, "face_offsets"):  # a Tessellation3D (this module stays below types, which calls it)
        fo, cfo = table.face_offsets, t.cell_face_offsets
        for r in range(R):
            f0, f1 = cfo[r], cfo[r + 1]
            regions.append(
                {
                    "faces": [table.face_loops[fo[f] : fo[f + 1]].tolist() for f in range(f0, f1)],
                    "face_layer": t.face_layer[f0:f1].tolist(),
                    "neighbours": table.face_neighbour[f0:f1].tolist(),
                    "pattern": [p[r].astype(int).tolist() for p in pats],
                    "class": int(t.classes[r]),
                    "slope_norm": _f(t.slope_norm[r]),
                }
            )
        boundary = [p.tolist() for p in t.boundary_polygons()]
        domain = np.asarray(t.domain).tolist()
        edges = {}
    else:
        for r in range(R):
            regions.append(
                {
                    "loop": table.loops[t.offsets[r] : t.offsets[r + 1]].tolist(),
                    "pattern": [p[r].astype(int).tolist() for p in pats],
                    "class": int(t.classes[r]),
                    "slope_norm": _f(t.slope_norm[r]),
                }
            )
        boundary = t.boundary_segments.tolist()
        domain = t.domain.tolist()
        edges = {"edge_layer": table.edge_layer.tolist(), "edge_regions": table.edge_regions.tolist()}
    return {
        "format": FORMAT,
        "dim": t.slice.dim,
        "domain": domain,
        "origin": t.slice.origin.tolist(),
        "basis": t.slice.basis.tolist(),
        "slice_description": t.slice.description,
        "anchors": np.asarray(t.slice.anchors).tolist(),
        "depth": t.depth,
        "num_layers": len(t.layers),
        "layers": [{"kind": li.kind, "width": li.width} for li in t.layers],
        "num_classes": t.num_classes,
        "num_regions": R,
        "points": table.points.tolist(),
        "edges": table.edges.tolist(),
        **edges,
        "regions": regions,
        "decision_boundary": boundary,
        "boundary_classes": np.asarray(t.boundary_classes).tolist(),
        "seconds": t.seconds,
        "device": t.device,
    }
