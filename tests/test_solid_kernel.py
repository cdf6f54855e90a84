"""The compact 3D cutting kernel (geometry/tessellation/solid.py) on its own: cuts through vertices, generic
cuts, and a deep random net against the independent reference, checked by closed surfaces, Euler
characteristics, outward orientation and volumes."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from geometry.networks.network import Network
from geometry.networks.spec import mlp_spec
from geometry.slices import Slice
from geometry.tessellation import mesh3d, tessellate_all_depths
from geometry.tessellation.solid import box_cells, padded_faces, ragged_cells, split_cells

pytestmark = pytest.mark.usefixtures("one_torch_thread")

BOX = np.array([-1.0, 1.0, -1.0, 1.0, -1.0, 1.0])


def _as_tess(cells):
    v, voff, fidx, foff, cfoff, fl = ragged_cells(cells)
    return SimpleNamespace(
        vertices=v, vertex_offsets=voff, face_indices=fidx, face_offsets=foff, cell_face_offsets=cfoff, face_layer=fl, num_regions=voff.shape[0] - 1
    )


def _signed_volumes(t) -> np.ndarray:
    """Per cell, the volume by the divergence theorem over its fan triangles: positive iff the loops face outward."""
    tris, tri_face = mesh3d.triangulate_faces(t.face_indices, t.face_offsets)
    p = t.vertices[tris]
    vol = np.einsum("ij,ij->i", p[:, 0], np.cross(p[:, 1], p[:, 2])) / 6
    cell = mesh3d.face_cells(t)[tri_face]
    return np.bincount(cell, weights=vol, minlength=t.num_regions)


def _check_closed(t, volume: float):
    assert (mesh3d.cell_euler_characteristic(t) == 2).all()
    assert mesh3d.cell_watertight(t).all()
    vol = _signed_volumes(t)
    assert (vol > 0).all()
    assert vol.sum() == pytest.approx(volume, rel=1e-12)
    # every vertex of a cell is a corner of at least three of its faces
    uses = np.bincount(t.face_indices, minlength=t.vertices.shape[0])
    assert uses.min() >= 3


def _plane(a, b):
    a = np.asarray(a, dtype=np.float64)
    n = np.linalg.norm(a)
    return torch.tensor([[*(a / n), b / n]])


def test_a_cut_through_four_box_corners_makes_two_prisms_without_new_vertices():
    pos, neg = split_cells(box_cells(BOX, torch.float64, "cpu"), _plane([1, -1, 0], 0.0), 1e-9, 0)
    for part in (pos, neg):
        assert part.n == 1 and int(part.nv) == 6 and part.face_size.shape[0] == 5
        t = _as_tess(part)
        _check_closed(t, 4.0)
        assert sorted(np.diff(t.face_offsets).tolist()) == [3, 3, 4, 4, 4]
    # the + part is x - y >= 0
    assert (pos.V[0, :, 0] - pos.V[0, :, 1] >= -1e-12).all() and (neg.V[0, :, 0] - neg.V[0, :, 1] <= 1e-12).all()


def test_generic_and_vertex_grazing_cuts_close_both_parts():
    box = box_cells(BOX, torch.float64, "cpu")
    # generic; a corner cut off; through three corners (1, 1, -1), (1, -1, 1), (-1, 1, 1) and across the box
    for a, b in [([1.0, 0.3, -0.2], 0.1), ([1.0, 1.0, 1.0], 2.0), ([1.0, 1.0, 1.0], -1.0)]:
        pos, neg = split_cells(box, _plane(a, b), 1e-9, 3)
        both = _as_tess(type(pos).cat([pos, neg]))
        _check_closed(both, 8.0)
        assert (both.face_layer == 3).sum() == 2, "one cap face per part"
        for f in np.flatnonzero(both.face_layer == 3):
            pts = both.vertices[both.face_indices[both.face_offsets[f] : both.face_offsets[f + 1]]]
            np.testing.assert_allclose(pts @ np.asarray(a) + b, 0, atol=1e-12)


def test_padded_faces_round_trip_the_compact_cells():
    pos, neg = split_cells(box_cells(BOX, torch.float64, "cpu"), _plane([0.4, -1.0, 0.7], 0.2), 1e-9, 0)
    cells = type(pos).cat([pos, neg])
    V, fc, FL = padded_faces(cells)
    t = _as_tess(cells)
    for r in range(cells.n):
        faces = range(t.cell_face_offsets[r], t.cell_face_offsets[r + 1])
        want = sorted(tuple(map(tuple, np.round(t.vertices[t.face_indices[t.face_offsets[f] : t.face_offsets[f + 1]]], 12))) for f in faces)
        got = sorted(tuple(map(tuple, np.round(V[r, i, : int(fc[r, i])].numpy(), 12))) for i in range(V.shape[1]) if fc[r, i] > 0)
        assert got == want
        assert sorted(FL[r][fc[r] > 0].tolist()) == sorted(t.face_layer[list(faces)].tolist())


def test_a_deep_random_net_matches_the_reference_cell_for_cell():
    from reference_tess3d import reference_tessellations

    torch.manual_seed(5)
    net = Network(mlp_spec([3, 7, 7, 7, 2]))
    eng = tessellate_all_depths(net, Slice.input_plane(3), BOX)
    ref = reference_tessellations(net, BOX)
    for e, r in zip(eng, ref):
        assert e.num_regions == r.num_regions
        _check_closed(e, 8.0)
        # the same cells: each reference cell's centroid lies in an engine cell with the same volume
        cell = e.region_of(r.centroids())
        assert np.unique(cell).shape[0] == r.num_regions
        np.testing.assert_allclose(e.volumes()[cell], r.volumes(), rtol=1e-7)
