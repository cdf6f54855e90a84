"""``splineatlas tessellate``: JSON schema, summary, slices, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from app.cli.main import main
from geometry.networks.checkpoints import save_checkpoint
from geometry.networks.datasets import builtin_dataset
from geometry.networks.network import Network
from geometry.slices import Slice
from geometry.networks.spec import mlp_spec
from geometry.tessellation import tessellate


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def mlp_ckpt(tmp_path_factory):
    torch.manual_seed(0)
    net = Network(mlp_spec([2, 8, 8, 3]))
    path = tmp_path_factory.mktemp("ck") / "epoch_0003.pt"
    save_checkpoint(path, net, epoch=3)
    return path, net


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    from geometry.networks.training import train_run

    ds = builtin_dataset("digits")
    out = tmp_path_factory.mktemp("run")
    return train_run(ds, mlp_spec([64, 6, 6, 10]), out, epochs=1, save_epochs=[1], seed=0)


def test_json_schema_and_summary(mlp_ckpt, tmp_path, capsys):
    path, net = mlp_ckpt
    out = tmp_path / "t.json"
    rc = main(["tessellate", str(path), "--json", str(out), "--summary", "--domain", "-1", "1", "-1", "1"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "depth 1:" in text and "depth 2:" in text and "time:" in text
    js = json.loads(out.read_text())
    want = tessellate(net, Slice.input_plane(2), [-1, 1, -1, 1])
    assert js["domain"] == [[-1, -1], [1, -1], [1, 1], [-1, 1]]
    assert js["origin"] == [0, 0] and js["basis"] == [[1, 0], [0, 1]]
    assert len(js["regions"]) == want.num_regions == js["region_counts"][-1]
    assert js["epoch"] == 3
    points = np.array(js["points"])
    for reg in js["regions"][:50]:
        v = points[reg["loop"]]
        assert v.shape[1] == 2 and v.shape[0] >= 3
        assert 0.5 * np.sum(v[:, 0] * np.roll(v[:, 1], -1) - np.roll(v[:, 0], -1) * v[:, 1]) > 0  # CCW
        assert [len(p) for p in reg["pattern"]] == [8, 8] and set(sum(reg["pattern"], [])) <= {0, 1}
        assert isinstance(reg["class"], int) and 0 <= reg["class"] < 3
        assert reg["slope_norm"] > 0
    assert all(np.array(s).shape == (2, 2) for s in js["decision_boundary"])
    assert len(js["decision_boundary"]) == len(want.boundary_segments)


def test_slice_through_dataset_points_and_partial_depth(digits_run, tmp_path, capsys):
    out = tmp_path / "d.json"
    rc = main(["tessellate", str(digits_run), "--through", "0,5,9", "--depth", "1", "--json", str(out)])
    assert rc == 0
    js = json.loads(out.read_text())
    assert np.array(js["basis"]).shape == (64, 2) and len(js["origin"]) == 64
    assert js["depth"] == 1 and all(r["class"] == -1 for r in js["regions"])
    X = builtin_dataset("digits").X_train
    sl = Slice.through_points(X[[0, 5, 9]])
    assert np.allclose(js["origin"], sl.origin) and np.allclose(js["basis"], sl.basis)


def test_origin_and_directions(mlp_ckpt, tmp_path, capsys):
    path, _ = mlp_ckpt
    npz = tmp_path / "s.npz"
    np.savez(npz, origin=np.array([0.1, 0.2]), directions=np.array([[1.0, 1.0], [1.0, -1.0]]))
    assert main(["tessellate", str(path), "--origin-and-directions", str(npz), "--summary"]) == 0
    assert "regions" in capsys.readouterr().out


def test_errors_are_one_line(digits_run, mlp_ckpt, capsys):
    assert main(["tessellate", str(digits_run), "--through", "0,1,99999"]) == 2
    assert "out of range" in capsys.readouterr().err
    path, _ = mlp_ckpt
    assert main(["tessellate", str(path), "--domain", "0", "1"]) == 2
    assert "--domain needs 4 numbers" in capsys.readouterr().err
    assert main(["tessellate", str(path), "--max-regions", "5"]) == 2
    assert "max_regions=5" in capsys.readouterr().err


def test_3d_slice_through_four_points(digits_run, tmp_path):
    out = tmp_path / "d3.json"
    assert main(["tessellate", str(digits_run), "--through", "0,5,9,13", "--depth", "1", "--json", str(out)]) == 0
    js = json.loads(out.read_text())
    assert js["dim"] == 3 and np.array(js["basis"]).shape == (64, 3) and len(js["domain"]) == 6
    reg = js["regions"][0]
    points = np.array(js["points"])
    assert points.shape[1] == 3 and len(reg["faces"]) >= 4 and len(reg["neighbours"]) == len(reg["faces"])
    assert all(0 <= i < len(points) for f in reg["faces"] for i in f)
    # a neighbour across a face has that face too (the same points)
    for face, other in zip(reg["faces"], reg["neighbours"]):
        if other >= 0:
            assert sorted(face) in [sorted(g) for g in js["regions"][other]["faces"]]


@pytest.fixture(scope="module")
def spirals_run(tmp_path_factory):
    """A 2-8-8-3 MLP trained 3 epochs on spirals, checkpoints at epochs 1 and 3 only."""
    from geometry.networks.training import train_run

    ds = builtin_dataset("spirals", n=200, seed=0)
    out = tmp_path_factory.mktemp("sprun")
    return train_run(ds, mlp_spec([2, 8, 8, 3]), out, epochs=3, save_epochs=[1, 3], seed=0, lr=0.05)


def _regions_match(js, t):
    assert len(js["regions"]) == t.num_regions
    for r in range(0, t.num_regions, max(1, t.num_regions // 40)):
        reg = js["regions"][r]
        assert np.allclose(np.array(js["points"])[reg["loop"]], t.polygon(r), atol=1e-12)
        assert reg["pattern"] == [t.pattern(j)[r].astype(int).tolist() for j in range(t.depth)]


def _domain_box(js) -> list[float]:
    """The box the CLI tessellated (its JSON holds the 2D domain as a polygon, the 3D one as a box)."""
    d = np.asarray(js["domain"], dtype=np.float64)
    return d.tolist() if d.ndim == 1 else [d[:, 0].min(), d[:, 0].max(), d[:, 1].min(), d[:, 1].max()]


def test_default_domain_is_the_windows_home_window(spirals_run, tmp_path):
    """With no --domain the CLI tessellates the window's home window of the slice (the data's box plus 8%,
    made square), so ``tessellate`` and the window count the same regions."""
    from geometry.networks.runs import open_run
    from geometry.slices import box_domain

    out = tmp_path / "d.json"
    assert main(["tessellate", str(spirals_run), "--json", str(out)]) == 0
    X = open_run(spirals_run).dataset.X_train
    b = box_domain(Slice.input_plane(2), X, margin=0.08).reshape(2, 2)
    c, half = b.mean(1), (b[:, 1] - b[:, 0]).max() / 2
    np.testing.assert_allclose(_domain_box(json.loads(out.read_text())), [c[0] - half, c[0] + half, c[1] - half, c[1] + half], rtol=0, atol=1e-12)


def test_epoch_picks_that_checkpoint_and_refuses_a_missing_one(spirals_run, tmp_path, capsys):
    from geometry.networks.runs import open_run

    run = open_run(spirals_run)
    assert run.epochs == [1, 3]
    out = tmp_path / "e1.json"
    assert main(["tessellate", str(spirals_run), "--epoch", "1", "--json", str(out)]) == 0
    js = json.loads(out.read_text())
    assert js["epoch"] == 1
    _regions_match(js, tessellate(run.network(0), Slice.input_plane(2), _domain_box(js)))
    assert main(["tessellate", str(spirals_run), "--json", str(out)]) == 0  # default: the last epoch
    assert json.loads(out.read_text())["epoch"] == 3
    capsys.readouterr()
    # an epoch between checkpoints, before the first, after the last: refused, naming what exists
    for missing, near in ((2, "1 and 3"), (0, "1"), (7, "3")):
        assert main(["tessellate", str(spirals_run), "--epoch", str(missing), "--json", str(tmp_path / "x.json")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1, err
        assert f"no checkpoint at epoch {missing}" in err and "available epochs (2): 1, 3" in err
        assert f"(nearest: {near})" in err
    assert not (tmp_path / "x.json").exists()
    # 4 points span a 3D slice, which a 2D input space cannot hold (was: silently a 2D slice)
    assert main(["tessellate", str(spirals_run), "--through", "0,1,2,3"]) == 2
    assert "a 3D slice needs at least 3 inputs; this network has 2" in capsys.readouterr().err


def test_plane_input_is_the_input_space(mlp_ckpt, digits_run, tmp_path, capsys):
    path, net = mlp_ckpt
    out = tmp_path / "p.json"
    assert main(["tessellate", str(path), "--plane", "input", "--domain", "-2", "1", "-1", "1.5", "--json", str(out)]) == 0
    js = json.loads(out.read_text())
    assert js["basis"] == [[1, 0], [0, 1]] and js["origin"] == [0, 0]
    assert js["domain"] == [[-2, -1], [1, -1], [1, 1.5], [-2, 1.5]]
    want = tessellate(net, Slice(np.zeros(2), np.eye(2)), [-2, 1, -1, 1.5])
    _regions_match(js, want)
    assert sorted(r["class"] for r in js["regions"]) == sorted(want.classes.tolist())
    capsys.readouterr()
    assert main(["tessellate", str(digits_run), "--plane", "input"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "64 inputs" in err


@pytest.mark.parametrize("k", [2, 3])
def test_pca_slice_is_the_datasets_principal_plane(digits_run, tmp_path, k):
    from geometry.networks.runs import open_run

    out = tmp_path / "pca.json"
    assert main(["tessellate", str(digits_run), "--pca", str(k), "--depth", "1", "--no-slope-norm", "--json", str(out)]) == 0
    js = json.loads(out.read_text())
    X = builtin_dataset("digits").X_train
    sl = Slice.pca(X, k=k)
    assert np.allclose(js["origin"], sl.origin) and np.allclose(js["basis"], sl.basis)
    # independent of Slice.pca: the mean, and the top-k eigenvectors of the covariance
    B = np.array(js["basis"])
    assert np.allclose(js["origin"], X.mean(0))
    evals, evecs = np.linalg.eigh(np.cov(X.T))
    top = evecs[:, ::-1][:, :k]
    assert np.allclose(np.abs(top.T @ B), np.eye(k), atol=1e-6)
    run = open_run(digits_run)
    want = tessellate(run.network(len(run) - 1), sl, _domain_box(js), depth=1, slope_norm=False)
    assert len(js["regions"]) == want.num_regions and js["dim"] == k


def test_deepfool_cross_section_slice(digits_run, tmp_path, capsys):
    from geometry.boundary.cross_sections import cross_sections
    from geometry.boundary.deepfool import deepfool
    from geometry.networks.runs import open_run

    run = open_run(digits_run)
    net = run.network(len(run) - 1)
    X = builtin_dataset("digits").X_train
    out = tmp_path / "cs.json"
    assert main(["tessellate", str(digits_run), "--deepfool", "4", "--seed", "7", "--json", str(out)]) == 0
    js = json.loads(out.read_text())
    cs = cross_sections(net, X[4][None], seed=7)[0]
    assert np.allclose(js["origin"], X[4]) and np.allclose(js["basis"], cs.slice.basis)
    h = cs.domain[1]
    assert np.allclose(js["domain"], [[-h, -h], [h, -h], [h, h], [-h, h]])
    # independent of cross_sections: the first axis is DeepFool's r(x); x + r lies at (||r||, 0) and is
    # classified differently from x
    df = deepfool(net, X[4][None])
    r = df.perturbation[0]
    B = np.array(js["basis"])
    assert np.allclose(B[:, 0], r / np.linalg.norm(r)) and np.allclose(B.T @ B, np.eye(2))
    info = js["cross_section"]
    assert info["point"] == 4 and info["seed"] == 7 and info["kind"] == "random"
    assert info["perturbation_norm"] == pytest.approx(np.linalg.norm(r))
    assert info["original_label"] != info["adversarial_label"] == int(df.labels[0])
    want = tessellate(net, cs.slice, cs.domain)
    _regions_match(js, want)
    # the JSON's decision boundary crosses the u-axis between x (u = 0) and x + r (u = ||r||)
    seg = np.array(js["decision_boundary"])
    (u0, v0), (u1, v1) = seg[:, 0].T, seg[:, 1].T
    cross = v0 * v1 < 0
    u_at = u0[cross] + (u1[cross] - u0[cross]) * v0[cross] / (v0[cross] - v1[cross])
    hit = u_at[(u_at > 0) & (u_at < np.linalg.norm(r))]
    assert hit.size >= 1
    with torch.no_grad():
        ends = net.to_dtype_device(torch.float64)(torch.tensor(np.stack([X[4], X[4] + r]))).argmax(1).tolist()
    assert ends == [info["original_label"], info["adversarial_label"]]
    # --second J: the plane holds x_J too
    assert main(["tessellate", str(digits_run), "--deepfool", "4", "--second", "9", "--depth", "1", "--json", str(out)]) == 0
    js = json.loads(out.read_text())
    B = np.array(js["basis"])
    d = X[9] - X[4]
    assert np.linalg.norm(d - B @ (B.T @ d)) < 1e-9 and js["cross_section"]["second"] == 9
    assert np.allclose(js["anchors"], [[0, 0], [np.linalg.norm(r), 0], B.T @ d])  # x, x + r, x_J
    assert js["domain"][1][0] >= np.abs(B.T @ d).max()  # the box shows x_J
    capsys.readouterr()
    for bad, msg in (
        (["--deepfool", "4", "--second", "4"], "other than"),
        (["--deepfool", "4", "--second", "9", "--seed", "1"], "not both"),
        (["--seed", "1"], "only apply to a --deepfool"),
        (["--deepfool", "99999"], "out of range"),
    ):
        assert main(["tessellate", str(digits_run), *bad]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and msg in err, err
