"""Fawzi Algorithm 2 curvature detector: separates clean from DeepFool-perturbed digits better than chance."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from geometry.networks.datasets import builtin_dataset
from geometry.boundary.deepfool import deepfool
from geometry.boundary.detection import calibrate_threshold, detect_perturbed, detection_rates
from geometry.errors import SplineAtlasError
from geometry.networks.network import Network
from geometry.networks.spec import mlp_spec


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _digits_net(activation):
    ds = builtin_dataset("digits", seed=0)
    torch.manual_seed(0)
    net = Network(mlp_spec([64, 48, 48, 10], activation=activation))
    X, y = torch.as_tensor(ds.X_train, dtype=torch.float32), torch.as_tensor(ds.y_train)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for _ in range(200):
            opt.zero_grad()
            nn.functional.cross_entropy(net(X), y).backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    return net.eval(), ds


@pytest.mark.parametrize("activation,kw,min_auc,min_bal,min_rec", [("softplus", {}, 0.62, 0.58, 0.3), ("relu", {"fd_scale": 0.3}, 0.6, 0.58, 0.15)])
def test_detector_beats_chance_on_held_out_points(activation, kw, min_auc, min_bal, min_rec):
    net, ds = _digits_net(activation)
    kw = dict(kw, num_samples=12)
    cal = ds.X_train[:60]
    dfc = deepfool(net, cal)
    c0 = detect_perturbed(net, cal, **kw)
    p0 = detect_perturbed(net, dfc.perturbed, **kw)
    t = calibrate_threshold(c0.rho, p0.rho)
    x = ds.X_test[:80]
    df = deepfool(net, x)
    assert df.converged.all()
    clean = detect_perturbed(net, x, threshold=t, **kw)
    pert = detect_perturbed(net, df.perturbed, threshold=t, **kw)
    rates = detection_rates(clean, pert, df.original_labels)
    print(
        f"\n{activation} {clean.mode} scale={clean.scale} t={t:.4g}: clean kept {rates.clean_accuracy:.2f}, "
        f"perturbed detected {rates.perturbed_detection:.2f}, balanced {rates.balanced_accuracy:.2f}, "
        f"AUC {rates.auc:.2f}, label recovery {rates.label_recovery}"
    )
    assert rates.auc > min_auc
    assert rates.balanced_accuracy > min_bal
    assert rates.label_recovery is not None and rates.label_recovery > min_rec  # chance: 1/9
    # the perturbed points' predicted class is the DeepFool class, and the recovered label differs from it
    assert np.array_equal(pert.predicted, df.labels)
    assert np.all(pert.labels[pert.perturbed] != pert.predicted[pert.perturbed])
    assert np.all(clean.labels[~clean.perturbed] == clean.predicted[~clean.perturbed])


def test_statistic_is_the_mean_tangent_curvature_on_a_sphere():
    class Sphere(nn.Module):
        def forward(self, x):
            f = 0.5 * (4.0 - (x**2).sum(1))
            return torch.stack([torch.zeros_like(f), f, -torch.ones_like(f) * 100], 1)

    # class 1 inside the sphere of radius 2 (class 2 never wins); at a point x inside, F_0 = f_0 - f_1 has
    # Hessian +I, |grad F_0| = |x|, so v^T G v = |P v|^2 / |x| and E_v = (d-1)/d / |x|. Class 2's F is
    # f_2 - f_1 with Hessian +I as well.
    x = np.array([[1.0, 0.0, 0.0, 0.0]])
    res = detect_perturbed(Sphere(), x, num_samples=4000, seed=1)
    assert res.predicted[0] == 1 and res.mode == "exact"
    assert res.class_scores[0, 0] == pytest.approx(0.75 / 1.0, rel=0.05)
    assert np.isnan(res.class_scores[0, 1])
    assert res.rho[0] == pytest.approx((res.class_scores[0, 0] + res.class_scores[0, 2]) / 3, rel=1e-12)
    flipped = res.with_threshold(0.0, "above")
    assert flipped.perturbed[0] and flipped.labels[0] in (0, 2)
    with pytest.raises(SplineAtlasError):
        detect_perturbed(Sphere(), x, perturbed_when="sideways")


def test_calibrated_threshold_separates_separable_statistics():
    t = calibrate_threshold([1.0, 2.0, 3.0], [-1.0, 0.0, 0.5])
    assert 0.5 < t < 1.0
    t2 = calibrate_threshold([-1.0, 0.0], [2.0, 3.0], "above")
    assert 0.0 < t2 < 2.0
