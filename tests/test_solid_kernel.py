"""The compact 3D cutting kernel (geometry/tessellation/solid.py) on its own: cuts through vertices, generic
cuts, and a deep random net against the independent reference, checked by closed surfaces, Euler
characteristics, outward orientation and volumes."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from geometry.networks.network import Network
from geometry.networks.spec import mlp_spec
from geometry.slices import Slice
from geometry.tessellation import mesh3d, tessellate_all_depths
from geometry.tessellation.solid import box_cells, clip_cells, ragged_cells, split_cells

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


def test_clip_keeps_whole_drops_and_cuts_in_order():
    pos, neg = split_cells(box_cells(BOX, torch.float64, "cpu"), _plane([1, 0, 0], 0.0), 1e-9, 0)  # x >= 0, x <= 0
    cells = type(pos).cat([pos, neg, pos])
    planes = torch.cat([_plane([1, 0, 0], 0.0), _plane([1, 0, 0], -0.5), _plane([0, 1, 0], 0.25)])  # keeps, drops, cuts
    out, kept = clip_cells(cells, planes, 1e-9, 7)
    assert kept.tolist() == [True, False, True]
    t = _as_tess(out)
    _check_closed(t, 4.0 + 1.25 * 2)
    vol = _signed_volumes(t)
    np.testing.assert_allclose(vol, [4.0, 2.5], rtol=1e-12)
    assert (t.face_layer == 7).sum() == 1 and (out.V[1, : int(out.nv[1]), 1] >= -0.25 - 1e-12).all()


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


def test_sliced_crossing_tests_give_the_same_tessellations(monkeypatch):
    from geometry.tessellation import planar, tessellate

    torch.manual_seed(2)
    net3 = Network(mlp_spec([3, 12, 12, 2]))
    net2 = Network(mlp_spec([2, 24, 24, 3]))
    want3 = tessellate(net3, Slice.input_plane(3), BOX)
    want2 = tessellate(net2, Slice.input_plane(2), BOX[:4])
    monkeypatch.setattr(planar, "CHECK_BYTES", 512)  # a few candidates or cells per slice
    got3 = tessellate(net3, Slice.input_plane(3), BOX)
    got2 = tessellate(net2, Slice.input_plane(2), BOX[:4])
    np.testing.assert_array_equal(got3.vertices, want3.vertices)
    np.testing.assert_array_equal(got3.face_indices, want3.face_indices)
    np.testing.assert_array_equal(got2.vertices, want2.vertices)
    assert got3.num_regions == want3.num_regions > 50 and got2.num_regions == want2.num_regions > 100


def test_release_free_memory_trims_the_glibc_heap():
    import platform

    from geometry.heap import release_free_memory

    assert release_free_memory() is (sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc")


@pytest.mark.parametrize("kind", ["zero-bias", "integer-weights"])
def test_degenerate_nets_give_closed_cells_with_the_forward_patterns(kind):
    """Zero biases put every first-layer plane through the origin; small integer weights make planes and
    vertices coincide exactly: cuts through existing vertices and edges everywhere."""
    torch.manual_seed(1)
    net = Network(mlp_spec([3, 10, 10, 2]))
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for m in net.layers:
            if isinstance(m, torch.nn.Linear):
                if kind == "zero-bias":
                    m.bias.zero_()
                else:
                    m.weight.copy_(torch.randint(-2, 3, m.weight.shape, generator=gen).to(m.weight.dtype))
                    m.bias.copy_(torch.randint(-1, 2, m.bias.shape, generator=gen).to(m.bias.dtype) * 0.5)
    ts = tessellate_all_depths(net, Slice.input_plane(3), BOX)
    for t in ts:
        _check_closed(t, 8.0)
    t = ts[-1]
    u = np.random.default_rng(0).uniform(-1, 1, (3000, 3))
    r = t.region_of(u)
    assert (r >= 0).all()
    with torch.no_grad():
        tr = net.to_dtype_device(torch.float64).trace(torch.as_tensor(u))
    pre = [p.numpy() for p in tr.preactivations]
    for j in range(t.depth):
        clear = (np.abs(pre[j]) > 1e-7).all(1)  # points on no cut of this layer
        assert clear.sum() > 1000
        np.testing.assert_array_equal(t.pattern(j)[r[clear]], tr.patterns[j].numpy()[clear])


def test_freed_memory_is_kept_for_reuse_and_trimmed_only_after_big_layers(monkeypatch):
    import platform

    import geometry.heap as heap

    glibc = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    trims = []
    monkeypatch.setattr(heap, "release_free_memory", lambda: trims.append(1) or glibc)
    assert heap.release_if_large(10 << 20, 1 << 30) is False and trims == []  # small for the budget: kept
    assert heap.release_if_large(200 << 20, 1 << 30) is glibc and trims == [1]  # an eighth or more: trimmed
    assert heap.release_if_large(300 << 20, 16 << 30) is False and len(trims) == 1  # under 512 MB: kept
    assert heap.release_if_large(600 << 20, 16 << 30) is glibc and len(trims) == 2  # over 512 MB: trimmed
    assert heap.release_if_large(1, None) is glibc and len(trims) == 3  # no budget: always
    assert heap.reuse_freed_memory() is glibc  # the app's setting takes (idempotent, cached)
