"""The window's controller: turns changes of the viewer state into engine jobs (in workers) and writes what
they return into the Qt-free :class:`~app.model.results.Results`.

It owns no widget. The window builds it with the state, the results, the worker pool and the cache, and
hands the same objects to every widget; widgets draw from state + results and never call the engine.
Every job it submits is a function of :mod:`app.jobs` with the defaults the CLI twins use.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np
from PySide6.QtCore import QObject, QTimer

from geometry.errors import SplineAtlasError, UnsafePickleError
from geometry.foliation.local_data_matrix import trace_over_run
from geometry.power_diagram import slice_power_diagram
from geometry.safe_io import printable
from geometry.tessellation import has_slope_norms

from .. import jobs
from ..jobs.paths import LEAF_KINDS
from ..model.results import Results, Tiles
from ..model.session import read_session, save_session
from ..model.state import PATH_NAMES, SliceChoice, ViewerState

TESSELLATE_DEBOUNCE_MS = 80  # a burst of slider/zoom changes starts one tessellation, not many
# (a change after a quiet spell starts at once: only the changes that follow it within this time wait)
TRACE_OVER_RUN_POINTS = 256
MAX_REMOVED = 64  # traced results of deleted paths kept for Ctrl+Z


def sites_in_view_text(sites, window, depth: int) -> str:
    """How many power-diagram sites the view shows: a site is a tile's centroid μ projected into the slice, and
    most lie far outside the window (a view with one site in it is right, not broken)."""
    s = np.asarray(sites, dtype=np.float64).reshape(-1, 2)
    u0, u1, v0, v1 = window
    n = int(((s[:, 0] >= u0) & (s[:, 0] <= u1) & (s[:, 1] >= v0) & (s[:, 1] <= v1)).sum())
    return (
        f"{n:,} of {len(s):,} power-diagram sites of layer {depth} lie in the view; a site is its tile's centroid μ "
        f"projected into the slice, and most lie outside the window (zoom out to see them)"
    )


class Controller(QObject):
    """State changes in, jobs out, results back. ``confirm_trust(path, exc) -> bool`` asks the user whether a
    file may run code; ``restore_view3d(dict)`` applies a session's 3D part (both given by the window)."""

    def __init__(
        self,
        state: ViewerState,
        results: Results,
        work,
        cache,
        parent: QObject | None = None,
        confirm_trust: Callable[[str, Exception], bool] = lambda path, exc: False,
        restore_view3d: Callable[[dict], None] | None = None,
    ):
        super().__init__(parent)
        self.state, self.results, self.work, self.cache = state, results, work, cache
        self.confirm_trust = confirm_trust
        self.restore_view3d = restore_view3d
        self._pending_session: dict | None = None
        self._removed: dict = {}  # path id -> PathResult of recently deleted paths (for undo)
        self._shown: Tiles | None = None  # the exact tiles shown last (kept when another epoch's are pending)
        self.tess_timer = QTimer(self)
        self.tess_timer.setSingleShot(True)
        self.tess_timer.setInterval(TESSELLATE_DEBOUNCE_MS)
        self.tess_timer.timeout.connect(self.request_tessellation)
        self._last_schedule = -1.0  # time.monotonic() of the last schedule_tessellation
        self._inflight_key: str | None = None  # the tiles the running tessellation job computes
        ev = state.events
        ev.slice.connect(self._on_slice)
        ev.epoch_index.connect(lambda _: self.schedule_tessellation())
        ev.window.connect(lambda _: self.schedule_tessellation())
        ev.settings.connect(lambda _: (self.schedule_tessellation(), self.update_sites()))
        ev.depth.connect(lambda _: self.update_sites())
        ev.color_mode.connect(lambda _: self.request_slopes())
        ev.inspected.connect(self._on_inspected)
        ev.paths.connect(self._on_paths)

    # -- the open run ------------------------------------------------------------------------------
    @property
    def bundle(self) -> jobs.RunBundle | None:
        return self.results.bundle

    def set_status(self, text: str, error: bool = False) -> None:
        self.results.set_status(text, error)

    def open_path(self, path: str | Path, trust_code: bool = False, model=None) -> None:
        """Open a run, checkpoint or run folder in a worker; a file whose loading would run code is opened
        only after ``confirm_trust`` says yes; whatever fails, the run already open stays. ``model``: a
        user_model.ModelRef, the architecture of its checkpoints (File > Open with your model class)."""
        from geometry.networks.user_model import using_model

        path = str(path)
        self.set_status(f"Opening {printable(path, 120)} …")

        def failed(exc) -> None:
            if isinstance(exc, UnsafePickleError) and not trust_code and self.confirm_trust(path, exc):
                self.open_path(path, trust_code=True, model=model)
            else:
                self.results.report_error(f"Could not open {printable(path, 120)}", exc)

        def job(progress, cancel):
            with using_model(model):  # the worker's own context; the opened Run keeps the class for later reads
                return jobs.open_run_bundle(path, progress, cancel, trust_code)

        self.work.submit(
            "open",
            f"Opening {printable(Path(path).name, 60)}",
            job,
            on_done=self._on_run_opened,
            on_error=failed,
        )

    def open_session(self, path: str | Path) -> bool:
        """Read a session file, open its run, then restore slice, sliders, paths and view settings."""
        try:
            data = read_session(path)
        except SplineAtlasError as exc:
            self.results.report_error(f"Could not open session {path}", exc)
            return False
        if not data.get("run"):
            self.results.report_error("Session has no run", "This session file names no run to open.")
            return False
        run = Path(data["run"])
        if not run.is_absolute():
            run = (Path(path).parent / run).resolve()
        self._pending_session = data
        self.work.submit(
            "open",
            f"Opening {run.name}",
            lambda progress, cancel: jobs.open_run_bundle(run, progress, cancel),
            on_done=self._on_run_opened,
            on_error=lambda exc: self.results.report_error(f"Could not open the session's run {run}", exc),
        )
        return True

    def save_session(self, path: str | Path, view3d: dict | None = None) -> bool:
        try:
            save_session(self.state, path, view3d)
        except OSError as exc:
            self.results.report_error("Could not save the session", exc)
            return False
        self.set_status(f"Session saved to {path}")
        return True

    def _on_run_opened(self, bundle: jobs.RunBundle) -> None:
        self.work.cancel("region-stats")
        self._shown = None
        # results first: the widgets learn the new run's epochs before the state announces its epoch index
        self.results.set_bundle(bundle)
        self.state.set_run(str(Path(bundle.path).resolve()), len(bundle.run), bundle.depth)
        if not bundle.piecewise_affine:
            self.set_status("This network has smooth layers: exact tiles are not available; showing predictions.")
        session, self._pending_session = self._pending_session, None
        if session is not None and session.get("slice"):
            self.state.apply_session(session)
            if session.get("view3d") and self.restore_view3d is not None:
                try:
                    self.restore_view3d(session["view3d"])
                except SplineAtlasError as exc:
                    self.results.report_error("The session's 3D view could not be restored", exc)
        else:
            self.request_slice(jobs.default_slice_choice(bundle))

    def request_slice(self, choice: SliceChoice) -> None:
        """Build the slice for ``choice`` in a worker (:func:`app.jobs.make_slice`), then make it current."""
        bundle, epoch = self.bundle, self.state.epoch_index
        if bundle is None:
            return
        self.work.submit(
            "slice",
            "Preparing the slice",
            lambda progress, cancel: jobs.make_slice(bundle, choice, epoch, progress=progress, cancel=cancel),
            on_done=lambda res: self.state.set_slice(res[0], choice, res[1]),
            on_error=lambda exc: self.results.report_error("Could not make that slice", exc),
        )

    def _on_slice(self, sl) -> None:
        self._shown = None
        self.results.set_tiles(None)
        if sl is not None:  # the paths stay: they live in input space and are seen in the new slice
            self.results.set_paths({pid: None if r is None else r.in_slice(sl) for pid, r in self.results.paths.items()})

    # -- tessellation ------------------------------------------------------------------------------
    def _key(self, epoch_index: int) -> str:
        st = self.state
        return jobs.tessellation_key(self.bundle, epoch_index, st.slice, st.window, st.settings.max_regions)

    def _cover_key(self, epoch_index: int) -> str | None:
        """The key of the home view's precomputed cover (``splineatlas precompute``), when the view is one."""
        st = self.state
        cover = st.home_cover
        return None if cover is None else jobs.tessellation_key(self.bundle, epoch_index, st.slice, cover, st.settings.max_regions)

    def _exact(self) -> bool:
        b = self.bundle
        return b is not None and self.state.slice is not None and b.piecewise_affine

    def schedule_tessellation(self) -> None:
        """Show the tiles at once from the memory cache when possible (instant scrubbing); else compute them
        after a short debounce."""
        if self._exact():
            st = self.state
            for key, window in ((self._key(st.epoch_index), st.window), (self._cover_key(st.epoch_index), st.home_cover)):
                hit = self.cache.peek(key) if key is not None else None
                if hit is not None:
                    self.tess_timer.stop()
                    self.work.cancel("tessellation")
                    if self.results.tiles is None or key != self.results.tiles.key:
                        self._on_tessellation(key, hit, st.epoch_index, tuple(window))
                    return
        now = time.monotonic()
        quiet = not self.tess_timer.isActive() and now - self._last_schedule > TESSELLATE_DEBOUNCE_MS / 1000
        self._last_schedule = now
        if quiet:  # one change (a key press, a click on the slider): no reason to wait
            self.request_tessellation()
        self.tess_timer.start()  # the last change of a burst (a drag) starts when the burst is over

    def playback_ready(self) -> bool:
        """Playback steps only when the current frame is drawn and the next one is pre-computed."""
        return not (self.work.busy("tessellation") or self.work.busy("prefetch") or self.tess_timer.isActive())

    def cancel_all(self) -> None:
        """Cancel every running job and the debounced tessellation that has not started yet; when the tiles of
        another epoch were taken down for this one, go back to that epoch (the slider follows)."""
        self.tess_timer.stop()
        self.work.cancel()
        st, shown = self.state, self._shown
        if self.results.tiles is None and shown is not None and shown.epoch_index != st.epoch_index and np.allclose(shown.window, st.window):
            st.set_epoch_index(shown.epoch_index)

    def request_tessellation(self) -> None:
        """Compute (or fetch from the cache) the exact tiles of the visible window at the current epoch."""
        b, st = self.bundle, self.state
        if b is None or st.slice is None:
            return
        epoch, sl, window, budget = st.epoch_index, st.slice, tuple(st.window), st.settings.max_regions
        if not b.piecewise_affine:
            self._request_preview(epoch, sl, window)
            return
        key, cover_key, cover = self._key(epoch), self._cover_key(epoch), st.home_cover
        tiles = self.results.tiles
        if tiles is not None and tiles.key in (key, cover_key):
            return
        hit = self.cache.peek(key)
        if hit is not None:
            self._on_tessellation(key, hit, epoch, window)
            return
        if key == self._inflight_key and self.work.busy("tessellation"):
            return  # already on its way (the change started it at once; the debounce ends with nothing new)
        slopes = self._slopes_shown()
        self.work.cancel("slopes")  # of tiles that are leaving the screen
        if tiles is not None and tiles.epoch_index != epoch:
            # another epoch's tiles are on screen: take them down, so the view shows this epoch's preview
            # (labelled in the status bar) until its exact tiles arrive, never the old picture
            self.results.set_tiles(None)
        self._request_preview(epoch, sl, window)
        cache = self.cache

        def job(progress, cancel):
            if cover_key is not None and cover_key in cache:  # precomputed (splineatlas precompute): read it
                found = cache.get(cover_key)
                if found is not None:
                    return cover_key, found, cover
            return key, jobs.tessellate_all(b, epoch, sl, window, budget, cache, progress, cancel, slopes=slopes), window

        self._inflight_key = key
        self.work.submit(
            "tessellation",
            f"Tessellating epoch {b.epochs[epoch]}",
            job,
            on_done=lambda res: self._on_tessellation(res[0], res[1], epoch, res[2]),
            on_error=self._on_tessellation_error,
        )

    def _request_preview(self, epoch, sl, window) -> None:
        b = self.bundle
        self.work.submit("preview", "Predicting classes", lambda progress, cancel: jobs.class_map(b, epoch, sl, window), on_done=self.results.set_preview)

    def _on_tessellation(self, key: str, tess: list, epoch: int, window) -> None:
        if self.state.slice is None or key not in (self._key(epoch), self._cover_key(epoch)):
            return  # a slice, window or budget that is no longer the view's
        tiles = Tiles(key, tess, epoch, tuple(float(w) for w in window), self.state.home_window)
        self._shown = tiles
        self.results.set_tiles(tiles)
        self.update_region_counts()
        self._prefetch_next()
        t = tess[-1]
        where = " (the precomputed home view, widened to 2:1)" if key != self._key(epoch) else ""
        note = jobs.budget_note(t)
        split = f" · {note} (memory budget)" if note else ""
        self.set_status(
            f"{t.num_regions:,} regions at full depth{where} · {len(t.boundary_segments):,} boundary segments · {t.seconds:.2f} s ({t.device}){split}"
        )
        self.update_sites()
        if self.state.inspected is not None and self.results.point_report is not None:
            self.inspect(self.state.inspected)  # the report's region and tile count follow the new tiles
        self.request_slopes()

    def _slopes_shown(self) -> bool:
        """Whether the view shows every tile's ||A_w||_2 (the slope colouring): only then are they computed
        with the tiles; other colourings skip them (most of a CNN's tessellation time)."""
        return self.state.color_mode == "slope"

    def request_slopes(self) -> None:
        """When the slope colouring is on and the tiles on screen lack their ||A_w||_2, compute them (only
        them: the cached tiles are upgraded in place) and show the tiles again. Until then the slope
        colouring draws the tiles in the unknown colour without a colour bar, and the status says why."""
        tiles, b, st = self.results.tiles, self.bundle, self.state
        if tiles is None or b is None or st.slice is None or not self._slopes_shown() or has_slope_norms(tiles.by_depth[-1]):
            return
        key, epoch, window, sl, budget, cache = tiles.key, tiles.epoch_index, tiles.window, st.slice, st.settings.max_regions, self.cache
        n = tiles.by_depth[-1].num_regions
        self.set_status(f"Computing ‖A_ω‖₂ of {n:,} tiles (epoch {b.epochs[epoch]}) …")
        self.work.submit(
            "slopes",
            f"Slope norms of epoch {b.epochs[epoch]}",
            lambda progress, cancel: jobs.tessellate_all(b, epoch, sl, window, budget, cache, progress, cancel, slopes=True),
            on_done=lambda res: self._on_slopes(key, res),
            on_error=lambda exc: self.results.report_error("Could not compute the slope norms", exc),
        )

    def _on_slopes(self, key: str, tess: list) -> None:
        tiles = self.results.tiles
        if tiles is None or tiles.key != key:
            return  # the view moved on while they were computed (they stay in the cache)
        self._shown = replace(tiles, by_depth=tess)
        self.results.set_tiles(self._shown)
        self.set_status(f"‖A_ω‖₂ of {tess[-1].num_regions:,} tiles, epoch {self.bundle.epochs[tiles.epoch_index]}")

    def _on_tessellation_error(self, exc: BaseException) -> None:
        self.results.set_tiles(None, str(exc))
        self.set_status(f"Exact tiles unavailable: {exc}", error=True)

    def _prefetch_next(self) -> None:
        """While playing, tessellate the next epoch into the cache (the second worker) so the next frame is a hit."""
        b, st = self.bundle, self.state
        if not st.playing or b is None or st.slice is None or st.epoch_index + 1 >= st.n_epochs:
            return
        nxt, sl, window, budget, cache = st.epoch_index + 1, st.slice, st.window, st.settings.max_regions, self.cache
        cover_key = self._cover_key(nxt)
        if cache.peek(self._key(nxt)) is not None or (cover_key is not None and cover_key in cache):
            return
        slopes = self._slopes_shown()
        self.work.submit(
            "prefetch",
            f"Pre-computing epoch {b.epochs[nxt]}",
            lambda progress, cancel: jobs.tessellate_all(b, nxt, sl, window, budget, cache, progress, cancel, slopes=slopes),
        )

    def update_region_counts(self) -> None:
        b, st = self.bundle, self.state
        if b is not None and st.slice is not None:
            self.results.set_region_counts(jobs.cached_region_counts(b, st.slice, st.window, st.settings.max_regions, self.cache))

    def tessellate_every_epoch(self) -> None:
        b, st = self.bundle, self.state
        if b is None or st.slice is None:
            return
        sl, window, budget, cache = st.slice, st.window, st.settings.max_regions, self.cache
        self.work.submit(
            "tessellate-all",
            "Tessellating every epoch",
            lambda progress, cancel: jobs.tessellate_every_epoch(b, sl, window, budget, cache, progress, cancel),
            on_done=lambda counts: self.update_region_counts(),
            on_error=lambda exc: self.results.report_error("Could not tessellate every epoch", exc),
        )

    def precompute_every_epoch(self) -> None:
        """Tessellate the view at every checkpoint as Dask tasks (a local cluster, one worker process per free
        core) into the disk cache, then read the counts back: ``splineatlas precompute --domain`` of this view."""
        from app.jobs.precompute import plan_precompute, run_precompute

        b, st = self.bundle, self.state
        if b is None or st.slice is None:
            return
        if self.cache.folder is None:
            self.results.report_error("Could not precompute", SplineAtlasError("this window keeps results in memory only; precompute needs its disk cache"))
            return
        sl, window, budget, cache = st.slice, st.window, st.settings.max_regions, self.cache

        def job(progress, cancel):
            plan = plan_precompute(b, sl, window, budget, cache.folder)
            if plan.tessellations:
                run_precompute(plan, progress=lambda f, m: progress(0.95 * f, f"{m} on a local Dask cluster"), cancel=cancel)
            return jobs.tessellate_every_epoch(b, sl, window, budget, cache, cancel=cancel)  # cache hits now: the counts

        self.work.submit(
            "tessellate-all",
            "Precomputing every epoch on all cores",
            job,
            on_done=lambda counts: self.update_region_counts(),
            on_error=lambda exc: self.results.report_error("Could not precompute every epoch", exc),
        )

    def follow_inspected(self) -> None:
        """Follow the inspected point's tile over every checkpoint (``splineatlas follow``'s job)."""
        from app.jobs.follow import follow_region

        b, st = self.bundle, self.state
        if b is None or st.slice is None:
            return
        if st.inspected is None:
            self.set_status("Inspect a point first (click it with Inspect), then Follow", error=True)
            return
        sl, window, budget, cache, u = st.slice, st.window, st.settings.max_regions, self.cache, st.inspected
        self.work.submit(
            "follow",
            "Following the inspected tile over training",
            lambda progress, cancel: follow_region(b, sl, window, u, budget, cache, progress, cancel),
            on_done=self.results.set_region_track,
            on_error=lambda exc: self.results.report_error("Could not follow the tile", exc),
        )

    def trace_over_run(self) -> None:
        b = self.bundle
        if b is None:
            return
        self.work.submit(
            "trace-over-run",
            "Mean Tr G over training",
            lambda progress, cancel: trace_over_run(b.locked_run(), max_points=TRACE_OVER_RUN_POINTS, progress=progress, cancel=cancel),
            on_done=self.results.events.trace_over_run.emit,
            on_error=lambda exc: self.results.report_error("Could not compute Tr G over training", exc),
        )

    # -- power-diagram sites -----------------------------------------------------------------------
    def update_sites(self) -> None:
        """Power-diagram sites of layer ``depth`` for the tiles at that depth (computed once, in a worker)."""
        st, tiles, b = self.state, self.results.tiles, self.bundle
        if not st.settings.show_sites or tiles is None or b is None or not b.piecewise_affine:
            self.results.events.sites.emit(None)
            return
        depth = min(st.depth, len(tiles.by_depth))
        key = (tiles.key, depth)
        if key in self.results.sites:
            self.results.events.sites.emit(self.results.sites[key])
            return
        self.results.events.sites.emit(None)
        t, epoch = tiles.by_depth[depth - 1], tiles.epoch_index

        def done(sites) -> None:
            cur = self.results.tiles
            if cur is not None and (cur.key, min(self.state.depth, len(cur.by_depth))) == key:
                self.results.add_sites(key, sites)
                self.set_status(sites_in_view_text(sites, self.state.window, depth))

        self.work.submit(
            "sites",
            f"Power-diagram sites of layer {depth}",
            lambda progress, cancel: slice_power_diagram(b.network(epoch), t, [depth - 1], progress=progress, cancel=cancel).sites[0],
            on_done=done,
        )

    # -- the inspected point -----------------------------------------------------------------------
    def _on_inspected(self, p) -> None:
        self.results.set_point_report(None)
        self.results.set_region_info(None)
        if p is not None:
            self.inspect(p)

    def inspect(self, p) -> None:
        """The inspector's report (fast) and the region's geometry (LPs, QP: slow) of slice point ``p``."""
        b, st = self.bundle, self.state
        if b is None or st.slice is None:
            return
        epoch, sl, depth = st.epoch_index, st.slice, st.depth
        tiles = self.results.tiles
        tess = tiles.by_depth if tiles is not None and tiles.epoch_index == epoch else None
        self.work.submit(
            "inspect",
            "Inspecting the point",
            lambda progress, cancel: jobs.inspect_point(b, epoch, sl, p, depth, tess, progress, cancel),
            on_done=lambda rep: self._on_report(p, rep),
            on_error=lambda exc: self.results.report_error("Could not inspect that point", exc),
        )
        if b.piecewise_affine:
            x = sl.to_input(np.asarray(p, np.float64)[None])[0]
            self.work.submit(
                "inspect-region",
                "Region geometry (LPs, QP)",
                lambda progress, cancel: jobs.region_geometry(b, epoch, x, progress, cancel),
                on_done=lambda info: self._on_region_info(p, info),
                on_error=lambda exc: self._on_region_info(p, {"error": str(exc)}),
            )

    def _on_report(self, p, rep) -> None:
        if self.state.inspected == p:
            self.results.set_point_report(rep)

    def _on_region_info(self, p, info: dict) -> None:
        if self.state.inspected == p:  # else stale: the user clicked elsewhere
            self.results.set_region_info(info)

    # -- paths -------------------------------------------------------------------------------------
    def _on_paths(self, paths) -> None:
        live = {p.id for p in paths}
        for pid, r in self.results.paths.items():
            if pid not in live and r is not None:
                self._removed[pid] = r  # an undo brings the path back without tracing it again
        while len(self._removed) > MAX_REMOVED:
            self._removed.pop(next(iter(self._removed)))
        results = {pid: r for pid, r in self.results.paths.items() if pid in live}
        for pid in live - set(results):
            if pid in self._removed and self.state.slice is not None:
                results[pid] = self._removed.pop(pid).in_slice(self.state.slice)
        if self.bundle is None or self.state.slice is None:
            self.results.set_paths(results)
            return
        batches: dict[tuple, list] = {}
        for spec in paths:
            if spec.id in results:
                continue
            results[spec.id] = None
            # leaf paths of one kind, epoch and budget are one engine batch; other kinds are traced one by one
            key = (spec.kind, spec.epoch_index, spec.steps, spec.step_size) if spec.kind in LEAF_KINDS else (spec.id,)
            batches.setdefault(key, []).append(spec)
        self.results.set_paths(results)
        for specs in batches.values():
            self._trace(specs)

    def _trace(self, specs: list) -> None:
        b, sl = self.bundle, self.state.slice
        ids = [sp.id for sp in specs]
        what = f"{PATH_NAMES[specs[0].kind]} #{ids[0]}" if len(ids) == 1 else f"{len(ids)} {PATH_NAMES[specs[0].kind]}s #{ids[0]}–#{ids[-1]}"
        self.work.submit(
            f"path-{ids[0]}",
            f"Tracing {what}",
            lambda progress, cancel: jobs.compute_paths(b, sl, specs, progress, cancel),
            on_done=lambda res: self._on_traced(sl, res),
            on_error=lambda exc: self._on_trace_error(ids, exc),
            supersede=False,
        )

    def _on_traced(self, sl, res: dict) -> None:
        """{path id: PathResult} of one job, seen in the current slice; paths deleted meanwhile are dropped."""
        cur = self.state.slice
        live = {p.id for p in self.state.paths}
        new = {pid: (r if cur is sl else r.in_slice(cur)) for pid, r in res.items() if pid in live and cur is not None}
        self.results.set_paths({**self.results.paths, **new})

    def _on_trace_error(self, ids: list, exc: BaseException) -> None:
        for pid in ids:
            self.state.remove_path(pid)
        self.results.report_error("Could not trace that path" if len(ids) == 1 else f"Could not trace those {len(ids)} paths", exc)

    # -- region statistics -------------------------------------------------------------------------
    def region_stats_available(self) -> tuple[bool, str]:
        b = self.bundle
        if b is None:
            return False, "Regions: open a run with a dataset to compute the statistics."
        if not b.piecewise_affine:
            return False, "Regions: this network has smooth layers, so it has no linear regions."
        if b.dataset is None:
            return False, "Regions: this run names no dataset (the statistics need train and test points)."
        return True, "Regions: no statistics yet. Choose the sets and press Compute (current checkpoint)."

    def compute_region_stats(self, n: int, sets, active: bool, on_failed: Callable[[BaseException], None]) -> None:
        """Region statistics (Chebyshev radii, active bits) of train / test / DeepFool points, current checkpoint."""
        b = self.bundle
        if b is None:
            return
        epoch = self.state.epoch_index
        sets = tuple(sets)

        def failed(exc) -> None:
            on_failed(exc)
            self.results.report_error("Could not compute the region statistics", exc)

        def done(res) -> None:
            if b is not self.bundle:
                return  # another run was opened meanwhile
            self.results.set_region_stats(res)
            s = res.stats.summary()
            self.set_status(
                "Region statistics: "
                + ", ".join(f"{k} mean radius {v['radius']['mean']:.3g}" if v["radius"]["mean"] is not None else f"{k}: no radius" for k, v in s.items())
            )

        self.work.submit(
            "region-stats",
            f"Region statistics, epoch {b.epochs[epoch]}",
            lambda progress, cancel: jobs.region_stats(b, epoch, int(n), sets, bool(active), progress=progress, cancel=cancel),
            on_done=done,
            on_error=failed,
        )


__all__ = ["Controller"]
