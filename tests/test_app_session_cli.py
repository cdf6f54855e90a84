"""``splineatlas session create|show``: the CLI twin of the app's session files (no Qt)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from app.cli.main import main
from app.model.state import ViewerState
from app.model.session import read_session


def test_create_then_show_and_load(tmp_path, spirals_run_path, capsys):
    out = tmp_path / "s.json"
    rc = main(
        [
            "session",
            "create",
            str(spirals_run_path),
            "--out",
            str(out),
            "--depth",
            "2",
            "--epoch",
            "100",
            "--window",
            "-0.5",
            "0.5",
            "-0.5",
            "0.5",
            "--color-mode",
            "slope",
            "--path",
            "segment",
            "-0.4",
            "-0.4",
            "0.4",
            "0.3",
            "--path",
            "normal",
            "0",
            "0",
        ]
    )
    assert rc == 0
    data = read_session(out)
    assert data["depth"] == 2 and data["color_mode"] == "slope" and data["window"] == [-0.5, 0.5, -0.5, 0.5]
    assert [p["kind"] for p in data["paths"]] == ["segment", "normal"] and data["paths"][1]["end"] is None
    st = ViewerState()
    st.set_run(data["run"], 57, 3)
    st.apply_session(data)  # what the window does after opening the run
    assert st.depth == 2 and len(st.paths) == 2 and st.slice.description.startswith("input space")
    capsys.readouterr()
    assert main(["session", "show", str(out), "--tessellate"]) == 0
    text = capsys.readouterr().out
    assert "regions per depth 1..3" in text and "path #2: normal" in text


def test_bad_arguments_give_one_line_errors(tmp_path, spirals_run_path, capsys):
    out = tmp_path / "s.json"
    assert main(["session", "create", str(spirals_run_path), "--out", str(out), "--path", "segment", "0", "0"]) == 2
    assert "needs a start and an end" in capsys.readouterr().err
    assert main(["session", "create", str(spirals_run_path), "--out", str(out), "--depth", "9"]) == 2
    (tmp_path / "bad.json").write_text("[1, 2")
    assert main(["session", "show", str(tmp_path / "bad.json")]) == 2
    assert "not valid JSON" in capsys.readouterr().err


def test_cli_does_not_import_qt():
    import subprocess

    code = "import sys; from app.cli.main import build_parser; build_parser(); import app.cli.session_cmds; print('PySide6' in sys.modules)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "False"


@pytest.mark.parametrize("session", sorted((Path(__file__).resolve().parents[1] / "assets" / "sessions").glob("*.json")), ids=lambda p: p.stem)
def test_every_bundled_session_is_valid_and_names_its_run(session, capsys):
    assert main(["session", "show", str(session)]) == 0
    assert "run:" in capsys.readouterr().out
