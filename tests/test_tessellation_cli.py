"""``splineatlas tessellate``: JSON schema, summary, slices, errors."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from app.cli.main import main
from geometry.checkpoints import save_checkpoint
from geometry.datasets import builtin_dataset
from geometry.network import Network
from geometry.slices import Slice
from geometry.spec import mlp_spec
from geometry.tessellation import tessellate


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def mlp_ckpt(tmp_path_factory):
    torch.manual_seed(0)
    net = Network(mlp_spec([2, 8, 8, 3]))
    path = tmp_path_factory.mktemp("ck") / "epoch_0003.pt"
    save_checkpoint(path, net, epoch=3)
    return path, net


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    from geometry.training import train_run

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
    for reg in js["regions"][:50]:
        v = np.array(reg["vertices"])
        assert v.shape[1] == 2 and v.shape[0] >= 3
        assert 0.5 * np.sum(v[:, 0] * np.roll(v[:, 1], -1) - np.roll(v[:, 0], -1) * v[:, 1]) > 0   # CCW
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
    v = np.array(reg["vertices"])
    assert v.shape[1] == 3 and len(reg["faces"]) >= 4
    assert all(0 <= i < len(v) for f in reg["faces"] for i in f)
