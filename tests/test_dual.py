"""Sattelberg et al. dual space: `splineatlas dual` (npz, PNG, animation, --compare) and map_between
against an independent Jacobian + least-squares computation on two nets trained on moons."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from app.cli.main import main
from app.export.video import read_video
from geometry.networks.datasets import builtin_dataset
from geometry.networks.network import Network
from geometry.regions import patterns_of
from geometry.regions.dual import dual_points, grid_dual, map_between
from geometry.networks.runs import open_run
from geometry.networks.spec import mlp_spec
from geometry.networks.training import train_run


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("dual_runs")
    ds = builtin_dataset("moons", n=200, seed=0)
    a = train_run(ds, mlp_spec([2, 8, 8, 2]), out / "a", epochs=3, save_epochs=[0, 1, 2, 3], lr=1e-2, seed=0)
    b = train_run(ds, mlp_spec([2, 8, 8, 2]), out / "b", epochs=3, save_epochs=[3], lr=1e-2, seed=1)
    return a, b


def _slices(npz, key="duals", offsets="offsets"):
    off = npz[offsets]
    return [npz[key][off[k] : off[k + 1]] for k in range(len(off) - 1)]


def test_dual_command_gif_npz_png(runs, tmp_path):
    run_path, _ = runs
    out = tmp_path / "d"
    assert main(["dual", str(run_path), "--out", str(out), "--format", "gif", "--size", "320", "240", "--resolution", "31", "--fps", "5"]) == 0
    run = open_run(run_path)
    frames = read_video(out / "dual.gif")
    assert len(frames) == len(run.epochs) == 4  # one frame per epoch
    assert all(f.shape == (240, 320, 3) for f in frames)  # the requested size
    assert not np.array_equal(frames[0], frames[-1])  # the points move (and the title changes)
    from PIL import Image

    assert Image.open(out / "dual_last.png").size == (320, 240)
    z = np.load(out / "dual.npz")
    assert z["epochs"].tolist() == run.epochs
    lo, hi = z["box_lo"], z["box_hi"]
    g = np.stack(np.meshgrid(np.linspace(lo[0], hi[0], 31), np.linspace(lo[1], hi[1], 31)), -1).reshape(-1, 2)
    for k, (duals, pts) in enumerate(zip(_slices(z), _slices(z, "points"))):
        net = run.network(k)
        np.testing.assert_allclose(duals, dual_points(net, pts), rtol=0, atol=1e-12)  # the npz points are dual_points
        P = patterns_of(net, g)  # independent count of grid regions
        assert len(duals) == len(np.unique(np.packbits(P, axis=1), axis=0)) == z["n_regions"][k]
        assert z["counts"][z["offsets"][k] : z["offsets"][k + 1]].sum() == 31 * 31
    # training-data regions: each is the dual point of some training point
    data = _slices(z, "data_duals", "data_offsets")[-1]
    every = dual_points(run.network(3), run.dataset.X_train).reshape(len(run.dataset.X_train), -1)
    assert {r.tobytes() for r in data.reshape(len(data), -1)} <= {r.tobytes() for r in every}


def test_dual_frames_have_fixed_limits():
    from app.cli.region_cmds import _dual_frames

    nets = [Network(mlp_spec([2, 6, 3])) for _ in range(3)]
    for s, n in enumerate(nets):
        torch.manual_seed(s)
        for p in n.parameters():
            nn.init.normal_(p, std=0.5 + s)  # the dual cloud grows over "epochs"
    grids = [grid_dual(n, (-1, 1), resolution=21) for n in nets]
    fig, frame = _dual_frames(grids, None, [0, 1, 2], ["a", "b", "c"], 400, 300, "t")
    lims = []
    for i in range(3):
        assert frame(i).shape == (300, 400, 3)
        lims.append([(ax.get_xlim(), ax.get_ylim()) for ax in fig.axes[:3]])
        for j, ax in enumerate(fig.axes[:3]):  # every frame's points are inside
            (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
            d = grids[i].duals[:, j]
            assert (d[:, 0] >= x0).all() and (d[:, 0] <= x1).all() and (d[:, 1] >= y0).all() and (d[:, 1] <= y1).all()
    assert lims[0] == lims[1] == lims[2]
    assert "epoch 2" in " ".join(t.get_text() for t in fig.texts)


def test_dual_command_mp4_epoch_subset_and_errors(runs, tmp_path, capsys):
    run_path, _ = runs
    out = tmp_path / "m"
    assert main(["dual", str(run_path), "--out", str(out), "--epochs", "1,3", "--size", "322", "242", "--resolution", "21"]) == 0
    frames = read_video(out / "dual.mp4")
    assert len(frames) == 2 and frames[0].shape == (242, 322, 3)
    assert np.load(out / "dual.npz")["epochs"].tolist() == [1, 3]
    capsys.readouterr()
    assert main(["dual", str(run_path), "--out", str(out), "--epochs", "1,7"]) != 0
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "epoch 7" in err and len(err.splitlines()) == 1
    assert main(["dual", str(run_path), "--out", str(out), "--size", "321", "240"]) != 0  # odd size for H.264
    assert "even" in capsys.readouterr().err


def test_dual_compare_command(runs, tmp_path, capsys):
    a, b = runs
    out = tmp_path / "c"
    assert main(["dual", str(a), "--out", str(out), "--epochs", "3", "--resolution", "21", "--format", "gif", "--size", "320", "240", "--compare", str(b)]) == 0
    js = json.loads((out / "compare.json").read_text())
    ra, rb = open_run(a), open_run(b)
    ds = ra.dataset
    m = map_between(ra.network(len(ra) - 1), rb.network(len(rb) - 1), ds.X_train, ds.X_test, ds.y_test)
    assert js["net1_to_net2"]["acc_mapped"] == pytest.approx(m.acc_mapped)
    assert js["net1_to_net2"]["acc_source"] == pytest.approx(m.acc_net1)
    assert np.allclose(js["net1_to_net2"]["M"], m.M)
    assert "net1 mapped to net2" in capsys.readouterr().out


def _train(seed: int, X, y, steps: int = 300) -> Network:
    torch.manual_seed(seed)
    net = Network(mlp_spec([2, 16, 16, 2]))
    g = torch.Generator().manual_seed(seed)
    Xt, yt = torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(y, dtype=torch.int64)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    net.train()
    for _ in range(steps):
        idx = torch.randint(0, len(Xt), (64,), generator=g)
        opt.zero_grad()
        nn.functional.cross_entropy(net(Xt[idx]), yt[idx]).backward()
        opt.step()
    return net.eval()


def _independent_rows(net: Network, X: np.ndarray) -> np.ndarray:
    """[w_j, b_j] at every x by autograd (no region machinery): J = df/dx, b = f(x) - J x."""
    n64 = net.to_dtype_device(torch.float64)
    Xt = torch.as_tensor(X, dtype=torch.float64)
    J = torch.func.vmap(torch.func.jacrev(lambda v: n64(v[None])[0]))(Xt).detach().numpy()
    with torch.no_grad():
        f = n64(Xt).numpy()
    b = f - np.einsum("ncd,nd->nc", J, X)
    return np.concatenate([J, b[:, :, None]], axis=2)


def test_map_between_two_trained_nets_matches_independent_accuracy():
    ds = builtin_dataset("moons", n=400, seed=0)
    Xtr, ytr = np.asarray(ds.X_train, np.float64), np.asarray(ds.y_train)
    Xte, yte = np.asarray(ds.X_test, np.float64), np.asarray(ds.y_test)
    n1, n2 = _train(0, Xtr, ytr), _train(1, Xtr, ytr)
    m = map_between(n1, n2, Xtr, Xte, yte)
    # independent: Jacobians by autograd, one least-squares fit per output, argmax of the mapped maps
    C1, C2 = _independent_rows(n1, Xtr), _independent_rows(n2, Xtr)
    M = np.stack([np.linalg.lstsq(C1[:, j], C2[:, j], rcond=None)[0] for j in range(2)])
    E1 = _independent_rows(n1, Xte)
    Xh = np.hstack([Xte, np.ones((len(Xte), 1))])
    pred = np.argmax(np.einsum("ncd,cde,ne->nc", E1, M, Xh), axis=1)
    acc_mapped = float(np.mean(pred == yte))
    with torch.no_grad():
        acc1 = float(np.mean(n1(torch.as_tensor(Xte, dtype=torch.float32)).argmax(1).numpy() == yte))
        acc2 = float(np.mean(n2(torch.as_tensor(Xte, dtype=torch.float32)).argmax(1).numpy() == yte))
    np.testing.assert_allclose(m.M, M, atol=1e-6 * max(1.0, np.abs(M).max()))
    assert abs(m.acc_mapped - acc_mapped) <= 1.0 / len(yte)  # at most one borderline point differs
    assert m.acc_net1 == pytest.approx(acc1) and m.acc_net2 == pytest.approx(acc2)
    assert acc1 > 0.9 and acc2 > 0.9
    assert m.acc_mapped > 0.8  # chance is 0.5
    assert m.residual < 1.0


def test_single_logit_nets_predict_by_sign():
    torch.manual_seed(0)
    net = Network(mlp_spec([2, 6, 1]))
    X = np.random.default_rng(0).uniform(-1, 1, (50, 2))
    with torch.no_grad():
        y = (net(torch.as_tensor(X, dtype=torch.float32))[:, 0] > 0).long().numpy()
    m = map_between(net, net, X, X, y)
    assert m.acc_net1 == m.acc_mapped == 1.0
    gd = grid_dual(net, (-1, 1), resolution=21)
    with torch.no_grad():
        lab = (net(torch.as_tensor(gd.points, dtype=torch.float32))[:, 0] > 0).long().numpy()
    np.testing.assert_array_equal(gd.labels, lab)
