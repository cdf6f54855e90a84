"""``splineatlas angles``: Theorem-8 dihedral angles of a tessellated slice from the CLI, against the closed
form and the Python function; histogram JSON and PNG."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from app.cli.main import main
from geometry.boundary.boundary_angles import boundary_angles
from geometry.networks.checkpoints import save_checkpoint
from geometry.networks.datasets import builtin_dataset
from geometry.networks.network import Network
from geometry.networks.runs import open_run
from geometry.slices import Slice
from geometry.networks.spec import mlp_spec
from geometry.tessellation import tessellate


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _kinked_ckpt(path, a, b):
    """f1 - f0 = a relu(x) + b relu(-x) - y: the boundary is y = a x (x > 0), y = -b x (x < 0)."""
    net = Network(mlp_spec([2, 3, 2]))
    with torch.no_grad():
        net.layers[0].weight.copy_(torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]]))
        net.layers[0].bias.copy_(torch.tensor([0.0, 0.0, 10.0]))
        net.layers[2].weight.copy_(torch.tensor([[0.0, 0.0, 1.0], [a, b, 0.0]]))
        net.layers[2].bias.copy_(torch.tensor([-10.0, 0.0]))
    save_checkpoint(path, net, epoch=5)
    return path


def test_closed_form_angle_json_and_png(tmp_path, capsys):
    a, b = 2.0, -0.5
    ck = _kinked_ckpt(tmp_path / "epoch_0005.pt", a, b)
    out, png = tmp_path / "ang.json", tmp_path / "hist.png"
    assert main(["angles", str(ck), "--domain", "-2", "2", "-2", "2", "--json", str(out), "--png", str(png)]) == 0
    js = json.loads(out.read_text())
    expected = np.degrees(np.arccos(abs(1 - a * b) / np.sqrt((a * a + 1) * (b * b + 1))))
    assert js["angle_units"] == "degrees" and js["epoch"] == 5
    assert js["angles"] == [pytest.approx(expected, abs=1e-6)]
    assert np.allclose(js["vertices"], [[0.0, 0.0]], atol=1e-7) and js["classes"] == [[0, 1]]
    h = js["histogram"]
    assert len(h["edges"]) == 19 and h["edges"][0] == 0 and h["edges"][-1] == 90 and sum(h["counts"]) == 1
    assert h["counts"][int(expected // 5)] == 1
    import matplotlib.image

    img = matplotlib.image.imread(png)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    assert "1 boundary vertices" in capsys.readouterr().out


def test_cli_equals_the_python_function_on_an_oblique_slice(tmp_path):
    torch.manual_seed(3)
    net = Network(mlp_spec([4, 12, 12, 3]))
    with torch.no_grad():
        net.layers[-1].bias.zero_()
    ck = tmp_path / "epoch_0001.pt"
    save_checkpoint(ck, net, epoch=1)
    rng = np.random.default_rng(2)
    origin, dirs = rng.normal(size=4) * 0.3, rng.normal(size=(2, 4))
    npz = tmp_path / "s.npz"
    np.savez(npz, origin=origin, directions=dirs)
    out = tmp_path / "a.json"
    dom = ["-3", "3", "-3", "3"]
    assert main(["angles", str(ck), "--origin-and-directions", str(npz), "--domain", *dom, "--bins", "9", "--json", str(out)]) == 0
    js = json.loads(out.read_text())
    loaded = open_run(ck).network(0)
    sl = Slice.from_directions(origin, dirs)
    tess = tessellate(loaded, sl, [-3, 3, -3, 3])
    want = boundary_angles(loaded, tess)
    assert len(want.angles) > 3, "the premise: several boundary vertices in the domain"
    assert np.allclose(js["angles"], want.angles, atol=1e-9)
    assert np.allclose(js["slice_angles"], want.slice_angles, atol=1e-9)
    assert np.allclose(js["vertices"], want.vertices) and js["classes"] == want.classes.tolist()
    assert js["segments"] == want.segments.tolist() and np.allclose(np.reshape(js["junctions"], (-1, 2)), want.junctions)
    assert js["num_regions"] == tess.num_regions and js["num_boundary_segments"] == len(tess.boundary_segments)
    counts, edges = np.histogram(want.angles, bins=9, range=(0, 90))
    assert js["histogram"]["counts"] == counts.tolist() and np.allclose(js["histogram"]["edges"], edges)
    # an oblique slice of a 4D net: the Theorem-8 angle is not the in-slice angle
    assert not np.allclose(want.angles, want.slice_angles, atol=1e-3)


def test_angles_on_a_deepfool_cross_section(tmp_path):
    from geometry.boundary.cross_sections import cross_sections
    from geometry.networks.training import train_run

    ds = builtin_dataset("digits")
    run_json = train_run(ds, mlp_spec([64, 6, 6, 10]), tmp_path / "run", epochs=1, save_epochs=[1], seed=0)
    out = tmp_path / "a.json"
    assert main(["angles", str(run_json), "--deepfool", "4", "--second", "9", "--json", str(out)]) == 0
    js = json.loads(out.read_text())
    net = open_run(run_json).network(0)
    cs = cross_sections(net, ds.X_train[4][None], ds.X_train[9][None])[0]
    want = boundary_angles(net, tessellate(net, cs.slice, cs.domain))
    assert np.allclose(js["angles"], want.angles, atol=1e-9) and np.allclose(js["vertices"], want.vertices)
    assert js["cross_section"]["point"] == 4 and np.allclose(js["slice"]["basis"], cs.slice.basis)


def test_refusals_are_one_line(tmp_path, capsys):
    torch.manual_seed(0)
    ck = tmp_path / "epoch_0002.pt"
    save_checkpoint(ck, Network(mlp_spec([3, 6, 3])), epoch=2)
    for argv, msg in ((["--plane", "input"], "2D slices"), (["--bins", "0"], "--bins"), (["--epoch", "4"], "available epochs (1): 2")):
        assert main(["angles", str(ck), *argv, "--json", str(tmp_path / "x.json")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and msg in err, err
    assert not (tmp_path / "x.json").exists()
