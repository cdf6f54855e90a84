"""``splineatlas path`` / ``trace-g`` on the bundled digits run: files written, summaries consistent."""

from __future__ import annotations

import json

import numpy as np
import pytest

from app.cli.main import main


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_path_horizontal_and_normal(digits_run_path, tmp_path):
    if not digits_run_path.exists():
        pytest.skip("bundled digits run not present")
    out = tmp_path / "h"
    rc = main(["path", str(digits_run_path), "--kind", "horizontal", "--from", "0,2", "--to", "5", "--steps", "40", "--out", str(out)])
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    data = np.load(out / "path.npz")
    assert (out / "strip.png").stat().st_size > 0
    assert len(summary["paths"]) == 2 and summary["to"] == [5, 5]
    for k, p in enumerate(summary["paths"]):
        n = p["steps"]
        assert n == int(data["num_steps"][k]) and 0 < n <= 40
        assert p["final_distance"] == pytest.approx(float(data["distance"][k, n]))
        assert p["status"] in ("reached", "stagnated", "budget")
        assert p["class_sequence"][0]["class"] == int(data["predicted"][k, 0])
    assert data["probs"].shape[-1] == 10 and data["pattern_changes"].ndim == 3
    out = tmp_path / "n"
    assert main(["path", str(digits_run_path), "--kind", "normal", "--from", "3", "--steps", "20", "--out", str(out)]) == 0
    s = json.loads((out / "summary.json").read_text())["paths"][0]
    assert s["steps"] == 20 and abs(s["min_step_angle_deg"] - 90) < 1e-3
    assert summary["settings"]["dtype"] == "float32" and summary["settings"]["diagnostics"] == "full"  # the window's precision
    lean = tmp_path / "lean"
    args = ["path", str(digits_run_path), "--kind", "horizontal", "--from", "0,2", "--to", "5", "--steps", "40", "--diagnostics", "lean", "--out", str(lean)]
    assert main(args) == 0
    ls = json.loads((lean / "summary.json").read_text())
    assert ls["settings"]["diagnostics"] == "lean" and np.load(lean / "path.npz")["pattern_changes"].shape[-1] == 0
    for p, q in zip(ls["paths"], summary["paths"]):  # the same paths, without the per-step extras
        assert p["steps"] == q["steps"] and p["final_distance"] == q["final_distance"] and p["region_changes"] is None


def test_path_region_and_errors(digits_run_path, tmp_path, capsys):
    if not digits_run_path.exists():
        pytest.skip("bundled digits run not present")
    from geometry.networks.runs import open_run
    import torch

    run = open_run(digits_run_path)
    with torch.no_grad():
        pred = run.network(len(run) - 1)(torch.as_tensor(run.dataset.X_test[:60])).argmax(1).numpy()
    same = [int(j) for j in np.flatnonzero(pred == pred[0])[1:2]]
    other = int(np.flatnonzero(pred != pred[0])[0])
    out = tmp_path / "r"
    assert main(["path", str(digits_run_path), "--kind", "region", "--from", "0", "--to", str(same[0]), "--out", str(out)]) == 0
    s = json.loads((out / "summary.json").read_text())["paths"][0]
    assert s["success"] and s["label"] == int(pred[0])
    assert main(["path", str(digits_run_path), "--kind", "region", "--from", "0", "--to", str(other), "--out", str(out)]) == 2
    assert "classified differently" in capsys.readouterr().err
    assert main(["path", str(digits_run_path), "--kind", "horizontal", "--from", "99999", "--to", "1", "--out", str(out)]) == 2
    assert main(["path", str(digits_run_path), "--kind", "horizontal", "--from", "1", "--out", str(out)]) == 2


def test_convex_and_trace_g(digits_run_path, tmp_path):
    if not digits_run_path.exists():
        pytest.skip("bundled digits run not present")
    out = tmp_path / "c.json"
    assert main(["convex", str(digits_run_path), "--ks", "1,2,8", "--samples", "300", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["ks"] == [1, 2, 8] and res["probability"][0] == 1.0  # k = 1: the point itself
    assert 0.0 < res["probability"][2] <= res["probability"][1] + 0.1
    out = tmp_path / "t.json"
    assert main(["trace-g", str(digits_run_path), "--points", "16", "--json", str(out)]) == 0
    tg = json.loads(out.read_text())
    assert len(tg["epochs"]) == len(tg["mean_trace"]) > 1 and all(r <= 9 for r in tg["mean_rank"])


def test_path_projection_flag(digits_run_path, tmp_path, capsys):
    if not digits_run_path.exists():
        pytest.skip("bundled digits run not present")
    outs = {}
    for proj in ("svd", "gram"):
        out = tmp_path / proj
        assert (
            main(["path", str(digits_run_path), "--kind", "horizontal", "--from", "0", "--to", "5", "--steps", "5", "--projection", proj, "--out", str(out)])
            == 0
        )
        assert json.loads((out / "summary.json").read_text())["settings"]["projection"] == proj
        outs[proj] = np.load(out / "path.npz")["points"]
    np.testing.assert_allclose(outs["svd"], outs["gram"], atol=1e-8)  # same path, either projection
    with pytest.raises(SystemExit):
        main(["path", str(digits_run_path), "--kind", "normal", "--from", "0", "--projection", "qr", "--out", str(tmp_path)])
