"""Hostile and malformed inputs (tests/hostile_corpus.py) through every face that reads files.

Each case runs through ``info``, ``tessellate`` and ``deepfool`` (or its own command line) and the
app's loader, in subprocesses with an address-space limit and a time bound per command. Each must:
run no planted code (no marker file, no printed marker), print no traceback, exit with code 2 and
one line that is neither the out-of-memory nor the internal-error fallback, and stay within memory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.hostile_corpus import PRINTED_MARKER, build_corpus

ROOT = Path(__file__).resolve().parents[1]
PEAK_RSS_MB = 2500  # per driver process, over all its cases
ADDRESS_SPACE = 8 << 30  # RLIMIT_AS of each driver (torch alone maps ~2 GB of address space)
WORKERS = 2

_TMP = Path(tempfile.mkdtemp(prefix="splineatlas-hostile-"))
_MARKERS = _TMP / "markers"
_MARKERS.mkdir()
_VALID = _TMP / "valid_run"
CASES = build_corpus(_TMP / "corpus", _MARKERS, _VALID)


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 150
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.fixture(scope="module")
def outcomes():
    from geometry.networks.datasets import builtin_dataset
    from geometry.networks.spec import mlp_spec
    from geometry.networks.training import train_run

    train_run(builtin_dataset("moons", n=60, seed=0), mlp_spec([2, 4, 2]), _VALID, epochs=1, save_epochs=[0, 1])
    batches = [CASES[i::WORKERS] for i in range(WORKERS)]
    procs = []
    env = {
        **os.environ,
        "HOSTILE_ADDRESS_SPACE_BYTES": str(ADDRESS_SPACE),
        "SPLINEATLAS_CACHE": str(_TMP / "cache"),
        "PYTHONPATH": str(ROOT),
        "OMP_NUM_THREADS": "1",
    }
    for i, batch in enumerate(batches):
        f = _TMP / f"batch{i}.json"
        f.write_text(json.dumps([{"name": c.name, "target": c.target, "commands": c.commands, "app_loader": c.app_loader} for c in batch]))
        procs.append(
            subprocess.Popen(
                [sys.executable, str(ROOT / "tests" / "hostile_driver.py"), str(f)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                cwd=_TMP,
                text=True,
            )
        )
    results = {}
    for p in procs:
        out, err = p.communicate(timeout=1800)
        assert p.returncode == 0, f"a driver process died (code {p.returncode}): {err[-3000:]}"
        results.update(json.loads(out.strip().splitlines()[-1]))
    return results


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_input_is_refused_in_one_line(outcomes, case):
    res = outcomes[case.name]
    assert not any(_MARKERS.iterdir()), f"planted code ran: {sorted(p.name for p in _MARKERS.iterdir())}"
    assert res["peak_rss_mb"] < PEAK_RSS_MB
    for argv, cmd in zip(case.commands, res["commands"]):
        shown = f"{argv[0]} on {case.name}: {cmd}"
        text = cmd["stdout"] + cmd["stderr"]
        assert PRINTED_MARKER not in text, shown
        assert "Traceback" not in text, shown
        assert cmd["outcome"] == 2, shown
        lines = [ln for ln in cmd["stderr"].splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), shown
        assert "failed unexpectedly" not in lines[0] and "ran out of memory" not in lines[0], shown
        assert "\x1b" not in text and len(lines[0]) < 1200, shown
        assert case.expect is None or case.expect in lines[0], f"refused for another reason than {case.expect!r}: {shown}"
    if case.app_loader:
        app = res["app"]
        assert str(app["outcome"]).startswith("refused: "), f"app loader on {case.name}: {app}"
        assert PRINTED_MARKER not in app["stdout"] + app["stderr"]
