"""Whole-plane region counts (#18) against independent truths: the line-arrangement formula for one
hidden layer, and, for deeper nets, a much larger box verified to contain every vertex."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geometry.networks.network import Network
from geometry.networks.spec import mlp_spec
from geometry.regions.plane import count_plane_regions, recession_network
from geometry.slices import Slice
from geometry.tessellation import tessellate


def _net(widths, seed, batchnorm=False):
    torch.manual_seed(seed)
    net = Network(mlp_spec(widths, batchnorm=batchnorm))
    if batchnorm:  # non-trivial running statistics: the shift is part of what the far field drops
        g = torch.Generator().manual_seed(seed)
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g))
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.data.copy_(torch.randn(m.num_features, generator=g))
    return net


@pytest.mark.parametrize("n", [1, 3, 7, 12])
def test_one_hidden_layer_gives_the_line_arrangement_counts(n):
    """n lines in general position: 1 + n + n(n-1)/2 regions, 2n unbounded, (n-1)(n-2)/2 bounded."""
    for seed in range(3):
        pc = count_plane_regions(_net([2, n, 1], seed), Slice.input_plane(2))
        assert pc.unbounded == 2 * n
        assert pc.bounded == (n - 1) * (n - 2) // 2
        assert pc.regions == 1 + n + n * (n - 1) // 2


@pytest.mark.parametrize(
    "widths, batchnorm, ambient",
    [([2, 10, 10, 1], False, 2), ([2, 8, 8, 8, 3], False, 2), ([4, 12, 12, 2], True, 4), ([2, 16, 16, 1], False, 2)],
)
def test_deep_nets_equal_a_box_verified_to_contain_every_vertex(widths, batchnorm, ambient):
    for seed in range(2):
        net = _net(widths, seed, batchnorm)
        rng = np.random.default_rng(seed)
        sl = Slice.input_plane(2) if ambient == 2 else Slice.from_directions(rng.normal(size=ambient), rng.normal(size=(2, ambient)))
        pc = count_plane_regions(net, sl)
        # a far larger box, resolved finely enough for the certified square's regions: every vertex lies in
        # the certified square, the counts agree, and the unbounded regions are those reaching its edge
        _verify_against_a_far_larger_box(net, sl, pc)


def test_the_recession_network_is_positively_homogeneous():
    net = _net([3, 9, 9, 2], 0, batchnorm=True)
    rec = recession_network(net)
    x = torch.randn(20, 3, dtype=torch.float64)
    assert torch.allclose(rec(3.7 * x), 3.7 * rec(x), atol=1e-12)
    far = 1e7 * x  # far away the network's patterns are the recession network's
    from geometry.regions import patterns_of

    assert (patterns_of(net, far.numpy()) == patterns_of(rec, x.numpy())).mean() > 0.99


def test_parallel_lines_make_a_strip():
    """Two exactly parallel lines: three regions, all unbounded (the strip's recession cone is one ray)."""
    net = Network(mlp_spec([2, 2, 1]))
    with torch.no_grad():
        net.layers[0].weight.copy_(torch.tensor([[1.0, 0.0], [2.0, 0.0]]))
        net.layers[0].bias.copy_(torch.tensor([0.0, -1.0]))
    pc = count_plane_regions(net, Slice.input_plane(2))
    assert (pc.regions, pc.bounded, pc.unbounded) == (3, 0, 3)


def _verify_against_a_far_larger_box(net, sl, pc):
    S = 64 * pc.half_width
    big = tessellate(net, sl, [-S, S, -S, S], tol=1e-13, boundary=False, slope_norm=False)
    on_edge = np.isclose(np.abs(big.vertices), S, rtol=0, atol=1e-6 * S).any(axis=1)
    assert np.abs(big.vertices[~on_edge]).max() <= pc.half_width * (1 + 1e-9)
    assert big.num_regions == pc.regions
    touching = {r for r in range(big.num_regions) if on_edge[big.offsets[r] : big.offsets[r + 1]].any()}
    assert len(touching) == pc.unbounded


@pytest.mark.parametrize("widths, seed", [([2, 5, 5, 1], 2), ([2, 5, 5, 5, 5, 1], 5), ([2, 5, 5, 5, 1], 0)])
def test_trained_nets_with_dead_units(tmp_path, widths, seed):
    """Trained ReLU nets have units cut off by dead ones far out: their bent hyperplanes run parallel to
    their feeder's (strips). The count still equals a far larger box verified to hold every vertex."""
    from geometry.networks.datasets import builtin_dataset
    from geometry.networks.runs import open_run
    from geometry.networks.training import TrainingProtocol, train_run

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ds = builtin_dataset("paraboloid", n=2000, seed=0)
        protocol = TrainingProtocol(lr=0.01, val_fraction=0.2, early_stopping=10)
        run = open_run(train_run(ds, mlp_spec(widths), tmp_path / "r", epochs=60, save_epochs=[0, 60], seed=seed, protocol=protocol))
    finally:
        torch.set_num_threads(before)
    net = run.network(-1)
    sl = Slice.input_plane(2)
    pc = count_plane_regions(net, sl)
    _verify_against_a_far_larger_box(net, sl, pc)


def test_cli_whole_plane_twin(capsys, tmp_path):
    import json

    from app.cli.main import main

    out = tmp_path / "t.json"
    assert main(["tessellate", "assets/runs/spirals", "--epoch", "0", "--whole-plane", "--json", str(out), "--summary"]) == 0
    printed = capsys.readouterr().out
    plane = json.loads(out.read_text())["whole_plane"]
    assert f"whole plane: {plane['regions']} regions ({plane['bounded']} bounded, {plane['unbounded']} unbounded)" in printed
    assert plane["regions"] >= json.loads(out.read_text())["region_counts"][-1]
