"""The real window meets hostile files: each is refused with a message naming it, nothing planted runs,
the run already open stays, and the window keeps working; code runs only after the user says Yes."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("pytestqt")

pytestmark = pytest.mark.gui
TIMEOUT = 60_000
SAMPLE = [
    "pickle_system",
    "pickle_system_legacy",
    "torchscript_setstate",
    "torchscript_in_run_folder",
    "readme_as_checkpoint",
    "zip_bomb_declared_sizes",
    "arch_num_classes_1e9",
    "arch_fifo",
    "arch_dev_zero",
    "ckpt_fifo",
    "run_path_dotdot",
    "run_ckpt_symlink_zero",
    "run_dataset_builtin_huge_n",
    "npz_header_bomb",
    "float64_overflow",
    "folder_not_utf8_name",
    "run_name_ansi",
]
SESSIONS = ["session_3000_paths", "session_max_regions_huge", "session_deep_nesting"]


@pytest.fixture
def corpus(tmp_path):
    from geometry.networks.datasets import builtin_dataset
    from geometry.networks.spec import mlp_spec
    from geometry.networks.training import train_run
    from tests.hostile_corpus import build_corpus

    markers = tmp_path / "markers"
    markers.mkdir()
    valid = tmp_path / "valid"
    train_run(builtin_dataset("moons", n=60, seed=0), mlp_spec([2, 4, 2]), valid, epochs=1, save_epochs=[0, 1])
    return {c.name: c for c in build_corpus(tmp_path / "corpus", markers, valid)}, markers


@pytest.fixture
def window(qtbot, make_window, spirals_run_path):
    win = make_window(spirals_run_path, size=(1280, 720))
    qtbot.waitUntil(lambda: win.tess is not None and not win.work.busy(), timeout=TIMEOUT)
    return win


def test_hostile_files_are_refused_and_the_open_run_stays(qtbot, window, corpus, capfd):
    cases, markers = corpus
    win = window
    asked = []
    win.confirm_trust = lambda path, exc: asked.append(path) or False  # the user answers No
    run_before, epochs_before = win.bundle.run.source, win.state.n_epochs
    for name in SAMPLE + SESSIONS:
        win.last_error = None
        case = cases[name]
        win.open_path(case.target)
        qtbot.waitUntil(lambda: win.last_error is not None and not win.work.busy(), timeout=TIMEOUT)
        assert "\n" not in win.last_error and "\x1b" not in win.last_error, name
        assert win.bundle.run.source == run_before and win.state.n_epochs == epochs_before, name
        assert not any(markers.iterdir()), f"{name}: planted code ran"
    assert "PWNED-MARKER" not in capfd.readouterr().out
    # code-carrying files asked for trust (default No) and were then refused
    assert {cases[n].target for n in ("pickle_system", "torchscript_setstate")} <= set(asked)
    # the window still works: scrub to another epoch and get its exact tessellation
    key = win.tess_key
    win.controls.epoch.setValue(3)
    qtbot.waitUntil(lambda: win.tess is not None and win.tess_key != key and not win.work.busy(), timeout=TIMEOUT)
    assert win.state.epoch_index == 3 and win.tess[-1].num_regions > 0


def test_yes_to_trust_opens_a_full_pickle(qtbot, window, tmp_path):
    from torch import nn

    torch.manual_seed(0)
    torch.save(nn.Sequential(nn.Linear(2, 6), nn.ReLU(), nn.Linear(6, 3)), tmp_path / "full.pt")
    window.confirm_trust = lambda path, exc: True
    window.open_path(tmp_path / "full.pt")
    qtbot.waitUntil(lambda: window.bundle.run.source == tmp_path / "full.pt" and not window.work.busy(), timeout=TIMEOUT)
    assert window.state.n_epochs == 1


def test_a_run_with_more_checkpoints_opens_after_a_one_checkpoint_run(qtbot, window, tmp_path, spirals_run_path):
    """It used to index the old epoch list and leave the window broken until restart."""
    from geometry.networks.checkpoints import save_checkpoint

    save_checkpoint(tmp_path / "one.pt", window.bundle.run.network(3))
    window.open_path(tmp_path / "one.pt")
    qtbot.waitUntil(lambda: window.state.n_epochs == 1 and window.tess is not None and not window.work.busy(), timeout=TIMEOUT)
    window.last_error = None
    window.open_path(spirals_run_path)
    qtbot.waitUntil(lambda: window.state.n_epochs > 1 and window.tess is not None and not window.work.busy(), timeout=TIMEOUT)
    assert window.last_error is None
    assert window.controls.epoch.maximum() == window.state.n_epochs - 1
