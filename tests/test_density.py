"""Hyperplane density maps (#19 part 2): the exact edge length per unit area of a layer's bent
hyperplanes, checked against an independent count of zero crossings along many lines (Crofton's
formula: the measure of lines meeting a curve, counted with multiplicity, is twice its length)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from app.cli.main import main
from geometry.networks.network import Network
from geometry.networks.spec import mlp_spec
from geometry.slices import Slice
from geometry.tessellation import tessellate
from geometry.tessellation.density import edge_density


def _crofton_length(net, layer: int, box, directions=16, offsets=100, samples=1000) -> float:
    """Layer ``layer``'s zero-set length in ``box`` from sign changes of its units' pre-activations along
    lines (forward passes only): L = (pi / 2) * mean over directions of the integral over offsets of the
    crossing count."""
    u0, u1, v0, v1 = box
    c, R = np.array([(u0 + u1) / 2, (v0 + v1) / 2]), np.hypot(u1 - u0, v1 - v0) / 2
    net64 = net.to_dtype_device(torch.float64)
    dp = 2 * R / offsets
    total = 0.0
    for th in (np.arange(directions) + 0.5) * np.pi / directions:
        n, e = np.array([np.cos(th), np.sin(th)]), np.array([-np.sin(th), np.cos(th)])
        P = c + ((np.arange(offsets) + 0.5) * dp - R)[:, None, None] * n + np.linspace(-R, R, samples)[None, :, None] * e
        inside = (P[..., 0] >= u0) & (P[..., 0] <= u1) & (P[..., 1] >= v0) & (P[..., 1] <= v1)
        with torch.no_grad():
            pat = net64.trace(torch.as_tensor(P.reshape(-1, 2))).patterns[layer].numpy().reshape(offsets, samples, -1)
        flips = (pat[:, 1:] != pat[:, :-1]) & (inside[:, 1:] & inside[:, :-1])[..., None]
        total += flips.sum() * dp
    return np.pi / 2 * total / directions


def test_edge_density_equals_an_independent_count_of_zero_crossings_along_lines():
    torch.manual_seed(0)
    net = Network(mlp_spec([2, 8, 8, 8, 2]))
    t = tessellate(net, Slice.input_plane(2), np.array([-2.0, 2.0, -2.0, 2.0]))
    for layer in range(3):
        ed = edge_density(t, layer, grid=4)
        assert ed.density.shape == (4, 4) and ed.cell_area == pytest.approx(1.0)
        assert ed.total_length == pytest.approx(_crofton_length(net, layer, (-2, 2, -2, 2)), rel=0.02)
        quadrant = ed.density[2:, 2:].sum() * ed.cell_area  # u in [0, 2], v in [0, 2]: the cells get the right pieces
        assert quadrant == pytest.approx(_crofton_length(net, layer, (0, 2, 0, 2)), rel=0.03)


def test_one_known_line_gives_its_length_in_the_cells_it_crosses():
    net = Network(mlp_spec([2, 1, 2]))  # one neuron: its zero set is the line u = 0.3
    with torch.no_grad():
        net.layers[0].weight.copy_(torch.tensor([[1.0, 0.0]]))
        net.layers[0].bias.copy_(torch.tensor([-0.3]))
    t = tessellate(net, Slice.input_plane(2), np.array([-1.0, 1.0, -1.0, 1.0]))
    ed = edge_density(t, 0, grid=10)  # cells 0.2 wide: u = 0.3 lies in column 6 (0.2..0.4)
    assert ed.total_length == pytest.approx(2.0)
    expect = np.zeros((10, 10))
    expect[6, :] = 0.2 / 0.04  # a 0.2 piece in every 0.2 x 0.2 cell of the column
    np.testing.assert_allclose(ed.density, expect, atol=1e-12)


def test_the_density_command_writes_the_map_and_refuses_a_bad_layer(tmp_path, capsys, spirals_run_path):
    out = tmp_path / "d.npz"
    assert main(["density", str(spirals_run_path), "--layer", "2", "--grid", "16", "--window", "-0.3", "0.3", "-0.3", "0.3", "--out", str(out)]) == 0
    z = np.load(out)
    assert z["density"].shape == (16, 16) and int(z["layer"]) == 1 and float(z["total_length"]) > 0
    assert main(["density", str(spirals_run_path), "--layer", "9", "--out", str(out)]) == 2
    assert "give a layer between 1 and 3" in capsys.readouterr().err


def test_the_density_colour_mode_draws_the_grid_with_the_maps_values_and_scale():
    from app.render import palette
    from app.render.tiles import DENSITY_GRID, tile_colours

    from geometry.tessellation import tessellate_all_depths

    torch.manual_seed(0)
    net = Network(mlp_spec([2, 8, 8, 2]))
    by_depth = tessellate_all_depths(net, Slice.input_plane(2), np.array([-2.0, 2.0, -1.0, 1.0]))  # not square: u and v cells differ
    colours = tile_colours(by_depth, 2, "density", 2, alpha=0.5)
    ed = edge_density(by_depth[1], 1, DENSITY_GRID)
    n = DENSITY_GRID**2
    assert len(colours.offsets) - 1 == n and colours.levels == (0.0, pytest.approx(ed.density.max()))
    assert "layer 2" in colours.colorbar_label and "per unit area" in colours.colorbar_label
    squares = colours.vertices.reshape(n, 4, 2)
    area = (squares[:, 2, 0] - squares[:, 0, 0]) * (squares[:, 2, 1] - squares[:, 0, 1])
    assert area.sum() == pytest.approx(8.0)  # the squares tile the window
    k = int(np.argmax(ed.density))  # the densest cell is drawn in the top colour of the scale
    i, j = divmod(k, DENSITY_GRID)
    square = next(q for q in range(n) if np.allclose(squares[q, 0], [ed.u_edges[i], ed.v_edges[j]]))
    np.testing.assert_allclose(colours.rgba[square, :3], palette.colormap(palette.SLOPE_CMAP, np.array([1.0]))[0, :3])


def test_the_batch_norm_experiment_concentrates_hyperplanes_on_the_data_as_the_survey_finds(tmp_path, capsys):
    from experiments.hyperplane_density import batchnorm_density_experiment, initialised_network, star_curve_data

    X = star_curve_data(500, 1)
    net = initialised_network("batch norm", 8, 3, 0, X)
    bn = [m for m in net.layers.modules() if isinstance(m, torch.nn.BatchNorm1d)][0]
    with torch.no_grad():
        pre = net.layers[0](torch.as_tensor(X, dtype=torch.float32))  # the first BN's input on the data
    np.testing.assert_allclose(bn.running_mean.numpy(), pre.mean(0).numpy(), atol=1e-5)  # the data's statistics, not torch's 0/1
    np.testing.assert_allclose(bn.running_var.numpy(), pre.var(0).numpy(), rtol=1e-4)

    res = batchnorm_density_experiment(width=8, depth=8, seed=0, grid=32, layers=(3, 7, 8))
    assert res.layers == (3, 7, 8) and set(res.concentration) == {"zero bias", "random bias", "batch norm"}
    for k in range(3):
        with_bn, random_bias = res.concentration["batch norm"][k], res.concentration["random bias"][k]
        assert with_bn > 1.3 * res.data_cells  # well above a uniform spread over the grid
        assert not np.isfinite(random_bias) or with_bn > random_bias
    assert res.regions["batch norm"] > 10 * res.regions["random bias"]
    assert main(["density-experiment", "--width", "8", "--depth", "8", "--layers", "3,7,8", "--grid", "32", "--out", str(tmp_path / "fig8.npz")]) == 0
    z = np.load(tmp_path / "fig8.npz")
    assert z["batch_norm_layer7"].shape == (32, 32) and "batch norm" in capsys.readouterr().out


def test_neurons_crossing_a_disc_agree_with_sign_changes_sampled_in_the_disc():
    from geometry.tessellation.density import neurons_crossing_discs

    torch.manual_seed(0)
    net = Network(mlp_spec([2, 8, 8, 2]))
    t = tessellate(net, Slice.input_plane(2), np.array([-2.0, 2.0, -2.0, 2.0]))
    rr, th = np.meshgrid(np.linspace(0, 0.3, 40), np.linspace(0, 2 * np.pi, 240, endpoint=False))
    offsets = np.c_[(rr * np.cos(th)).ravel(), (rr * np.sin(th)).ravel()]
    net64 = net.to_dtype_device(torch.float64)
    for layer in range(2):
        cc = neurons_crossing_discs(net, t, layer, 0.3, grid=12)
        centres = np.stack(np.meshgrid(cc.u_centres, cc.v_centres, indexing="ij"), -1).reshape(-1, 2)
        P = centres[:, None] + offsets[None]
        inside = (np.abs(P) <= 2).all(-1)  # only the part of each disc inside the domain counts
        with torch.no_grad():
            pat = net64.trace(torch.as_tensor(P.reshape(-1, 2))).patterns[layer].numpy().reshape(len(centres), len(offsets), -1)
        pat = np.where(inside[..., None], pat, pat[:, :1])
        sampled = (pat.any(1) & ~pat.all(1)).sum(1).reshape(12, 12)
        assert (sampled <= cc.counts).all()  # a sign change seen in the disc is a crossing the exact count has
        assert (sampled == cc.counts).mean() > 0.97  # sampling misses only zero sets that graze a disc
        assert cc.counts.max() > 1
    with pytest.raises(Exception, match="positive number"):
        neurons_crossing_discs(net, t, 0, -1.0)
