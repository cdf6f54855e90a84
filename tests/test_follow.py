"""A region followed through training (#19, part 3): at every checkpoint the tile holding the point is the
forward pass's region there (same pattern), its Hamming distances are the forward passes', and the CLI
twin writes the same track."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def moons_run(tmp_path_factory):
    from geometry.networks.datasets import builtin_dataset
    from geometry.networks.spec import mlp_spec
    from geometry.networks.training import train_run

    out = tmp_path_factory.mktemp("follow") / "moons"
    return train_run(builtin_dataset("moons", n=300), mlp_spec([2, 10, 10, 2]), out, epochs=30, save_epochs=[0, 2, 5, 10, 20, 30], seed=1)


def test_the_followed_tile_is_the_forward_pass_region_at_every_checkpoint(moons_run):
    from app.jobs.bundle import open_run_bundle
    from app.jobs.follow import follow_region
    from app.jobs.slicing import default_slice_choice, make_slice
    from geometry.networks.network import predicted_classes

    b = open_run_bundle(moons_run)
    sl, home = make_slice(b, default_slice_choice(b), -1)
    u = (0.37 * home[0] + 0.63 * home[1], 0.55 * home[2] + 0.45 * home[3])
    track = follow_region(b, sl, home, u, 200_000)
    x = torch.as_tensor(sl.to_input(np.array([u])))
    patterns, classes = [], []
    for i in range(len(b.run)):
        tr = b.network(i).to_dtype_device(torch.float64).trace(x)
        patterns.append(np.concatenate([p[0].numpy().astype(np.int64) for p in tr.patterns]))
        classes.append(int(predicted_classes(tr.logits)[0]))
    assert (track.region >= 0).all()
    for i, poly in enumerate(track.polygons):
        n = len(poly)
        cross = (poly[:, 0] - u[0]) * (np.roll(poly, -1, 0)[:, 1] - u[1]) - (poly[:, 1] - u[1]) * (np.roll(poly, -1, 0)[:, 0] - u[0])
        assert n >= 3 and (cross >= -1e-12).all()  # u is inside the (counter-clockwise) polygon
        shoelace = 0.5 * np.sum(poly[:, 0] * np.roll(poly[:, 1], -1) - np.roll(poly[:, 0], -1) * poly[:, 1])
        assert track.area[i] == pytest.approx(shoelace, rel=1e-12)
    assert list(track.classes) == classes
    for i in range(len(b.run)):  # ||A_w|| of the followed tile (computed for it alone): the Jacobian's norm at u
        J = torch.autograd.functional.jacobian(lambda z: b.network(i).to_dtype_device(torch.float64)(z[None])[0], x[0])
        assert track.slope_norm[i] == pytest.approx(torch.linalg.matrix_norm(J, 2).item(), rel=1e-9)
    want = [np.nan] + [float(np.count_nonzero(patterns[i] != patterns[i - 1])) for i in range(1, len(patterns))]
    np.testing.assert_array_equal(track.hamming, want)
    assert list(track.class_changed) == [False] + [classes[i] != classes[i - 1] for i in range(1, len(classes))]


def test_follow_cli_is_the_track(moons_run, tmp_path, capsys):
    from app.cli.main import main
    from app.export.tables import track_table, write_csv
    from app.jobs.bundle import open_run_bundle
    from app.jobs.follow import follow_region
    from app.jobs.slicing import default_slice_choice, make_slice
    from app.model.state import Settings

    b = open_run_bundle(moons_run)
    sl, home = make_slice(b, default_slice_choice(b), -1)
    u = (0.5 * (home[0] + home[1]), 0.5 * (home[2] + home[3]))
    assert main(["follow", str(moons_run), f"--point={u[0]!r},{u[1]!r}", "--csv", str(tmp_path / "cli.csv")]) == 0
    assert "6 checkpoints" in capsys.readouterr().out
    write_csv(tmp_path / "job.csv", *track_table(follow_region(b, sl, home, u, Settings().max_regions)))
    assert (tmp_path / "cli.csv").read_text() == (tmp_path / "job.csv").read_text()
    rows = list(csv.DictReader(open(tmp_path / "cli.csv")))
    assert [int(r["epoch"]) for r in rows] == [0, 2, 5, 10, 20, 30] and rows[0]["hamming_to_previous"] == ""
    assert main(["follow", str(moons_run), "--point=99,99"]) == 2
    assert "must lie in the 2D window" in capsys.readouterr().err


@pytest.mark.gui
def test_the_training_tabs_follow_is_the_cli_track(qtbot, make_window, moons_run):
    from app.jobs.follow import follow_region

    win = make_window(str(moons_run))
    qtbot.waitUntil(lambda: win.bundle is not None and win.results.tiles is not None and not win.work.busy(), timeout=60_000)
    st = win.state
    w = st.window
    u = (0.4 * w[0] + 0.6 * w[1], 0.5 * (w[2] + w[3]))
    st.set_inspected(u)
    qtbot.waitUntil(lambda: win.results.point_report is not None and not win.work.busy(), timeout=60_000)
    panel = win.training_panel
    panel.follow_btn.click()
    qtbot.waitUntil(lambda: panel.track is not None and not win.work.busy(), timeout=60_000)
    want = follow_region(win.bundle, st.slice, st.window, st.inspected, st.settings.max_regions)
    np.testing.assert_array_equal(panel.track.area, want.area)
    np.testing.assert_array_equal(panel.track.hamming, want.hamming)
    xs, ys = panel.area_curve.getData()
    assert len(xs) == len(want.epochs) and "tile at (" in panel.p_fol.titleLabel.text
    # the 2D view outlines the followed tile as it is at the shown epoch, scrubbing included
    for e in (len(want.epochs) - 1, 1):
        st.set_epoch_index(e)
        qtbot.waitUntil(lambda: win.results.tiles is not None and win.results.tiles.epoch_index == e and not win.work.busy(), timeout=60_000)
        fx, fy = win.view2d.followed.getData()
        assert np.allclose(np.c_[fx, fy][:-1], want.polygons[e])


def test_an_epoch_video_outlines_the_followed_tile_in_every_frame(moons_run, tmp_path, capsys):
    from dataclasses import replace

    from app.cli.main import main
    from app.jobs.bundle import open_run_bundle
    from app.jobs.slicing import default_slice_choice, make_slice
    from app.render.slice_figure import FigureOptions, build_slice_scene, render_slice

    b = open_run_bundle(moons_run)
    sl, home = make_slice(b, default_slice_choice(b), -1)
    u = np.array([0.45 * home[0] + 0.55 * home[1], 0.5 * (home[2] + home[3])])
    for i in (0, len(b.run) - 1):
        scene = replace(build_slice_scene(b, i, sl, home), follow=u)
        fig = render_slice(scene, FigureOptions(width=400, height=300, dpi=60))
        drawn = [a for a in fig.axes[0].patches if a.get_gid() == "followed-tile"]
        t = scene.current
        want = t.polygon(int(t.region_of(u[None])[0]))
        assert len(drawn) == 1 and np.allclose(drawn[0].get_xy()[: len(want)], want)
    out = tmp_path / "f.gif"
    follow = f"--follow={float(u[0])!r},{float(u[1])!r}"
    assert main(["export-video", str(moons_run), "--sweep", "epochs", follow, "--size", "320", "240", "--out", str(out)]) == 0
    assert out.stat().st_size > 0
    assert main(["export-video", str(moons_run), "--sweep", "layers", "--follow=0,0", "--out", str(tmp_path / "g.gif")]) == 2
    assert "--follow goes with --sweep epochs" in capsys.readouterr().err
