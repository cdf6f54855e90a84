"""Every GUI action and its CLI twin give the same answer for the same inputs.

For each bundled run the window's default slice, its tessellation, the colours of its tiles and its
inspector report equal what ``splineatlas tessellate``, ``export-figure``'s renderer and ``splineatlas
inspect`` give; a path traced in the window equals ``splineatlas path`` between the same points. The
window is driven like a user drives it (it opens the run, tiles arrive from its workers); the CLI runs
through ``app.cli.main.main`` and writes files that the test reads back.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import DEMO_RUNS

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("one_torch_thread")]
TIMEOUT = 120_000
RUNS = ["spirals", "digits"]


def _settled(win) -> bool:
    """Nothing running or pending, and the exact tiles on screen are those of the view's epoch and window."""
    tiles, st = win.results.tiles, win.state
    return not win.work.busy() and not win.controller.tess_timer.isActive() and tiles is not None and tiles.shows(st.epoch_index, st.window)


def _open(qtbot, make_window, name):
    win = make_window(DEMO_RUNS / name)
    qtbot.waitUntil(lambda: _settled(win), timeout=TIMEOUT)
    return win


@pytest.mark.parametrize("name", RUNS)
def test_default_slice_and_tessellation_equal_the_cli(qtbot, make_window, name, tmp_path):
    from app.cli.main import main

    win = _open(qtbot, make_window, name)
    st = win.state
    home = np.asarray(st.home_window)
    out = tmp_path / "t.json"
    assert main(["tessellate", str(DEMO_RUNS / name), "--json", str(out)]) == 0
    cli = json.loads(out.read_text())
    # the CLI tessellated the window's home window of the same slice: same regions at every depth
    assert cli["slice_choice"] == ("input" if win.bundle.input_dim == 2 else "points:" + ",".join(map(str, st.slice_choice.indices)))
    d = np.asarray(cli["domain"])  # the domain polygon: the window's home box
    np.testing.assert_allclose([d[:, 0].min(), d[:, 0].max(), d[:, 1].min(), d[:, 1].max()], home, rtol=0, atol=1e-12)
    # the view shows a little more than the home window on one side (its 1:1 aspect): the CLI, asked for
    # the window the view tessellated, gives its regions at every depth
    assert main(["tessellate", str(DEMO_RUNS / name), "--domain", *map(repr, st.window), "--json", str(out)]) == 0
    assert json.loads(out.read_text())["region_counts"] == [t.num_regions for t in win.tess]


@pytest.mark.parametrize("mode", ["class", "slope", "hash", "layer"])
def test_window_tiles_are_coloured_like_the_exported_figure(qtbot, make_window, spirals_run_path, mode, monkeypatch):
    """The 2D tab draws exactly the polygons and colours of ``export-figure``'s colouring (up to the alpha of
    the light/dark theme)."""
    from app.qt import slice_tab
    from app.render import palette
    from app.render.slice_figure import build_slice_scene, tile_colours

    drawn = []
    real = slice_tab.prepare_tiles
    monkeypatch.setattr(slice_tab, "prepare_tiles", lambda v, o, rgba, groups: drawn.append((v, o, rgba)) or real(v, o, rgba, groups))
    win = _open(qtbot, make_window, "spirals")
    st = win.state
    st.set_depth(2)
    drawn.clear()
    st.set_color_mode(mode)
    if mode == "class":  # already the mode: redraw explicitly
        win.slice_tab.redraw()
    qtbot.waitUntil(lambda: bool(drawn) and _settled(win), timeout=TIMEOUT)
    # a draw of the full depth still in a worker when the depth changed may report after the clear above:
    # once everything has settled, draw once more and take that one
    drawn.clear()
    win.slice_tab.redraw()
    qtbot.waitUntil(lambda: bool(drawn) and _settled(win), timeout=TIMEOUT)
    v, o, rgba = drawn[-1]
    scene = build_slice_scene(win.bundle, st.epoch_index, st.slice, st.window, 2, cache=win.cache, max_regions=st.settings.max_regions)
    ev, eo, ergba = tile_colours(scene, mode).polygons()
    np.testing.assert_array_equal(o, eo)
    np.testing.assert_allclose(v, ev, rtol=0, atol=0)
    np.testing.assert_array_equal(rgba[:, :3], palette.to_bytes(ergba)[:, :3])


@pytest.mark.parametrize("name", RUNS)
def test_inspector_report_equals_splineatlas_inspect(qtbot, make_window, name, tmp_path):
    from app.cli.main import main

    win = _open(qtbot, make_window, name)
    st = win.state
    w = st.window
    u = (0.61 * w[0] + 0.39 * w[1], 0.43 * w[2] + 0.57 * w[3])
    st.set_inspected(u)
    qtbot.waitUntil(lambda: win.results.point_report is not None and win.results.region_info is not None and not win.work.busy(), timeout=TIMEOUT)
    shown = {k: lab.text() for k, lab in win.inspector.fields.items()}
    out = tmp_path / "i.json"
    assert main(["inspect", str(DEMO_RUNS / name), f"--point={u[0]!r},{u[1]!r}", "--window", *map(repr, w), "--json", str(out)]) == 0
    cli = json.loads(out.read_text())
    assert cli["rows"] == {k: v for k, v in shown.items() if k in cli["rows"]}
    assert set(cli["rows"]) == set(shown)  # every row the window shows, the CLI prints


def test_inspector_pattern_hash_is_the_hash_colour_of_its_tile(qtbot, make_window, spirals_run_path):
    """One pattern hash: the inspector's 8 hex digits name the colour index its tile has in 'hash' mode."""
    from app.render.tiles import pattern_hashes

    win = _open(qtbot, make_window, "spirals")
    st = win.state
    w = st.window
    u = (0.3 * w[0] + 0.7 * w[1], 0.6 * w[2] + 0.4 * w[3])
    st.set_inspected(u)
    qtbot.waitUntil(lambda: win.results.point_report is not None and not win.work.busy(), timeout=TIMEOUT)
    t = win.tess[st.depth - 1]
    r = int(t.region_of(np.asarray(u)[None])[0])
    assert win.results.point_report.pattern_hash == f"{pattern_hashes(t.codes, t.num_regions)[r]:08x}"


def test_horizontal_path_in_the_window_equals_splineatlas_path(qtbot, make_window, spirals_run_path, tmp_path):
    """The input plane of the 2D net: a path between two training points clicked in the window is the CLI's."""
    from app.cli.main import main

    win = _open(qtbot, make_window, "spirals")
    st = win.state
    X = win.bundle.dataset.X_train
    i, j = 5, 40
    spec = st.add_path("horizontal", tuple(X[i]), tuple(X[j]))
    qtbot.waitUntil(lambda: win.path_results.get(spec.id) is not None and not win.work.busy(), timeout=TIMEOUT)
    got = win.path_results[spec.id]
    out = tmp_path / "p"
    assert main(["path", str(spirals_run_path), "--kind", "horizontal", "--from", str(i), "--to", str(j), "--split", "train", "--out", str(out)]) == 0
    ref = np.load(out / "path.npz")
    summary = json.loads((out / "summary.json").read_text())["paths"][0]
    n = summary["steps"]
    assert len(got.steps) == n + 1
    np.testing.assert_allclose(got.X[-1], ref["points"][0][ref["point_steps"] <= n][-1], rtol=0, atol=1e-9)
    np.testing.assert_allclose(got.distance[-1], summary["final_distance"], rtol=1e-9)


def test_a_many_input_checkpoint_without_a_dataset_opens_on_a_random_slice(qtbot, make_window, tmp_path):
    """The default slice of a >2-input network with no dataset is a random plane (it used to be refused)."""
    import torch

    from app.jobs.slicing import default_slice_choice
    from geometry.networks.network import Network
    from geometry.networks.checkpoints import save_checkpoint
    from geometry.networks.spec import mlp_spec

    torch.manual_seed(0)
    net = Network(mlp_spec([5, 8, 3]))
    path = tmp_path / "five.pt"
    save_checkpoint(path, net, epoch=1)
    win = make_window(path)
    qtbot.waitUntil(lambda: win.tess is not None and not win.work.busy(), timeout=TIMEOUT)
    assert win.state.slice_choice.kind == "random" == default_slice_choice(win.bundle).kind
    assert win.state.slice.ambient_dim == 5 and win.tess[-1].num_regions >= 1
