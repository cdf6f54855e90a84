"""The inspector's report as text, Qt-free: the rows the window's inspector shows and ``splineatlas inspect``
prints, from one :class:`app.jobs.PointReport` and its region geometry, so the two read alike."""

from __future__ import annotations

import numpy as np

INSPECTOR_ROWS = (
    ("u", "u, v", "slice coordinates of the point"),
    ("class", "predicted", "argmax of the network's output (a generator: its output G(z) and the tile's volume change)"),
    ("region", "region", "tile index in the current slice at the current layer depth, and the number of tiles"),
    ("hash", "pattern hash", "CRC32 of the activation pattern of layers 1..depth"),
    ("active", "active units", "active / total units per layer (1-based)"),
    ("slope", "‖A_ω‖₂", "spectral norm of the network's Jacobian on this region (full input space)"),
    ("bdist", "to boundary (slice)", "distance in the slice to the nearest exact decision-boundary segment"),
    ("deepfool", "to boundary (DeepFool)", "‖r(x)‖ of DeepFool's minimal perturbation in the full input space"),
    (
        "qp",
        "to boundary inside region (QP)",
        "exact smallest ‖δ‖ with x + δ still in x's region (∩ data box) "
        "and a different predicted class (a QP); none when the decision boundary does not cross the region",
    ),
    ("trace", "Tr G", "trace of the local data matrix G(x) = Jᵀ diag(p) J"),
    ("centroid", "centroid μ", "power-diagram centroid of the point's cell at the current layer (∇ₓ Σₖ z_l,k(x), Balestriero et al. eq. 20)"),
    ("bits", "active bits", "non-redundant inequalities of the region in the full input space (LP)"),
    ("neigh", "neighbours", "regions sharing a facet (flip one active bit)"),
    ("cheb", "Chebyshev radius", "radius of the largest ball inside the region ∩ data box (LP)"),
    ("rdist", "to region boundary", "exact distance from x to its region's boundary (full input space)"),
)
REGION_ROWS = ("qp", "bits", "neigh", "cheb", "rdist")  # filled by app.jobs.region_geometry (LPs, a QP)


def fmt(v, digits: int = 4) -> str:
    return "—" if v is None or not np.isfinite(v) else f"{v:.{digits}g}"


def _name(names, c: int) -> str:
    return str(names[c]) if 0 <= c < len(names) else str(c)


def report_text(r, class_names) -> dict[str, str]:
    """Text of every row the report fills (the region rows come from :func:`region_text`)."""
    names = list(class_names) or [str(i) for i in range(len(r.probs))]
    c = None if r.centroid is None else np.asarray(r.centroid).reshape(-1)
    return {
        "u": f"({r.u[0]:.5g}, {r.u[1]:.5g})",
        "class": _output_text(r, names),
        "region": "—" if r.region < 0 else f"#{r.region} of {r.region_count}",
        "hash": r.pattern_hash,
        "active": "  ".join(f"L{i + 1}: {a}/{w}" if a >= 0 else f"L{i + 1}: argmax" if a == -1 else f"L{i + 1}: smooth" for i, (a, w) in enumerate(r.active)),
        "slope": fmt(r.slope_norm),
        "bdist": fmt(r.boundary_distance_slice),
        "deepfool": fmt(r.deepfool_distance),
        "trace": fmt(r.trace_g),
        "centroid": "—" if c is None else f"layer {r.centroid_layer}: " + ("(" + ", ".join(f"{v:.4g}" for v in c) + ")" if len(c) <= 4 else "image below"),
    }


def _output_text(r, names) -> str:
    """The 'predicted' row: the class, a regression's f(x) against its level, or a generator's G(z)."""
    if getattr(r, "output", None) is not None:
        out = np.asarray(r.output)
        shown = "(" + ", ".join(f"{v:.4g}" for v in out) + ")" if len(out) <= 4 else f"{len(out)} values in {out.min():.3g}..{out.max():.3g}"
        return f"G(z) = {shown}  · volume change {fmt(r.volume)}"
    if r.value is not None:
        return f"f(x) = {r.value:.5g}  ({'above' if r.value > r.level else 'below'} the level {r.level:g})"
    return f"{_name(names, r.predicted)}  (p = {r.probs[r.predicted]:.3f})"


def region_text(info: dict, class_names) -> dict[str, str]:
    """Text of the region rows from :func:`app.jobs.region_geometry` (or its ``error``)."""
    if "error" in info:
        return {**{k: "—" for k in REGION_ROWS}, "bits": str(info["error"])}
    if info.get("qp_exists") is None:
        qp = "—"
    elif not info["qp_exists"]:
        qp = "none inside region"
    else:
        qp = f"{fmt(info['qp_distance'])}  (to {_name(list(class_names), info['qp_target'])})"
    return {
        "qp": qp,
        "bits": f"{info['active_bits']} of {info['n_bits']}",
        "neigh": str(info["neighbours"]),
        "cheb": fmt(info.get("chebyshev_radius")),
        "rdist": fmt(info.get("boundary_distance")),
    }


def report_document(r, class_names, region: dict | None = None) -> dict:
    """The report as JSON-ready data: every row as shown and the raw numbers (unknown numbers are null). The
    inspector's Copy button and ``splineatlas inspect --json`` write this."""
    rows = report_text(r, class_names)
    if region is not None:
        rows.update(region_text(region, class_names))
    doc = {
        "rows": rows,
        "u": list(r.u),
        "x": np.asarray(r.x).tolist(),
        "probs": np.asarray(r.probs).tolist(),
        "predicted": r.predicted,
        "region_index": r.region,
        "region_count": r.region_count,
        "pattern_hash": r.pattern_hash,
        "slope_norm": r.slope_norm,
        "boundary_distance_slice": r.boundary_distance_slice,
        "deepfool_distance": r.deepfool_distance,
        "trace_g": r.trace_g,
        "active": [list(a) for a in r.active],
        "centroid": None if r.centroid is None else np.asarray(r.centroid).tolist(),
        "centroid_layer": r.centroid_layer,
        "region": region,
    }
    if getattr(r, "output", None) is not None:  # a generator: its output and the tile's area stretch
        doc["output"] = np.asarray(r.output).tolist()
        doc["volume_change"] = r.volume
    return finite(doc)


def finite(obj):
    """JSON has no NaN: unknown numbers become null."""
    if isinstance(obj, float):
        return obj if np.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


__all__ = ["INSPECTOR_ROWS", "REGION_ROWS", "finite", "fmt", "region_text", "report_document", "report_text"]


LAYER_COLUMNS = (("path", "layer"), ("layer", "type"), ("output", "output shape"), ("parameters", "parameters"), ("kind", "kind"))
"""The columns of the network's layer list (``Network.layer_table``): key, heading."""


def layer_cells(row: dict) -> list[str]:
    """One layer row as the text of its cells, as ``splineatlas info`` prints it and the app's list shows it."""
    out = row["output"]
    return [row["path"], row["layer"], "×".join(map(str, out)) if out else "—", f"{row['parameters']:,}", row["kind"]]


def layer_lines(rows: list[dict]) -> list[str]:
    """The layer list as aligned text lines (a heading, then one line per layer)."""
    table = [[h for _, h in LAYER_COLUMNS]] + [layer_cells(r) for r in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(LAYER_COLUMNS))]
    return ["  ".join(c.rjust(w) if i == 3 else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip() for r in table]
