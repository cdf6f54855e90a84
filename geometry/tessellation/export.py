"""JSON export of a tessellation (the ``splineatlas tessellate --json`` schema).

Schema (``format: "splineatlas-tessellation/1"``): ``domain`` (2D: CCW polygon vertices; 3D: box
[umin, umax, vmin, vmax, wmin, wmax]), ``origin`` (D,), ``basis`` (D x k, rows = input coordinates),
``anchors`` (slice coordinates of the points that defined the slice), ``depth``, ``num_layers``, ``layers`` [{kind, width}],
``regions``: [{"vertices": [[u, v], ...] (CCW),
"pattern": [[0/1 per neuron of layer 1], ...] (maxpool layers: argmax indices), "class": int (-1: not
constant), "slope_norm": float | null, "edge_layer": [...] (2D; 0-based layer of the edge from vertex
i to i+1, -1 = domain)} or in 3D {"vertices": [[u, v, w], ...], "faces": [[i, j, k, ...], ...],
"face_layer": [...], ...}], ``decision_boundary``: 2D segments [[[u0, v0], [u1, v1]], ...] or 3D
polygons [[[u, v, w], ...], ...], ``boundary_classes`` [[c0, c1], ...].
"""

from __future__ import annotations

import math

import numpy as np

FORMAT = "splineatlas-tessellation/1"


def _f(x) -> float | None:
    x = float(x)
    return None if math.isnan(x) else x


def tessellation_to_json(t) -> dict:
    pats = t.patterns
    R = t.num_regions
    regions = []
    if hasattr(t, "face_offsets"):  # a Tessellation3D (this module stays below types, which calls it)
        for r in range(R):
            v, faces = t.polyhedron(r)
            f0, f1 = t.cell_face_offsets[r], t.cell_face_offsets[r + 1]
            regions.append(
                {
                    "vertices": v.tolist(),
                    "faces": [f.tolist() for f in faces],
                    "face_layer": t.face_layer[f0:f1].tolist(),
                    "pattern": [p[r].astype(int).tolist() for p in pats],
                    "class": int(t.classes[r]),
                    "slope_norm": _f(t.slope_norm[r]),
                }
            )
        boundary = [p.tolist() for p in t.boundary_polygons()]
        domain = np.asarray(t.domain).tolist()
    else:
        for r in range(R):
            a, b = t.offsets[r], t.offsets[r + 1]
            regions.append(
                {
                    "vertices": t.vertices[a:b].tolist(),
                    "edge_layer": t.edge_layer[a:b].tolist(),
                    "pattern": [p[r].astype(int).tolist() for p in pats],
                    "class": int(t.classes[r]),
                    "slope_norm": _f(t.slope_norm[r]),
                }
            )
        boundary = t.boundary_segments.tolist()
        domain = t.domain.tolist()
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
        "regions": regions,
        "decision_boundary": boundary,
        "boundary_classes": np.asarray(t.boundary_classes).tolist(),
        "seconds": t.seconds,
        "device": t.device,
    }
