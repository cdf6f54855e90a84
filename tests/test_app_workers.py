"""The window's worker pool: newest request first, stale work cancelled, errors delivered, never raised."""

from __future__ import annotations

import threading
import time

import pytest

pytest.importorskip("pytestqt")
pytestmark = pytest.mark.gui


def _slow(result, started: list, steps: int = 200):
    def fn(progress, cancel):
        started.append(result)
        for i in range(steps):
            if cancel():
                from geometry.errors import CancelledError

                raise CancelledError("stopped")
            progress(i / steps, f"step {i}")
            time.sleep(0.002)
        return result

    return fn


def test_newer_jobs_cancel_older_ones_of_the_same_channel(qtbot):
    from app.qt.workers import WorkManager

    wm = WorkManager(max_threads=1)
    done, errors, started = [], [], []
    gate = threading.Event()
    wm.submit("block", "occupies the only thread", lambda progress, cancel: gate.wait(10))
    for k in range(4):  # all four queue up behind the blocker
        wm.submit("tess", f"job {k}", _slow(k, started), on_done=done.append, on_error=errors.append)
    wm.submit("other", "independent", _slow("x", started, 5), on_done=done.append)
    gate.set()
    qtbot.waitUntil(lambda: not wm.busy(), timeout=20_000)
    wm.wait()
    qtbot.wait(50)
    assert done.count(3) == 1 and not any(k in done for k in (0, 1, 2))  # only the newest result is delivered
    assert "x" in done and errors == []  # other channels are untouched
    assert started[0] == "x" and sorted(map(str, started)) == ["3", "x"]  # newest first; stale never started


def test_errors_go_to_the_callback_or_the_error_signal(qtbot):
    from app.qt.workers import WorkManager
    from geometry.errors import BudgetExceededError

    wm = WorkManager(max_threads=2)
    caught, signalled = [], []
    wm.error.connect(lambda desc, exc, tb: signalled.append((desc, type(exc).__name__, bool(tb))))

    def boom(progress, cancel):
        raise BudgetExceededError("too many regions")

    def bug(progress, cancel):
        return 1 / 0

    wm.submit("a", "budget", boom, on_error=caught.append)
    wm.submit("b", "buggy", bug)
    qtbot.waitUntil(lambda: bool(caught and signalled), timeout=10_000)
    assert isinstance(caught[0], BudgetExceededError)
    assert signalled == [("buggy", "ZeroDivisionError", True)]  # a bug carries its traceback


def test_cancel_all_and_activity_reports(qtbot):
    from app.qt.workers import WorkManager

    wm = WorkManager(max_threads=1)
    states = []
    wm.activity.connect(lambda busy, frac, msg: states.append((busy, msg)))
    release = threading.Event()

    def waiting(progress, cancel):
        progress(0.5, "halfway")
        while not cancel() and not release.is_set():
            time.sleep(0.005)
        return 1

    done = []
    wm.submit("c", "waiting job", waiting, on_done=done.append)
    qtbot.waitUntil(lambda: any("halfway" in m for _, m in states), timeout=10_000)
    assert wm.cancel() == 1
    qtbot.waitUntil(lambda: not wm.pending(), timeout=10_000)
    assert done == [] and states[-1] == (False, "")


def test_cyclic_garbage_is_collected_on_the_gui_thread_while_jobs_run(qtbot):
    """A collection in a worker thread can finalise a Qt wrapper there and hang the window: while a job
    runs automatic collection is off (the GUI thread's timer collects), and it is back on afterwards."""
    import gc
    import threading

    from app.qt.workers import COLLECTOR, WorkManager

    work = WorkManager()
    seen, release = {}, threading.Event()

    def job(progress, cancel):
        seen["enabled_in_job"] = gc.isenabled()
        release.wait(5)
        return 1

    qtbot.waitUntil(gc.isenabled, timeout=5000)  # earlier tests' jobs have ended
    work.submit("gc", "probe", job)
    qtbot.waitUntil(lambda: "enabled_in_job" in seen, timeout=5000)
    assert seen["enabled_in_job"] is False and COLLECTOR.running == 1
    release.set()
    qtbot.waitUntil(lambda: not work.busy() and COLLECTOR.running == 0, timeout=5000)
    qtbot.waitUntil(gc.isenabled, timeout=5000)  # the GUI thread's timer switched it back on
    work.shutdown()


def test_the_heap_is_trimmed_only_after_a_quiet_spell(qtbot, monkeypatch):
    """The process keeps freed memory for the next job; once no job has run for a while it goes back."""
    import app.qt.workers as workers

    monkeypatch.setattr(workers, "IDLE_RELEASE_MS", 150)
    trims = []
    monkeypatch.setattr(workers, "release_free_memory", lambda: trims.append(time.monotonic()) or True)
    wm = workers.WorkManager(max_threads=1)
    gate = threading.Event()
    wm.submit("tess", "a long job", lambda progress, cancel: gate.wait(10))
    qtbot.wait(400)
    assert trims == []  # never while a job runs
    gate.set()
    qtbot.waitUntil(lambda: not wm.busy(), timeout=10_000)
    finished = time.monotonic()
    wm.submit("tess", "the next job at once", lambda progress, cancel: 1)
    qtbot.waitUntil(lambda: not wm.busy(), timeout=10_000)
    qtbot.waitUntil(lambda: len(trims) == 1, timeout=5_000)
    assert trims[0] - finished >= 0.14  # the quiet spell counts from the last job
    qtbot.wait(400)
    assert len(trims) == 1  # once per quiet spell
    wm.shutdown()


def test_shutdown_all_stops_every_pool_before_exit(qtbot):
    """At exit (the app's aboutToQuit, the test session's end) no worker may still run Python code."""
    from app.qt.workers import WorkManager, shutdown_all

    started = []
    running = [WorkManager(max_threads=1) for _ in range(2)]
    for wm in running:
        wm.submit("tess", "long", _slow("x", started, steps=5000))
    gone = WorkManager(max_threads=1)
    gone.deleteLater()
    qtbot.waitUntil(lambda: len(started) == 2, timeout=10_000)
    shutdown_all()  # the deleted one is skipped, the others cancelled and waited for
    assert all(wm.pool.activeThreadCount() == 0 for wm in running)
