"""Bounded memory (#17): a window tessellated as glued sub-windows is the window's own tessellation, tile
for tile, at every depth (patterns, polygons, edge layers, parents, logits maps, classes, argmax cells,
boundary), checked against the unsplit engine and the forward pass; the memory budget splits instead of
stopping, and a budget nothing fits in stops in one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geometry.errors import BudgetExceededError
from geometry.networks.network import Network
from geometry.networks.spec import mlp_spec
from geometry.slices import Slice
from geometry.tessellation import tessellate_all_depths
from geometry.tessellation.glue import glue, grid_pieces
from geometry.tessellation.prepare import domain_polygon

from zoo_models import assert_tiles_match_the_forward_pass


def _cnn() -> Network:
    """A small conv net with a max-pool (argmax patterns) on 1x6x6 inputs."""
    spec = {
        "input_shape": [1, 6, 6],
        "layers": [
            {"type": "conv2d", "in_channels": 1, "out_channels": 3, "kernel_size": 3, "padding": 1},
            {"type": "relu"},
            {"type": "maxpool2d", "kernel_size": 2},
            {"type": "flatten"},
            {"type": "linear", "in_features": 27, "out_features": 8},
            {"type": "relu"},
            {"type": "linear", "in_features": 8, "out_features": 3},
        ],
    }
    torch.manual_seed(1)
    return Network(spec).eval()


def _mlp() -> Network:
    torch.manual_seed(0)
    return Network(mlp_spec([2, 16, 16, 16, 3])).eval()


def _by_key(t, depth):
    """{pattern bytes of layers 1..depth: tile index} of one tessellation."""
    rows = np.hstack([np.ascontiguousarray(c).view(np.uint8).reshape(t.num_regions, -1) for c in t.codes[:depth]])
    keys = [r.tobytes() for r in rows]
    assert len(set(keys)) == len(keys)  # one tile per pattern
    return {k: i for i, k in enumerate(keys)}


def _layer_lengths(t) -> dict:
    """Total length of the tiles' edges per creating layer (each interior edge counted from both sides)."""
    V, off = t.vertices, t.offsets
    nxt = np.arange(len(V)) + 1
    nxt[off[1:] - 1] = off[:-1]
    length = np.linalg.norm(V[nxt] - V, axis=1)
    return {int(j): float(length[t.edge_layer == j].sum()) for j in np.unique(t.edge_layer)}


def _assert_same(direct, glued):
    assert len(direct) == len(glued)
    for l, (a, b) in enumerate(zip(direct, glued)):
        assert a.num_regions == b.num_regions, f"depth {l + 1}"
        ka, kb = _by_key(a, l + 1), _by_key(b, l + 1)
        assert ka.keys() == kb.keys()
        ia = np.array([ka[k] for k in ka])
        ib = np.array([kb[k] for k in ka])
        np.testing.assert_allclose(b.areas()[ib], a.areas()[ia], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(b.centroids()[ib], a.centroids()[ia], atol=1e-9)
        np.testing.assert_array_equal(b.counts[ib], a.counts[ia])  # no seam vertex is left on an edge
        la, lb = _layer_lengths(a), _layer_lengths(b)
        assert la.keys() == lb.keys() and all(lb[j] == pytest.approx(la[j], rel=1e-9) for j in la)
        if l:
            pa, pb = _by_key(direct[l - 1], l), _by_key(glued[l - 1], l)
            inv_a, inv_b = {v: k for k, v in pa.items()}, {v: k for k, v in pb.items()}
            assert all(inv_a[a.parent[i]] == inv_b[b.parent[j]] for i, j in zip(ia, ib))
        np.testing.assert_array_equal(b.classes[ib], a.classes[ia])
        if a.full_depth:
            np.testing.assert_allclose(b.out_linear[ib], a.out_linear[ia], atol=1e-9)
            np.testing.assert_allclose(b.out_offset[ib], a.out_offset[ia], atol=1e-9)
            np.testing.assert_allclose(b.slope_norm[ib], a.slope_norm[ia], rtol=1e-9)
            np.testing.assert_array_equal(b.class_mixed[ib], a.class_mixed[ia])
            seg_len = lambda t: float(np.linalg.norm(t.boundary_segments[:, 1] - t.boundary_segments[:, 0], axis=1).sum())  # noqa: E731
            assert seg_len(b) == pytest.approx(seg_len(a), rel=1e-9)
            cells = lambda t, keys: sorted(  # noqa: E731
                (keys[t.class_cell_region[q]], int(t.class_cell_class[q]), round(float(_area(t, q)), 10)) for q in range(len(t.class_cell_class))
            )
            inv_a, inv_b = {v: k for k, v in ka.items()}, {v: k for k, v in kb.items()}
            assert cells(a, inv_a) == cells(b, inv_b)


def _area(t, q):
    P = t.class_cell_vertices[t.class_cell_offsets[q] : t.class_cell_offsets[q + 1]]
    x, y = P[:, 0], P[:, 1]
    return 0.5 * (x @ np.roll(y, -1) - y @ np.roll(x, -1))


@pytest.mark.parametrize("make, m", [(_mlp, 3), (_mlp, 4), (_cnn, 3)], ids=["mlp-3x3", "mlp-4x4", "cnn-maxpool-3x3"])
def test_glued_sub_windows_are_the_windows_tessellation(make, m):
    net = make()
    rng = np.random.default_rng(0)
    sl = Slice.input_plane(2) if net.input_dim == 2 else Slice.from_directions(rng.normal(size=net.input_dim), rng.normal(size=(2, net.input_dim)))
    box = np.array([-1.3, 1.1, -0.9, 1.4])
    direct = tessellate_all_depths(net, sl, box)
    poly = domain_polygon(sl, box)
    eps = direct[-1].tolerance
    pieces = [tessellate_all_depths(net, sl, p, tol=eps / np.linalg.norm(p.max(0) - p.min(0))) for p in grid_pieces(poly, m)]
    assert sum(p[-1].num_regions for p in pieces) > direct[-1].num_regions  # the seams did cut regions
    glued = glue(pieces, poly, eps, 0.0)
    _assert_same(direct, glued)
    assert_tiles_match_the_forward_pass(net, sl, glued[-1])


def _residual_mlp() -> Network:
    """A 2-input MLP with two residual blocks, one with a nonlinearity inside: from a nonlinearity inside a
    block the walk cannot go on with a subset of the regions (the block's input is pending), so a layer
    over the budget there splits the window; at the others its regions go on in chunks."""
    spec = {
        "input_shape": [2],
        "layers": [
            {"type": "linear", "in_features": 2, "out_features": 12},
            {"type": "relu"},
            {
                "type": "residual",
                "body": [
                    {"type": "linear", "in_features": 12, "out_features": 12},
                    {"type": "relu"},
                    {"type": "linear", "in_features": 12, "out_features": 12},
                ],
            },
            {"type": "relu"},
            {"type": "residual", "body": [{"type": "linear", "in_features": 12, "out_features": 12}]},
            {"type": "relu"},
            {"type": "linear", "in_features": 12, "out_features": 3},
        ],
    }
    torch.manual_seed(3)
    return Network(spec).eval()


def _slice_of(net):
    rng = np.random.default_rng(0)
    return Slice.input_plane(2) if net.input_dim == 2 else Slice.from_directions(rng.normal(size=net.input_dim), rng.normal(size=(2, net.input_dim)))


def _wide_output_mlp() -> Network:
    """An MLP whose last layer feeds 40 outputs: its pieces' logit maps do not fit, so they go on in chunks
    from after the last nonlinearity (the chunks cut nothing more)."""
    torch.manual_seed(0)
    return Network(mlp_spec([2, 16, 16, 40])).eval()


@pytest.mark.parametrize(
    "make, fractions", [(_mlp, (2, 3, 12)), (_cnn, (2,)), (_wide_output_mlp, (1,))], ids=["mlp", "cnn-maxpool", "mlp-after-the-last-layer"]
)
def test_a_memory_budget_runs_a_network_without_branches_in_chunks_of_regions(make, fractions):
    """Over the budget, a layer's regions (or its pieces) go through the rest of the network in chunks, one
    after the other: the same tessellation at every depth (no window split, no gluing), at any budget."""
    net = make()
    sl, box = _slice_of(net), np.array([-1.3, 1.1, -0.9, 1.4])
    direct = tessellate_all_depths(net, sl, box)
    need = direct[-1].num_regions * 3 * 16 * 8  # the MLP's last layer's affine maps alone
    for fraction in fractions:
        seen = []
        split = tessellate_all_depths(net, sl, box, memory_budget=need // fraction, progress=lambda f, m: seen.append((f, m)))
        assert split[-1].chunks > 1 and split[-1].pieces == 1 and direct[-1].chunks == 1
        assert any(m.startswith("chunk 1/") for _, m in seen) and not any("sub-window" in m for _, m in seen)
        assert all(f"layer {net.depth + 1}" not in m for _, m in seen)  # chunks name a layer the network has
        fractions_seen = [f for f, _ in seen]
        assert all(0 <= f <= 1 for f in fractions_seen) and fractions_seen == sorted(fractions_seen)  # the bar never goes back
        _assert_same(direct, split)
        assert_tiles_match_the_forward_pass(net, sl, split[-1])
        partial = tessellate_all_depths(net, sl, box, depth=2, memory_budget=need // fraction)  # the walk stops early
        _assert_same(tessellate_all_depths(net, sl, box, depth=2), partial)


def test_a_network_with_branches_goes_on_in_chunks_or_splits_the_window_by_where_the_budget_binds():
    net = _residual_mlp()
    sl, box = Slice.input_plane(2), np.array([-1.3, 1.1, -0.9, 1.4])
    direct = tessellate_all_depths(net, sl, box)
    need = direct[-1].num_regions * 3 * 12 * 8
    ways = set()
    for k in range(8, 32, 3):  # budgets from 0.4 to 1.5 times the last layer's maps
        seen = []
        split = tessellate_all_depths(net, sl, box, memory_budget=need * k // 20, progress=lambda f, m: seen.append(m))
        way = "chunks" if split[-1].chunks > 1 else "sub-windows" if split[-1].pieces > 1 else "whole"
        assert (way == "sub-windows") == any("sub-window" in m for m in seen)
        _assert_same(direct, split)
        if way not in ways:
            assert_tiles_match_the_forward_pass(net, sl, split[-1])
        ways.add(way)
    assert {"chunks", "sub-windows"} <= ways
    with pytest.raises(BudgetExceededError, match="memory budget"):
        tessellate_all_depths(net, sl, box, memory_budget=1000)
    with pytest.raises(BudgetExceededError, match="memory budget"):
        tessellate_all_depths(_mlp(), sl, box, memory_budget=1000)


def test_a_max_pool_layer_gives_one_tile_per_linear_region():
    """Cut by every pairwise difference of its windows' members, a max-pool layer used to leave pieces whose
    argmax never changed as separate tiles (2.4x the regions on a LeNet-5 slice); now each linear region
    is one tile: every tile's patterns are its own, and it holds the forward pass's pattern."""
    net = _cnn()
    rng = np.random.default_rng(2)
    sl = Slice.from_directions(rng.normal(size=net.input_dim), rng.normal(size=(2, net.input_dim)))
    for t in tessellate_all_depths(net, sl, np.array([-2.0, 2.0, -2.0, 2.0])):
        _by_key(t, t.depth)  # asserts one tile per pattern of layers 1..depth
        assert np.isclose(t.areas().sum(), t.domain_area(), rtol=1e-9)
    assert_tiles_match_the_forward_pass(net, sl, t)


def test_the_cli_takes_a_memory_budget(tmp_path, capsys):
    from app.cli.main import main
    from geometry.tessellation import engine

    import json
    from pathlib import Path

    run = str(Path(__file__).resolve().parents[1] / "assets" / "runs" / "spirals")
    assert main(["tessellate", run, "--memory-budget", "0", "--json", str(tmp_path / "t.json")]) == 2
    assert "--memory-budget" in capsys.readouterr().err
    assert main(["tessellate", run, "--json", str(tmp_path / "whole.json")]) == 0
    capsys.readouterr()
    assert main(["tessellate", run, "--memory-budget", "0.004", "--summary", "--json", str(tmp_path / "split.json")]) == 0
    assert "within the memory budget (--memory-budget): " in capsys.readouterr().out
    assert engine._MEMORY_BUDGET[0] is None  # a command's budget does not outlive it
    whole, split = (json.loads((tmp_path / f).read_text()) for f in ("whole.json", "split.json"))
    assert len(split["regions"]) == len(whole["regions"]) > 100
    assert sorted(r["pattern"] for r in split["regions"]) == sorted(r["pattern"] for r in whole["regions"])


@pytest.mark.parametrize("make", [_mlp, _cnn], ids=["mlp", "cnn-maxpool"])
def test_each_layers_codes_are_held_once_across_depths(make, tmp_path):
    """Depth d's codes of layer j < d are layer j's own codes (held by depth j + 1) indexed by each region's
    ancestor there: equal to the forward pass's pattern at every depth (the tile check), the same array
    object at every depth, and still shared after a round trip through the disk cache."""
    from geometry.cache import dump_result, load_result

    net = make()
    rng = np.random.default_rng(3)
    sl = Slice.input_plane(2) if net.input_dim == 2 else Slice.from_directions(rng.normal(size=net.input_dim), rng.normal(size=(2, net.input_dim)))
    ts = tessellate_all_depths(net, sl, np.array([-1.5, 1.5, -1.5, 1.5]))
    for d, t in enumerate(ts, start=1):
        assert_tiles_match_the_forward_pass(net, sl, t)
        for j in range(d):
            assert t.codes[j].shape[0] == t.num_regions
            assert t.codes.own[j] is ts[j].codes.own[j]
            np.testing.assert_array_equal(t.codes.chunk(2, 7)[j], t.codes[j][2:7])
        assert t.codes.rows_bytes().shape == (t.num_regions, sum(t.codes[j][0].nbytes for j in range(d)))
    copied = sum(sum(t.codes[j].nbytes for j in range(t.depth)) for t in ts)
    assert sum(c.nbytes for c in {id(o): o for t in ts for o in t.codes.own}.values()) < copied
    dump_result(ts, tmp_path / "c.npz")
    back = load_result(tmp_path / "c.npz")
    assert back[-1].codes.own[0] is back[0].codes.own[0]
    for t0, t1 in zip(ts, back):
        for j in range(t0.depth):
            np.testing.assert_array_equal(t0.codes[j], t1.codes[j])


def test_convolutions_in_batch_slices_give_the_same_tessellation(monkeypatch):
    """A CPU float64 convolution unfolds its whole batch (9x the input for 3x3 kernels), so the engine runs
    convolutions a slice of the batch at a time; slices of one region give the same tiles, bit for bit."""
    from geometry.tessellation import affine

    net = _cnn()
    rng = np.random.default_rng(4)
    sl = Slice.from_directions(rng.normal(size=net.input_dim), rng.normal(size=(2, net.input_dim)))
    box = np.array([-2.0, 2.0, -2.0, 2.0])
    whole = tessellate_all_depths(net, sl, box)
    calls = []
    real = affine._in_chunks

    def counted(conv, flat, module):
        calls.append(flat.shape[0])
        return real(conv, flat, module)

    monkeypatch.setattr(affine, "CONV_SCRATCH_BYTES", 1)  # one batch item per call
    monkeypatch.setattr(affine, "_in_chunks", counted)
    sliced = tessellate_all_depths(net, sl, box)
    assert calls and max(calls) > 1
    _assert_same(whole, sliced)
    for a, b in zip(whole, sliced):
        np.testing.assert_array_equal(a.vertices, b.vertices)


@pytest.mark.gui
def test_the_window_draws_a_tessellation_made_in_chunks_and_says_so(qtbot, make_window, spirals_run_path, monkeypatch):
    """With a small memory budget the window shows the same tiles (same patterns, same areas) as without
    one, and its status bar says that they were made in chunks."""
    pytest.importorskip("pytestqt")
    from geometry.tessellation import engine

    whole = make_window(str(spirals_run_path))
    qtbot.waitUntil(lambda: whole.results.tiles is not None and not whole.work.busy(), timeout=60_000)
    monkeypatch.setattr(engine, "_MEMORY_BUDGET", [400_000])  # bytes: the spirals MLP's deeper layers do not fit
    win = make_window(str(spirals_run_path))
    qtbot.waitUntil(lambda: win.results.tiles is not None and not win.work.busy(), timeout=60_000)
    a, b = whole.results.tiles.by_depth, win.results.tiles.by_depth
    assert b[-1].chunks > 1 and "chunks (memory budget)" in win.status_label.text()
    assert "chunks" not in whole.status_label.text()
    _assert_same(a, b)
