"""Principal curvatures (Fawzi eq. 1) on boundaries with known curvature, exact and secant HVPs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from geometry.boundary.curvature import curvatures_at, principal_curvatures, project_to_boundary
from geometry.errors import SplineAtlasError
from geometry.networks.network import Network
from geometry.networks.spec import mlp_spec


pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Paraboloid(nn.Module):
    """Logits (0, a (x_D - 1/2 sum_i c_i x_i^2)): at 0 the boundary's principal curvatures are -c_i."""

    def __init__(self, c, a=3.0):
        super().__init__()
        self.register_buffer("c", torch.as_tensor(c, dtype=torch.float64))
        self.a = a

    def forward(self, x):
        f = self.a * (x[:, -1] - 0.5 * (self.c * x[:, :-1] ** 2).sum(1))
        return torch.stack([torch.zeros_like(f), f], 1)


class Sphere(nn.Module):
    """Logits (0, (R^2 - |x - m|^2) / 2): boundary = sphere of radius R, every principal curvature -1/R."""

    def __init__(self, m, R):
        super().__init__()
        self.register_buffer("m", torch.as_tensor(m, dtype=torch.float64))
        self.R = R

    def forward(self, x):
        f = 0.5 * (self.R**2 - ((x - self.m) ** 2).sum(1))
        return torch.stack([torch.zeros_like(f), f], 1)


@pytest.mark.parametrize("mode", ["exact", "secant"])
def test_paraboloid_curvatures_are_exact(mode):
    c = np.array([2.0, -1.0, 0.5, 0.0, -3.0])
    net = Paraboloid(c)
    res = curvatures_at(net, np.zeros((1, 6)), 0, 1, mode=mode, fd_scale=0.3 if mode == "secant" else None)
    assert res.complete and res.curvatures.shape == (1, 5)
    assert np.allclose(res.curvatures[0], np.sort(-c)[::-1], atol=1e-10)
    assert res.mean_curvature[0] == pytest.approx(-c.mean(), abs=1e-10)
    assert res.gradient_norm[0] == pytest.approx(3.0)
    # principal directions: unit, tangent (orthogonal to e_D), the eigenvectors of diag(-c)
    d = res.directions[0]
    assert np.allclose(np.linalg.norm(d, axis=1), 1) and np.allclose(d[:, -1], 0, atol=1e-10)
    for kappa, v in zip(res.curvatures[0], d):
        assert np.allclose(-c * v[:-1], kappa * v[:-1], atol=1e-8)


def test_end_to_end_from_a_point_below_the_paraboloid():
    c = np.array([1.0, 4.0])
    net = Paraboloid(c)
    x = np.array([[0.0, 0.0, -0.7]])
    res = principal_curvatures(net, x)
    assert res.mode == "exact" and res.scale is None
    assert np.allclose(res.points, 0.0, atol=1e-9) and res.boundary_residual[0] < 1e-12
    assert np.allclose(res.curvatures[0], [-1.0, -4.0], atol=1e-9)


def test_sphere_curvature_everywhere_and_partial_lanczos():
    rng = np.random.default_rng(0)
    D, R = 12, 2.5
    m = rng.normal(size=D)
    net = Sphere(m, R)
    u = rng.normal(size=(7, D))
    z = m + R * u / np.linalg.norm(u, axis=1, keepdims=True)
    res = curvatures_at(net, z, 0, 1)
    assert np.allclose(res.curvatures, -1.0 / R, atol=1e-10)
    part = curvatures_at(net, z + 0.1, 0, 1, num=3)
    assert part.curvatures.shape == (7, 3) and not part.complete and np.isnan(part.mean_curvature).all()
    zz = project_to_boundary(net, z * 1.05 - 0.05 * m, np.zeros(7, int), np.ones(7, int))
    assert np.allclose(np.linalg.norm(zz - m, axis=1), R, atol=1e-10)


def test_piecewise_linear_net_needs_a_scale_and_labels_it():
    torch.manual_seed(0)
    net = Network(mlp_spec([4, 16, 16, 3]))
    x = np.random.default_rng(1).normal(size=(5, 4))
    with pytest.raises(SplineAtlasError, match="scale"):
        principal_curvatures(net, x)
    res = principal_curvatures(net, x, fd_scale=0.2)
    assert res.mode == "secant" and res.scale == 0.2 and "0.2" in res.label
    assert np.all(res.boundary_residual < 1e-8)
    assert np.all(np.isfinite(res.curvatures))
    exact = principal_curvatures(net, x, mode="exact")  # zero Hessian almost everywhere
    assert np.allclose(exact.curvatures, 0.0, atol=1e-12)


def test_secant_matches_exact_for_small_scale_on_a_smooth_net():
    torch.manual_seed(0)
    net = Network(mlp_spec([5, 16, 16, 3], activation="tanh"))
    x = np.random.default_rng(2).normal(size=(4, 5))
    ex = principal_curvatures(net, x)
    se = principal_curvatures(net, x, mode="secant", fd_scale=1e-4)
    assert ex.mode == "exact"
    assert np.allclose(ex.curvatures, se.curvatures, atol=1e-5 * max(1.0, np.abs(ex.curvatures).max()))
    # Lanczos vs a dense eigendecomposition of G = P H P / |grad F| (H by torch.autograd.functional.hessian)
    assert np.abs(ex.curvatures).max() > 1e-3
    net64 = net.to_dtype_device(torch.float64)
    for i in range(4):
        zi = torch.as_tensor(ex.points[i])

        def F(v):
            out = net64(v[None])[0]
            return out[ex.other[i]] - out[ex.base[i]]

        g = torch.autograd.functional.jacobian(F, zi).numpy()
        H = torch.autograd.functional.hessian(F, zi).numpy()
        n = g / np.linalg.norm(g)
        P = np.eye(5) - np.outer(n, n)
        ev = np.sort(np.linalg.eigvalsh(P @ H @ P / np.linalg.norm(g)))[::-1]
        ev = np.delete(ev, np.argmin(np.abs(ev)))  # drop the normal direction's zero
        assert np.allclose(ex.curvatures[i], ev, atol=1e-9)
