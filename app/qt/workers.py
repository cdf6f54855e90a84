"""Background work for the window: a thread pool, per-channel newest-request-first, cancellation.

Every engine call of the app goes through :meth:`WorkManager.submit` as a plain function
``fn(progress, cancel) -> result``. Jobs of one *channel* (e.g. ``"tessellation"``) supersede each
other: submitting a new job cancels every older job of that channel (running ones see ``cancel()``
return True and raise CancelledError; queued ones never start), and the pool runs newer jobs first.
Results, errors and progress arrive on the GUI thread through Qt signals, so widgets never block.
"""

from __future__ import annotations

import gc
import itertools
import threading
import traceback
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable

from PySide6.QtCore import QCoreApplication, QObject, QRunnable, QThreadPool, QTimer, Signal

from geometry.errors import CancelledError, SplineAtlasError
from geometry.heap import release_free_memory


class CancelToken:
    """A thread-safe flag; ``token()`` is the ``cancel`` callable handed to engine functions."""

    def __init__(self):
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def __call__(self) -> bool:
        return self._event.is_set()


@dataclass
class _JobRecord:
    id: int
    channel: str
    description: str
    token: CancelToken
    on_done: Callable[[Any], None] | None
    on_error: Callable[[BaseException], None] | None
    progress: float = 0.0
    message: str = ""
    started: bool = False
    extra: dict = field(default_factory=dict)


class _CollectOnGuiThread:
    """While any job runs, Python's cyclic garbage collector runs only on the GUI thread.

    Automatic collection runs in whichever thread happens to allocate; a collection in a worker
    thread that frees a Qt wrapper runs its C++ destructor there, which can wait on a lock the GUI
    thread holds while the GUI thread waits for the interpreter lock the worker holds: a hang (a
    fresh-clone test run hung so, the worker inside pydantic, the GUI thread in an event filter).
    So the first job to start switches automatic collection off, a GUI-thread timer collects
    meanwhile, and the GUI thread switches it back on when the last job has ended.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self.running = 0
        self._restore = False

    def enter(self) -> None:  # worker thread, before the job
        with self._lock:
            if self.running == 0:
                self._restore = self._restore or gc.isenabled()  # still owed from a job just ended: keep the debt
                gc.disable()
            self.running += 1

    def leave(self) -> None:  # worker thread, after the job
        with self._lock:
            self.running -= 1
            last = self.running == 0
        app = QCoreApplication.instance()
        if last and app is not None:  # the GUI thread switches collection back on (even if the manager is gone)
            QTimer.singleShot(0, app, self.settle)

    def settle(self) -> None:
        """GUI thread: collect the young generations; once no job runs, switch automatic collection back on
        (nothing to do when it is on). Never a full collection here: with torch and a CNN's tiles loaded it
        walks ~430k objects, 0.18 s on the GUI thread after every job; the automatic collector does the old
        generation at its own (rare) thresholds once it is on again."""
        with self._lock:
            running, restore = self.running, self._restore
        if running or restore:
            gc.collect(1)
        if not running and restore:
            with self._lock:
                if self.running == 0 and self._restore:
                    gc.enable()
                    self._restore = False


COLLECTOR = _CollectOnGuiThread()
COLLECT_INTERVAL_MS = 2000
IDLE_RELEASE_MS = 60_000  # after this long with no job at all the heap's free pages go back to the OS (the next job then pays page faults)


class _Relay(QObject):
    """Lives in the GUI thread; worker threads emit through it (queued connections)."""

    started = Signal(int)
    progressed = Signal(int, float, str)
    finished = Signal(int, object)
    failed = Signal(int, object, str)


class _Runnable(QRunnable):
    def __init__(self, rec: _JobRecord, fn: Callable, relay: _Relay):
        super().__init__()
        self.setAutoDelete(True)
        self._rec, self._fn, self._relay = rec, fn, relay

    def run(self) -> None:  # worker thread
        rec, relay = self._rec, self._relay
        if rec.token.cancelled:
            relay.failed.emit(rec.id, CancelledError("cancelled before it started"), "")
            return
        relay.started.emit(rec.id)

        def progress(frac: float, message: str = "") -> None:
            if rec.token.cancelled:
                raise CancelledError(f"{rec.description} was cancelled.")
            relay.progressed.emit(rec.id, float(frac), str(message))

        COLLECTOR.enter()
        error = None
        try:
            result = self._fn(progress, rec.token)
            if rec.token.cancelled:
                raise CancelledError(f"{rec.description} was cancelled.")
        except BaseException as exc:  # noqa: BLE001 - every error goes to the GUI, never kills the thread
            error = (exc, "" if isinstance(exc, SplineAtlasError) else traceback.format_exc())
        finally:
            COLLECTOR.leave()  # before the result is sent: the GUI thread, receiving it, may switch collection back on
        if error is not None:
            relay.failed.emit(rec.id, *error)
        else:
            relay.finished.emit(rec.id, result)


_LIVE: weakref.WeakSet = weakref.WeakSet()  # every WorkManager not yet collected (for shutdown_all)


def shutdown_all() -> None:
    """Cancel every live WorkManager's jobs and wait for its threads. Called when the app quits and when
    the test session ends: a worker thread still inside a torch op when the interpreter finalizes would take
    the GIL back in a noexcept frame, and the process aborts ("terminate called without an active
    exception") after every test has passed."""
    for manager in list(_LIVE):
        try:
            manager.shutdown()
        except RuntimeError:  # its Qt object is gone already: so are its threads
            pass


class WorkManager(QObject):
    """Runs engine work off the GUI thread. Signals (GUI thread):

    - ``activity(busy: bool, fraction: float, message: str)``: summary of what is running, for the status bar.
    - ``error(description: str, exc: BaseException, traceback: str)``: a job failed (not for cancellations)
      and had no ``on_error`` of its own.
    """

    activity = Signal(bool, float, str)
    error = Signal(str, object, str)

    def __init__(self, parent: QObject | None = None, max_threads: int = 2):
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(max(1, max_threads))
        self._relay = _Relay(self)
        self._relay.started.connect(self._on_started)
        self._relay.progressed.connect(self._on_progress)
        self._relay.finished.connect(self._on_finished)
        self._relay.failed.connect(self._on_failed)
        self._jobs: dict[int, _JobRecord] = {}
        self._ids = itertools.count(1)
        self._collect = QTimer(self)  # cyclic garbage is collected here, on the GUI thread (see COLLECTOR)
        self._collect.setInterval(COLLECT_INTERVAL_MS)
        self._collect.timeout.connect(COLLECTOR.settle)
        self._collect.start()
        # the process keeps freed memory for the next job (geometry.heap.reuse_freed_memory); a pause gives it back
        self._release = QTimer(self)
        self._release.setSingleShot(True)
        self._release.setInterval(IDLE_RELEASE_MS)
        self._release.timeout.connect(self._release_when_idle)
        _LIVE.add(self)

    # -- API -----------------------------------------------------------------------------------
    def submit(
        self,
        channel: str,
        description: str,
        fn: Callable[[Callable, Callable], Any],
        on_done: Callable[[Any], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        supersede: bool = True,
    ) -> int:
        """Queue ``fn(progress, cancel)``; returns the job id. ``supersede`` cancels older jobs of the channel."""
        if supersede:
            self.cancel(channel)
        rec = _JobRecord(next(self._ids), channel, description, CancelToken(), on_done, on_error)
        self._jobs[rec.id] = rec
        # newer jobs get higher priority: the pool starts the newest request first
        self.pool.start(_Runnable(rec, fn, self._relay), priority=min(rec.id, 2**31 - 1))
        self._emit_activity()
        return rec.id

    def cancel(self, channel: str | None = None) -> int:
        """Cancel the jobs of ``channel`` (all channels if None); returns how many were cancelled."""
        n = 0
        for rec in list(self._jobs.values()):
            if channel is None or rec.channel == channel:
                if not rec.token.cancelled:
                    rec.token.cancel()
                    n += 1
        self._emit_activity()
        return n

    def busy(self, channel: str | None = None) -> bool:
        return any(not r.token.cancelled and (channel is None or r.channel == channel) for r in self._jobs.values())

    def pending(self, channel: str | None = None) -> list[str]:
        return [r.description for r in self._jobs.values() if channel is None or r.channel == channel]

    def wait(self, msecs: int = 30000) -> bool:
        """Block until the pool is idle (tests and shutdown only)."""
        return self.pool.waitForDone(msecs)

    def shutdown(self) -> None:
        self.cancel()
        self.pool.clear()
        self.pool.waitForDone(5000)
        COLLECTOR.settle()

    # -- relay handlers (GUI thread) -------------------------------------------------------------
    def _on_started(self, job_id: int) -> None:
        rec = self._jobs.get(job_id)
        if rec is not None:
            rec.started = True
            self._emit_activity()

    def _on_progress(self, job_id: int, frac: float, message: str) -> None:
        rec = self._jobs.get(job_id)
        if rec is not None and not rec.token.cancelled:
            rec.progress, rec.message = frac, message
            self._emit_activity()

    def _on_finished(self, job_id: int, result: Any) -> None:
        rec = self._jobs.pop(job_id, None)
        COLLECTOR.settle()
        self._emit_activity()
        if rec is None or rec.token.cancelled or rec.on_done is None:
            return
        try:
            rec.on_done(result)
        except Exception as exc:  # noqa: BLE001 - a display bug must not crash the window
            self.error.emit(f"showing {rec.description}", exc, traceback.format_exc())

    def _on_failed(self, job_id: int, exc: BaseException, tb: str) -> None:
        rec = self._jobs.pop(job_id, None)
        COLLECTOR.settle()
        self._emit_activity()
        if rec is None or isinstance(exc, CancelledError) or rec.token.cancelled:
            return
        if rec.on_error is not None:
            try:
                rec.on_error(exc)
                return
            except Exception as exc2:  # noqa: BLE001
                exc, tb = exc2, traceback.format_exc()
        self.error.emit(rec.description, exc, tb)

    def _release_when_idle(self) -> None:
        if not self._jobs and self.pool.activeThreadCount() == 0:
            release_free_memory()

    def _emit_activity(self) -> None:
        if self._jobs:
            self._release.stop()
        else:
            self._release.start()
        live = [r for r in self._jobs.values() if not r.token.cancelled]
        if not live:
            self.activity.emit(False, 0.0, "")
            return
        running = [r for r in live if r.started] or live
        rec = max(running, key=lambda r: r.id)
        text = rec.description + (f": {rec.message}" if rec.message else "")
        if len(live) > 1:
            text += f"  (+{len(live) - 1} queued)"
        self.activity.emit(True, rec.progress, text)
