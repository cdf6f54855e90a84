"""The Qt-free viewer state (events, clamping, sessions) and the result cache (no Qt here)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from app.model.state import PathSpec, SliceChoice, ViewerState

from app.model.session import read_session, save_session
from geometry.cache import ResultCache, cache_key, dump_result, load_result
from geometry.errors import InputFileError
from geometry.slices import Slice


def _state() -> ViewerState:
    st = ViewerState()
    st.set_run("/runs/x", n_epochs=5, max_depth=3)
    st.set_slice(Slice.input_plane(2), SliceChoice("input"), (-1, 1, -2, 2))
    return st


def test_events_fire_once_per_change_and_values_are_clamped():
    st = _state()
    seen = []
    st.events.epoch_index.connect(lambda i: seen.append(("epoch", i)))
    st.events.depth.connect(lambda d: seen.append(("depth", d)))
    st.set_epoch_index(2)
    st.set_epoch_index(2)  # no change, no event
    st.set_epoch_index(99)  # clamped to the last checkpoint
    st.set_depth(0)  # clamped to 1
    st.step_epoch(-1)
    assert seen == [("epoch", 2), ("epoch", 4), ("depth", 1), ("epoch", 3)]
    with pytest.raises(AttributeError):
        st.epoch_index = 1  # fields are read-only


def test_picks_complete_after_the_tool_has_enough_and_escape_cancels():
    st = _state()
    st.set_pick_mode("horizontal")
    assert st.add_pick(0, 0) is None and st.picks == ((0.0, 0.0),)
    st.cancel_picks()
    assert st.picks == ()
    assert st.add_pick(0, 0) is None
    assert st.add_pick(1, 1) == ((0.0, 0.0), (1.0, 1.0)) and st.picks == ()
    st.set_pick_mode("inspect")
    st.add_pick(0.5, 0.25)
    assert st.inspected == (0.5, 0.25)


def test_session_round_trip(tmp_path):
    st = _state()
    st.set_epoch_index(3)
    st.set_depth(2)
    st.set_window((-0.5, 0.5, -0.25, 0.75))
    st.set_color_mode("slope")
    st.update_settings(show_points=False, max_regions=1234)
    p = st.add_path("horizontal", (0.1, 0.2), (0.3, 0.4))
    st.add_path("normal", (0.0, 0.0))
    st.set_path_visible(p.id, False)
    st.set_inspected((0.2, 0.1))
    f = tmp_path / "s.json"
    save_session(st, f)
    data = read_session(f)
    st2 = ViewerState()
    st2.set_run(data["run"], 5, 3)
    st2.apply_session(data)
    assert st2.to_session() == st.to_session()
    assert isinstance(st2.paths[0], PathSpec) and st2.paths[0].visible is False
    np.testing.assert_array_equal(st2.slice.basis, st.slice.basis)


@pytest.mark.parametrize(
    "text, msg",
    [("{not json", "not valid JSON"), ('{"a": 1}', "not a Spline Atlas session"), ('{"format": "splineatlas-session", "window": [1, 0, 0, 1]}', "window")],
)
def test_bad_session_files_raise_input_file_errors(tmp_path, text, msg):
    f = tmp_path / "bad.json"
    f.write_text(text)
    with pytest.raises(InputFileError, match=msg):
        read_session(f)


def test_cache_keys_depend_on_every_bit_of_the_inputs():
    a = np.array([0.1, 0.2])
    b = a.copy()
    b[1] = np.nextafter(b[1], 1)
    assert cache_key("t", a, 3) == cache_key("t", a.copy(), 3)
    assert cache_key("t", a, 3) != cache_key("t", b, 3)
    assert cache_key("t", a, 3) != cache_key("t", a, 4)


def test_tessellation_results_survive_the_disk_cache_without_pickle(tmp_path):
    import torch

    from geometry.networks.network import Network
    from geometry.networks.spec import mlp_spec
    from geometry.tessellation.engine import tessellate_all_depths

    torch.manual_seed(0)
    net = Network(mlp_spec([2, 6, 5, 3]))
    res = tessellate_all_depths(net, Slice.input_plane(2), [-1, 1, -1, 1])
    cache = ResultCache(tmp_path)
    key = cache_key("x", 1)
    cache.put(key, res)
    fresh = ResultCache(tmp_path)  # a new process: memory empty, disk hit
    back = fresh.get(key)
    assert fresh.hits == 1 and len(back) == len(res)
    for t0, t1 in zip(res, back):
        np.testing.assert_array_equal(t0.vertices, t1.vertices)
        np.testing.assert_array_equal(t0.offsets, t1.offsets)
        np.testing.assert_array_equal(t0.edge_layer, t1.edge_layer)
        for c0, c1 in zip(t0.codes, t1.codes):
            np.testing.assert_array_equal(c0, c1)
        np.testing.assert_array_equal(t0.boundary_segments, t1.boundary_segments)
        assert t0.layers == t1.layers and t0.slice.description == t1.slice.description
    np.testing.assert_array_equal(back[-1].region_of(np.array([[0.1, 0.2]])), res[-1].region_of(np.array([[0.1, 0.2]])))
    # a cache file naming a class outside geometry/ is refused, not imported
    f = tmp_path / "evil.npz"
    dump_result({"a": 1}, f)
    with np.load(f) as z:
        meta = json.loads(bytes(z["__meta__"]).decode())
    meta["value"] = {"$dataclass": "os:system", "fields": {}}
    np.savez(f, __meta__=np.frombuffer(json.dumps({"format": meta["format"], "value": meta["value"]}).encode(), np.uint8))
    with pytest.raises(ValueError, match="refusing"):
        load_result(f)


def test_memory_cache_is_bounded_lru():
    cache = ResultCache(None, max_bytes=3 * 8000 + 500)
    for i in range(5):
        cache.put(str(i), np.zeros(1000))
    assert cache.peek("0") is None and cache.peek("4") is not None


def test_deepfool_slice_of_the_window_is_the_engine_cross_section(digits_run_path):
    """The 2D tab's "point + DeepFool direction + random direction" is geometry.boundary.cross_sections' plane."""
    from app import jobs
    from geometry.boundary.deepfool import deepfool

    b = jobs.open_run_bundle(digits_run_path)
    sl, win = jobs.make_slice(b, SliceChoice("deepfool", (7,), seed=3), epoch_index=-1)
    net = b.network(-1)
    x = b.points()[0][7]
    r = deepfool(net, x[None]).perturbation[0]
    np.testing.assert_allclose(sl.origin, x)
    np.testing.assert_allclose(sl.basis[:, 0], r / np.linalg.norm(r), atol=1e-9)  # first axis: r(x)
    np.testing.assert_allclose(sl.basis.T @ sl.basis, np.eye(2), atol=1e-12)
    w = np.random.default_rng(3).normal(size=(1, x.size))[0]
    w_in_plane = sl.basis @ (sl.basis.T @ w)
    np.testing.assert_allclose(w_in_plane, w, atol=1e-9)  # second: the seeded direction
    np.testing.assert_allclose(sl.anchors[1], [np.linalg.norm(r), 0.0], atol=1e-9)
    from geometry.boundary.cross_sections import DEFAULT_EXTENT

    half = DEFAULT_EXTENT * np.linalg.norm(r)  # one extent for the window, the CLI and the 3D tab
    np.testing.assert_allclose(win, (-half, half, -half, half), rtol=1e-9)


def test_inspecting_a_smooth_network_reports_no_activation_pattern(tmp_path):
    """Softplus layers have no on/off pattern: the inspector's report says so instead of '0 of 8 active'."""
    import torch

    from app import jobs
    from geometry.networks.checkpoints import save_checkpoint
    from geometry.networks.network import Network

    spec = {
        "input_shape": [2],
        "layers": [
            {"type": "linear", "in_features": 2, "out_features": 8},
            {"type": "softplus"},
            {"type": "linear", "in_features": 8, "out_features": 6},
            {"type": "relu"},
            {"type": "linear", "in_features": 6, "out_features": 3},
        ],
    }
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "smooth.pt", Network(spec))
    b = jobs.open_run_bundle(tmp_path / "smooth.pt")
    assert not b.piecewise_affine
    rep = jobs.inspect_point(b, 0, Slice.input_plane(2), (0.3, -0.2), depth=2)
    assert rep.active[0] == (-2, 8) and rep.active[1][1] == 6 and rep.active[1][0] >= 0
    assert rep.pattern_hash == "—" and rep.centroid is None
    with torch.no_grad():
        p = torch.softmax(b.network(0)(torch.tensor([[0.3, -0.2]])), 1)[0].numpy()
    np.testing.assert_allclose(rep.probs, p, rtol=1e-5)
