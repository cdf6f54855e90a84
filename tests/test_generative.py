"""Generative networks' spline manifolds (#19 part 1): per-tile volume change, exact tile images, and the
MaGNET / polarity samplers, on a generator whose tiles are known and on a random one."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from app.cli.main import main
from geometry.errors import SplineAtlasError
from geometry.generative import generate, manifold_tiles, sample_latent, volume_change
from geometry.networks.network import Network
from geometry.networks.spec import mlp_spec

SQRT5 = np.sqrt(5.0)


def bent_sheet() -> Network:
    """G(z) = (z1, z2, 2 relu(z1)): a sheet bent along z1 = 0; for z1 < 0 it is the plane (A = [I; 0], volume
    1), for z1 > 0 it rises with slope 2 (A = [[1, 0], [0, 1], [2, 0]], volume sqrt(det(AᵀA)) = sqrt(5))."""
    net = Network(mlp_spec([2, 4, 3]))
    with torch.no_grad():
        net.layers[0].weight.copy_(torch.tensor([[1.0, 0], [-1, 0], [0, 1], [0, -1]]))  # relu(±z1), relu(±z2)
        net.layers[0].bias.zero_()
        net.layers[2].weight.copy_(torch.tensor([[1.0, -1, 0, 0], [0, 0, 1, -1], [2, 0, 0, 0]]))
        net.layers[2].bias.zero_()
    return net


def test_volumes_equal_the_determinant_formula_on_known_tiles():
    tiles = manifold_tiles(bent_sheet())
    centre_u = tiles.tess.centroids()[:, 0]
    np.testing.assert_allclose(tiles.volume, np.where(centre_u > 0, SQRT5, 1.0), atol=1e-12)
    A = tiles.A
    np.testing.assert_allclose(tiles.volume, np.sqrt(np.linalg.det(np.transpose(A, (0, 2, 1)) @ A)), atol=1e-12)
    assert tiles.output_area.sum() == pytest.approx(2.0 + 2.0 * SQRT5)  # [-1,0]x[-1,1] flat, [0,1]x[-1,1] stretched
    assert volume_change(np.array([[[3.0, 0], [0, 2], [0, 0]]]))[0] == pytest.approx(6.0)


def test_tile_images_are_the_generator_at_every_vertex_so_shared_edges_map_to_shared_edges():
    torch.manual_seed(0)
    net = Network(mlp_spec([2, 16, 16, 3]))
    tiles = manifold_tiles(net)
    assert tiles.tess.num_regions > 20
    with torch.no_grad():
        want = net.to_dtype_device(torch.float64)(torch.as_tensor(tiles.tess.vertices)).numpy()
    # each tile maps its own polygon; continuity of G makes a vertex shared by several tiles land on one point
    np.testing.assert_allclose(tiles.image_vertices(), want, atol=1e-9)
    Z, which = sample_latent(tiles, 2000, "magnet", seed=1)
    with torch.no_grad():
        np.testing.assert_allclose(generate(tiles, Z, which), net.to_dtype_device(torch.float64)(torch.as_tensor(Z)).numpy(), atol=1e-9)
    assert (tiles.tess.region_of(Z) == which).mean() > 0.999  # every sample lies in the tile it was drawn from


def _chi2_uniform_on_sheet(X: np.ndarray, bins: int = 8) -> float:
    """p-value of uniformity on the bent sheet: its intrinsic coordinates are the arc length s along the
    bend (s = x1 for x1 < 0, sqrt(5) x1 beyond) and x2; equal cells in (s, x2) have equal manifold area."""
    s = np.where(X[:, 0] < 0, X[:, 0], SQRT5 * X[:, 0])
    counts, _, _ = np.histogram2d(s, X[:, 1], bins=bins, range=[[-1.0, SQRT5], [-1.0, 1.0]])
    return float(stats.chisquare(counts.ravel()).pvalue)


def test_magnet_samples_are_uniform_on_the_manifold_and_prior_samples_are_not():
    tiles = manifold_tiles(bent_sheet())
    outs = {s: generate(tiles, *sample_latent(tiles, 20000, s, seed=3)) for s in ("prior", "magnet")}
    assert _chi2_uniform_on_sheet(outs["magnet"]) > 0.01
    assert _chi2_uniform_on_sheet(outs["prior"]) < 1e-10
    # polarity: rho = 1 is MaGNET, rho = 0 the prior, rho < 0 leans to the low-volume (flat) half
    share = {rho: (sample_latent(tiles, 20000, "polarity", rho, seed=4)[0][:, 0] < 0).mean() for rho in (-2.0, 0.0, 1.0)}
    assert share[0.0] == pytest.approx(0.5, abs=0.02)
    assert share[1.0] == pytest.approx(1 / (1 + SQRT5), abs=0.02)
    assert share[-2.0] == pytest.approx(1 / (1 + 1 / 5), abs=0.02)


def test_bad_requests_are_refused_in_one_line(tmp_path):
    tiles = manifold_tiles(bent_sheet())
    with pytest.raises(SplineAtlasError, match="sampler must be one of"):
        sample_latent(tiles, 10, "gauss")
    with pytest.raises(SplineAtlasError, match="2D latent space"):
        manifold_tiles(Network(mlp_spec([3, 4, 3])))


def test_the_generate_command_writes_samples(tmp_path, capsys):
    from geometry.networks.checkpoints import save_checkpoint

    path = tmp_path / "gen.pt"
    save_checkpoint(path, bent_sheet())
    out = tmp_path / "s.npz"
    assert main(["generate", str(path), "--sampler", "polarity", "--n", "500", "--out", str(out), "--figure", str(tmp_path / "g.png")]) == 0
    z = np.load(out)
    assert z["X"].shape == (500, 3) and z["Z"].shape == (500, 2) and z["volume"].shape == (500,)
    assert "polarity" in capsys.readouterr().out
    assert main(["generate", str(path), "--sampler", "nope", "--out", str(out)]) == 2


def test_the_bundled_generator_run_opens_as_a_generator(capsys):
    from pathlib import Path

    from app.render.tiles import tile_colours
    from geometry.networks.runs import open_run
    from geometry.slices import Slice
    from geometry.tessellation import tessellate_all_depths

    path = Path(__file__).resolve().parents[1] / "assets" / "runs" / "sheet"
    run = open_run(path)
    assert run.task == "generate" and run.data_task == "regress" and len(run) == 11
    assert run.dataset.y_train.shape[1] == 3 and run.class_names == ["output 0", "output 1", "output 2"]
    net = run.network(len(run) - 1)
    tiles = manifold_tiles(net)
    assert tiles.tess.num_regions > 100 and 0.3 < tiles.volume.min() < tiles.volume.max() < 5
    # the volume colour mode: log sqrt(det(AᵀA)) of each full-depth tile, on the colour bar's range
    by_depth = tessellate_all_depths(net, Slice.input_plane(2), np.array([-1.0, 1.0, -1.0, 1.0]))
    colours = tile_colours(by_depth, 2, "volume", 3)
    logv = np.log(volume_change(by_depth[-1].out_linear))
    assert colours.levels == (pytest.approx(logv.min()), pytest.approx(logv.max()))
    assert main(["info", str(path), "--no-accuracy"]) == 0
    assert "generator, 2 latent inputs -> R^3" in capsys.readouterr().out
