"""Theorem-8 dihedral angles on hand-built nets with closed-form boundaries; cross-section slices."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geometry.boundary.boundary_angles import angle_histogram, boundary_angles
from geometry.boundary.cross_sections import cross_sections
from geometry.errors import SplineAtlasError
from geometry.networks.network import Network
from geometry.slices import Slice
from geometry.networks.spec import mlp_spec


pytestmark = pytest.mark.usefixtures("one_torch_thread")

engine = pytest.importorskip("geometry.tessellation.engine")


def _kinked_net(a, b, c=0.0):
    """f1 - f0 = a relu(x + c z / a) + b relu(-x) - y: boundary y = a x (x > 0), y = -b x (x < 0) at z = 0."""
    D = 3 if c else 2
    net = Network(mlp_spec([D, 3, 2])).to_dtype_device(torch.float64)
    W1 = np.zeros((3, D))
    W1[0, 0], W1[1, 0], W1[2, 1] = 1.0, -1.0, 1.0
    if c:
        W1[0, 2] = c / a
    with torch.no_grad():
        net.layers[0].weight.copy_(torch.as_tensor(W1))
        net.layers[0].bias.copy_(torch.tensor([0.0, 0.0, 10.0], dtype=torch.float64))
        net.layers[2].weight.copy_(torch.tensor([[0.0, 0.0, 1.0], [a, b, 0.0]], dtype=torch.float64))
        net.layers[2].bias.copy_(torch.tensor([-10.0, 0.0], dtype=torch.float64))
    return net


@pytest.mark.parametrize("a,b", [(2.0, -0.5), (1.0, 1.0), (0.3, 2.5)])
def test_angle_on_input_plane_matches_closed_form(a, b):
    net = _kinked_net(a, b)
    tess = engine.tessellate(net, Slice.input_plane(2), domain=[-2, 2, -2, 2])
    res = boundary_angles(net, tess)
    expected = np.degrees(np.arccos(abs(1 - a * b) / np.sqrt((a * a + 1) * (b * b + 1))))
    assert res.angles.shape == (1,)
    assert res.angles[0] == pytest.approx(expected, abs=1e-9)
    assert res.slice_angles[0] == pytest.approx(expected, abs=1e-6)  # the slice is the input plane
    assert np.allclose(res.vertices[0], [0.0, 0.0], atol=1e-9)
    counts, edges = res.histogram()
    assert counts.sum() == 1 and edges[0] == 0 and edges[-1] == 90


def test_dihedral_angle_uses_the_full_input_space():
    a, b, c = 2.0, -0.5, 1.5
    net = _kinked_net(a, b, c)
    sl = Slice(np.zeros(3), np.eye(3)[:, :2], description="z = 0")
    tess = engine.tessellate(net, sl, domain=[-2, 2, -2, 2])
    res = boundary_angles(net, tess)
    ar, al = np.array([a, -1.0, c]), np.array([-b, -1.0, 0.0])
    expected = np.degrees(np.arccos(abs(ar @ al) / np.linalg.norm(ar) / np.linalg.norm(al)))
    in_slice = np.degrees(np.arccos(abs(1 - a * b) / np.sqrt((a * a + 1) * (b * b + 1))))
    assert res.angles[0] == pytest.approx(expected, abs=1e-9)
    assert res.slice_angles[0] == pytest.approx(in_slice, abs=1e-6)
    assert abs(expected - in_slice) > 1.0
    assert np.allclose(res.normals[np.argsort(tess.boundary_segments[:, :, 0].mean(1))], [al, ar])


def _trained(widths=(2, 16, 16, 3), steps=150):
    from geometry.networks.datasets import builtin_dataset

    torch.manual_seed(0)
    ds = builtin_dataset("spirals", n=300, seed=0)
    net = Network(mlp_spec(list(widths)))
    X, y = torch.as_tensor(ds.X_train, dtype=torch.float32), torch.as_tensor(ds.y_train)
    opt = torch.optim.Adam(net.parameters(), lr=2e-2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for _ in range(steps):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(X), y).backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    return net.eval().to_dtype_device(torch.float64)


def test_angles_on_trained_net_and_pooled_histogram():
    net = _trained()
    tess = engine.tessellate(net, Slice.input_plane(2), domain=[-3, 3, -3, 3])
    res = boundary_angles(net, tess)
    assert len(res.angles) > 0 and np.all((res.angles >= 0) & (res.angles <= 90))
    assert np.allclose(res.angles, res.slice_angles, atol=1e-5)  # 2D input: both the same
    # every vertex is an endpoint of both its segments
    for v, (s, t) in zip(res.vertices, res.segments):
        for k in (s, t):
            assert np.min(np.linalg.norm(tess.boundary_segments[k] - v, axis=1)) < 1e-6
    counts, _ = angle_histogram(np.concatenate([res.angles, res.angles]))
    assert counts.sum() == 2 * len(res.angles)


def test_cross_sections_plug_into_tessellation():
    torch.manual_seed(1)
    net = Network(mlp_spec([6, 16, 16, 3])).to_dtype_device(torch.float64)
    X = np.random.default_rng(0).normal(size=(3, 6))
    secs = cross_sections(net, X, seed=3)
    for i, cs in enumerate(secs):
        assert np.allclose(cs.slice.origin, X[i])
        r = cs.perturbation
        assert np.allclose(cs.slice.basis[:, 0], r / np.linalg.norm(r))
        assert np.allclose(cs.slice.anchors[1], [np.linalg.norm(r), 0.0])
        tess = engine.tessellate(net, cs.slice, domain=cs.domain)
        # x + r lies across the decision boundary: the classes of its region at u=0 and u=(||r||,0) differ
        reg = tess.region_of(np.array([[0.0, 0.0], [np.linalg.norm(r), 0.0]]))
        assert reg.min() >= 0
        lab = net(torch.as_tensor(cs.slice.to_input(np.array([[0.0, 0.0], [np.linalg.norm(r), 0.0]])))).argmax(1)
        assert lab[0].item() == cs.original_label and lab[1].item() == cs.adversarial_label != cs.original_label
        assert len(tess.boundary_segments) > 0
    two = cross_sections(net, X[:2], X[1:3])
    assert two[0].kind == "point" and np.allclose(two[0].slice.to_input(two[0].slice.anchors[2:3])[0], X[1])
    with pytest.raises(SplineAtlasError):
        cross_sections(net, X[:1], {"directions": secs[0].perturbation[None]}, deepfool_result=None)
