"""CLI twins: splineatlas centroids | deepfool | curvature | detect on the bundled demo runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from app.cli.main import main


ROOT = Path(__file__).resolve().parents[1]
SPIRALS = ROOT / "assets" / "runs" / "spirals"
DIGITS = ROOT / "assets" / "runs" / "digits"
pytestmark = [pytest.mark.usefixtures("one_torch_thread"), pytest.mark.skipif(not (SPIRALS.exists() and DIGITS.exists()), reason="demo runs not bundled")]


def test_centroids_writes_npz_and_one_png_per_centroid(tmp_path, capsys):
    assert main(["centroids", str(DIGITS), "--layer", "1,3", "--points", "4,7", "--out", str(tmp_path)]) == 0
    data = np.load(tmp_path / "centroids.npz")
    assert data["centroids"].shape == (2, 2, 64) and list(data["layers"]) == [1, 3]
    assert data["boundary_distance"].shape == (2, 2) and np.all(data["boundary_distance"] > 0)
    pngs = sorted(p.name for p in tmp_path.glob("*_centroid.png"))
    assert pngs == ["point4_layer1_centroid.png", "point4_layer3_centroid.png", "point7_layer1_centroid.png", "point7_layer3_centroid.png"]
    # 2D data: npz only
    out2 = tmp_path / "sp"
    assert main(["centroids", str(SPIRALS), "--points", "0", "--out", str(out2)]) == 0
    assert (out2 / "centroids.npz").exists() and not list(out2.glob("*.png"))


def test_deepfool_curvature_detect_json(tmp_path, capsys):
    j = tmp_path / "df.json"
    assert main(["deepfool", str(SPIRALS), "--points", "0,1,2", "--json", str(j)]) == 0
    df = json.loads(j.read_text())
    assert all(df["converged"]) and all(a != b for a, b in zip(df["original_labels"], df["labels"]))
    assert main(["deepfool", str(SPIRALS), "--points", "0", "--target", "2", "--json", str(j)]) == 0
    assert json.loads(j.read_text())["labels"] == [2]
    c = tmp_path / "cv.json"
    assert main(["curvature", str(SPIRALS), "--points", "0,1", "--fd-scale", "0.1", "--json", str(c)]) == 0
    cv = json.loads(c.read_text())
    assert cv["mode"] == "secant" and cv["scale"] == 0.1 and len(cv["curvatures"]) == 2
    d = tmp_path / "det.json"
    assert main(["detect", str(SPIRALS), "--points", "0,1,2", "--threshold", "0.5", "--fd-scale", "0.1", "--samples", "4", "--json", str(d)]) == 0
    det = json.loads(d.read_text())
    assert det["threshold"] == 0.5 and det["threshold_source"] == "given" and len(det["rho"]) == 3
    assert det["perturbed"] == [r < 0.5 for r in det["rho"]]


def test_bad_points_give_one_line_errors(tmp_path, capsys):
    assert main(["deepfool", str(SPIRALS), "--points", "0,99999"]) == 2
    assert "out of range" in capsys.readouterr().err
    assert main(["centroids", str(SPIRALS), "--layer", "9", "--points", "0", "--out", str(tmp_path)]) == 2
    assert main(["curvature", str(SPIRALS), "--points", "a,b"]) == 2


def test_distances_per_layer_and_epoch(tmp_path, capsys):
    """Fig. 5 twin: layer 1 against the closed form min_k |w_k.x + b_k| / ||w_k||, deeper layers against
    the engine at that checkpoint; the CSV summarises the npz; a missing epoch is one line."""
    from geometry.power_diagram import boundary_distances
    from geometry.networks.runs import open_run

    out = tmp_path / "d"
    assert main(["distances", str(SPIRALS), "--epochs", "0,3000", "--points", "3,10,77", "--out", str(out)]) == 0
    data = np.load(out / "distances.npz")
    assert data["distances"].shape == (2, 3, 3) and list(data["epochs"]) == [0, 3000]
    assert list(data["layers"]) == [1, 2, 3]
    run = open_run(SPIRALS)
    X = np.asarray(run.dataset.X_train, np.float64)[[3, 10, 77]]
    for e, epoch in enumerate((0, 3000)):
        net = run.network(run.epochs.index(epoch))
        W = net.layers[0].weight.detach().double().numpy()
        b = net.layers[0].bias.detach().double().numpy()
        closed = np.min(np.abs(X @ W.T + b) / np.linalg.norm(W, axis=1), axis=1)
        np.testing.assert_allclose(data["distances"][e, 0], closed, rtol=1e-9)
        np.testing.assert_allclose(data["distances"][e, 2], boundary_distances(net, X, [2])[0], rtol=1e-9)
    rows = (out / "distances.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,layer,points,median") and len(rows) == 1 + 2 * 3
    last = rows[-1].split(",")
    assert last[:3] == ["3000", "3", "3"]
    assert float(last[3]) == pytest.approx(np.median(data["distances"][1, 2]), rel=1e-5)
    from PIL import Image

    assert Image.open(out / "distances.png").size[0] > 1000
    assert main(["distances", str(SPIRALS), "--epochs", "4,1234", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: run 'spirals (2-64-64-64-3)' has no checkpoint at epoch 1234;")


@pytest.mark.parametrize(
    "argv",
    [
        ["centroids", "--points", "0", "--out", "{tmp}/c"],
        ["deepfool", "--points", "0"],
        ["curvature", "--points", "0"],
        ["detect", "--points", "0"],
        ["region", "--point", "0"],
        ["walk", "--from", "0", "--to", "1"],
        ["path", "--kind", "normal", "--from", "0", "--out", "{tmp}/p"],
        ["export-figure", "--out", "{tmp}/f.png"],
        ["tessellate", "--summary"],
    ],
)
def test_every_epoch_option_refuses_an_epoch_the_run_lacks(argv, tmp_path, capsys):
    """--epoch names a checkpoint: 1250 is not one of the spirals run's (1200 and 1272 are), so every
    command says so in one line instead of quietly using epoch 1200."""
    args = [argv[0], str(SPIRALS), "--epoch", "1250"] + [a.replace("{tmp}", str(tmp_path)) for a in argv[1:]]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has no checkpoint at epoch 1250" in err[0] and "nearest: 1200 and 1272" in err[0]
