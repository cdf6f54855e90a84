"""Shared test set-up.

Qt platform: pytest-xvfb starts a virtual X server when Xvfb is installed (scripts/run-tests.sh
installs it), so Qt uses xcb there and vispy gets OpenGL (Mesa llvmpipe). Without any display we
fall back to Qt's offscreen platform, where pyqtgraph works and OpenGL (vispy) tests skip.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest


def pytest_sessionfinish(session, exitstatus):
    """Every window's worker threads are done before the interpreter finalizes (see workers.shutdown_all)."""
    workers = sys.modules.get("app.qt.workers")
    if workers is not None:
        workers.shutdown_all()


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    # after pytest-xvfb's own pytest_configure has started Xvfb and set DISPLAY (deciding at import time,
    # before it, forced 'offscreen' even under pytest-xvfb, and every OpenGL test skipped)
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a test module (restored after): on tiny nets extra intra-op threads only add
    contention on the shared 2-core machine. Modules opt in with
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


ROOT = Path(__file__).resolve().parents[1]
DEMO_RUNS = ROOT / "assets" / "runs"


@pytest.fixture(scope="session")
def spirals_run_path() -> Path:
    """The bundled 2D demo run (2-64-64-64-3 MLP on 3-arm spirals)."""
    return DEMO_RUNS / "spirals"


@pytest.fixture(scope="session")
def digits_run_path() -> Path:
    """The bundled digits run (small CNN on 1x8x8 images)."""
    return DEMO_RUNS / "digits"


@pytest.fixture
def make_window(qtbot, tmp_path):
    """A factory of real main windows: ``make_window(run, cache=None, size=(1300, 850))`` shows one with its
    own settings file and starts opening ``run`` (callers wait for what they need)."""
    from PySide6.QtCore import QSettings

    from app.qt.main_window import MainWindow
    from geometry.cache import ResultCache

    made = []

    def make(run, cache=None, size=(1300, 850)):
        win = MainWindow(
            cache=cache if cache is not None else ResultCache(None), settings=QSettings(str(tmp_path / f"settings{len(made)}.ini"), QSettings.Format.IniFormat)
        )
        qtbot.addWidget(win)
        win.resize(*size)
        win.show()
        win.open_path(run)
        made.append(win)
        return win

    yield make
    for win in made:
        win.work.shutdown()


@pytest.fixture
def gl(qapp):
    """The Qt application, when it can draw with OpenGL (vispy's 3D canvas); else the test skips, saying why."""
    from app.qt.view3d import opengl_available

    ok, why = opengl_available()
    if not ok:
        pytest.skip(f"no OpenGL on this Qt platform: {why}")
    return qapp
