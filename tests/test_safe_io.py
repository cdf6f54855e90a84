"""Safe reading and writing: fuzzed loaders, atomic writes, permissions, Ctrl+C, escaped text."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geometry.networks import pickle_scan
from geometry.networks.checkpoints import read_checkpoint
from geometry.errors import SplineAtlasError
from geometry.safe_io import atomic_open, atomic_output, partial_name, printable, write_text
from geometry.networks.spec import validate_spec

ROOT = Path(__file__).resolve().parents[1]
FUZZ = settings(
    max_examples=int(os.environ.get("SPLINEATLAS_FUZZ_EXAMPLES", "150")), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

json_trees = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**20), 10**20) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(
            st.sampled_from(
                [
                    "type",
                    "layers",
                    "input_shape",
                    "in_features",
                    "out_features",
                    "checkpoints",
                    "path",
                    "epoch",
                    "format",
                    "num_classes",
                    "body",
                    "kernel_size",
                    "x",
                ]
            )
            | st.text(max_size=8),
            children,
            max_size=6,
        )
    ),
    max_leaves=30,
)


@FUZZ
@given(data=st.binary(max_size=2048))
def test_random_bytes_never_escape_as_anything_but_a_one_line_error(tmp_path, data):
    p = tmp_path / "fuzz.pt"
    p.write_bytes(data)
    try:
        read_checkpoint(p)
    except SplineAtlasError as exc:
        assert "\n" not in str(exc)


@FUZZ
@given(prefix=st.sampled_from([b"PK\x03\x04", b"\x80\x02", b"\x80\x04\x95", b"\x80\x05"]), data=st.binary(max_size=1024))
def test_random_bytes_behind_checkpoint_magic_numbers(tmp_path, prefix, data):
    p = tmp_path / "fuzz.pt"
    p.write_bytes(prefix + data)
    try:
        read_checkpoint(p)
    except SplineAtlasError:
        pass


@FUZZ
@given(tree=json_trees)
def test_random_json_specs_are_accepted_or_refused_in_one_line(tree):
    try:
        validate_spec(tree)
    except SplineAtlasError as exc:
        assert "\n" not in str(exc)


@FUZZ
@given(tree=json_trees)
def test_random_json_manifests_and_sessions(tmp_path, tree):
    from app.model.session import validate_session
    from geometry.networks.runs import open_run

    (tmp_path / "run.json").write_text(json.dumps(tree))
    for load in (lambda: open_run(tmp_path), lambda: validate_session(tree)):
        try:
            load()
        except SplineAtlasError as exc:
            assert "\n" not in str(exc)


def test_pickle_scan_sees_stack_global_and_memoised_names():
    import pickle

    class Reduce:
        def __reduce__(self):
            return (os.system, ("true",))

    for protocol in (2, 4, 5):
        found = pickle_scan.scan(pickle.dumps({"a": Reduce()}, protocol=protocol)).globals
        assert any(g.endswith(".system") for g in found), (protocol, found)
    assert pickle_scan.unsafe_globals(("torch._utils._rebuild_tensor_v2", "collections.OrderedDict")) == []
    assert pickle_scan.unsafe_globals(("posix.system",)) == ["posix.system"]


def test_trainer_checkpoint_with_plain_python_objects_opens_without_trust(tmp_path):
    import argparse
    import collections
    import pathlib

    import numpy as np

    from geometry.networks.checkpoints import load_checkpoint
    from geometry.networks.spec import mlp_spec

    spec = mlp_spec([2, 4, 3])
    from geometry.networks.network import Network

    net = Network(spec)
    torch.save(
        {
            "model": net.layers.state_dict(),
            "args": argparse.Namespace(lr=0.1, out=pathlib.Path("/runs/a")),
            "epoch": 3,
            "best": np.float64(0.93),
            "dtype": np.dtype("float32"),
            "hist": np.zeros(3),
            "sched": collections.OrderedDict(step=1),
        },
        tmp_path / "trainer.pt",
    )
    loaded = load_checkpoint(tmp_path / "trainer.pt", spec=spec)
    x = torch.randn(5, 2)
    assert torch.equal(loaded(x), net(x))


def test_atomic_write_keeps_the_old_file_when_interrupted_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "session.json"
    write_text(target, '{"old": true}')
    with pytest.raises(RuntimeError):
        with atomic_open(target, "w") as fh:
            fh.write('{"new": ')
            raise RuntimeError("disk full half way")
    assert target.read_text() == '{"old": true}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["session.json"]


def test_written_files_follow_the_umask_and_stale_temporaries_are_removed(tmp_path):
    old = os.umask(0o022)
    try:
        write_text(tmp_path / "a.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o644
    # a temporary left by a killed process (a pid that does not run) goes on the next write
    stale = partial_name(tmp_path / "a.json").name.replace(f"-{os.getpid()}-", "-999999999-")
    (tmp_path / stale).write_text("half")
    with atomic_output(tmp_path / "a.json") as tmp:
        tmp.write_text("{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_session_save_that_fails_half_way_leaves_the_previous_session(tmp_path, monkeypatch):
    import app.model.session as state_mod
    from app.model.state import ViewerState
    from app.model.session import read_session, save_session

    st_ = ViewerState()
    save_session(st_, tmp_path / "s.json")
    before = (tmp_path / "s.json").read_text()

    def broken(obj, **kw):
        raise OSError("no space left on device")

    monkeypatch.setattr(state_mod.json, "dumps", broken)
    with pytest.raises(OSError):
        save_session(st_, tmp_path / "s.json")
    assert (tmp_path / "s.json").read_text() == before
    monkeypatch.undo()
    assert read_session(tmp_path / "s.json")["format"] == "splineatlas-session"


def test_printable_escapes_terminal_controls_and_undecodable_bytes():
    assert printable("\x1b[2Jred\x07") == "\\x1b[2Jred\\x07"
    assert printable(os.fsdecode(b"run_\xff")) == "run_\\xff"
    assert len(printable("k" * 200_000)) < 300


@pytest.mark.slow
def test_ctrl_c_exits_130_and_leaves_no_output(tmp_path):
    """SIGINT during a long computation: exit code 130, and no file under the output's final name."""
    from geometry.networks.network import Network
    from geometry.networks.checkpoints import save_checkpoint
    from geometry.networks.spec import mlp_spec

    torch.manual_seed(0)
    save_checkpoint(tmp_path / "wide.pt", Network(mlp_spec([2, 256, 256, 256, 256, 256, 256, 2])))
    out = tmp_path / "regions.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli.main", "tessellate", str(tmp_path / "wide.pt"), "--json", str(out)],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    time.sleep(6)  # imports done, tessellating (it takes far longer than this)
    assert proc.poll() is None, proc.stderr.read()
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)  # long before the tessellation could end (no timing bound: the machine is shared)
    assert proc.returncode == 130
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_exported_figure_follows_the_umask(tmp_path, spirals_run_path):
    """Exports used to be created mode 0600 (mkstemp) whatever the umask."""
    from app.cli.main import main

    old = os.umask(0o022)
    try:
        assert main(["export-figure", str(spirals_run_path), "--epoch", "0", "--size", "320", "240", "--out", str(tmp_path / "f.png")]) == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f.png").stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["f.png"]
