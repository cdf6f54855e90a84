"""What was computed for the view, Qt-free and observable: the results the window's controller writes and
its widgets (2D and 3D tabs, inspector, paths and regions tabs, export dialog, status bar) read.

Results live here, not on widgets, so a widget needs only the model objects it is handed, a headless test
can check what the window would show, and an export draws exactly what the window holds. Every field is a
read-only property; ``set_*`` methods change it and emit the matching event on :attr:`Results.events`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from psygnal import Signal, SignalGroup

from app.model.state import home_cover

MAX_SITE_SETS = 48  # power-diagram site sets kept in memory (one per tessellation and depth)


@dataclass(frozen=True, eq=False)
class Tiles:
    """The exact tessellation on screen: ``by_depth`` (Tessellation2D at depths 1..L) of ``window`` of the
    current slice at checkpoint ``epoch_index``, cached under ``key``."""

    key: str
    by_depth: list
    epoch_index: int
    window: tuple[float, float, float, float]  # the tessellated window: the view's, or its home cover's
    home: tuple[float, float, float, float] | None = None  # the slice's home window when they were made

    def shows(self, epoch_index: int, window) -> bool:
        """Whether these tiles are exactly the ones of ``epoch_index`` for a view of ``window``: its own
        tessellation, or the precomputed cover of a home view (:func:`app.model.state.home_cover`)."""
        if self.epoch_index != epoch_index:
            return False
        tol = 1e-12 * max(1.0, abs(self.window[1] - self.window[0]))
        if np.allclose(self.window, window, rtol=0, atol=tol):
            return True
        cover = home_cover(window, self.home) if self.home is not None else None
        return cover is not None and np.allclose(self.window, cover, rtol=0, atol=tol)


class ResultEvents(SignalGroup):
    bundle = Signal(object)  # RunBundle or None: a run was opened
    tiles = Signal(object)  # Tiles or None
    tiles_error = Signal(object)  # str or None
    preview = Signal(object)  # ClassMap or None
    sites = Signal(object)  # (R, 2) array or None: the sites of the tiles at the current depth
    paths = Signal(object)  # {path id: PathResult | None (tracing)}
    point_report = Signal(object)  # PointReport or None
    region_info = Signal(object)  # dict (LPs, QP) or None
    region_counts = Signal(object)  # (E,) full-depth region counts of the cached epochs
    region_stats = Signal(object)  # RegionStatsResult or None
    trace_over_run = Signal(object)
    region_track = Signal(object)  # RegionTrack: the inspected point's tile followed over the checkpoints
    comparison = Signal(object)  # Comparison or None: the Compare tab's two networks
    status = Signal(object)  # (text, is_error)
    error = Signal(object)  # (title, one-line text, exception, traceback text): something the user must be told


class Results:
    """Observable results of one window. Fields (read-only properties):

    bundle        RunBundle | None   the opened run
    tiles         Tiles | None       exact tiles on screen (None while another epoch's would be wrong)
    tiles_error   str | None         why the exact tiles of the view are unavailable
    preview       ClassMap | None    the forward-pass class map shown until exact tiles arrive
    sites         dict               (tiles key, depth) -> (R, 2) projected power-diagram sites
    paths         dict               path id -> PathResult (None while it is traced)
    point_report  PointReport | None the inspector's report of the inspected point
    region_info   dict | None        the inspected point's region geometry
    region_counts ndarray | None     full-depth region counts per epoch (NaN where not computed)
    region_stats  RegionStatsResult | None
    comparison    Comparison | None  the Compare tab's two networks on the current slice
    status        (str, bool)        the resting status line and whether it is an error
    """

    def __init__(self):
        self.events = ResultEvents()
        self.clear()
        self._status = ("Ready", False)
        self.last_error: str | None = None

    def clear(self) -> None:
        """Forget everything computed for the previous run (no events)."""
        self._bundle = None
        self._tiles: Tiles | None = None
        self._tiles_error: str | None = None
        self._preview = None
        self._sites: dict = {}
        self._paths: dict = {}
        self._point_report = None
        self._region_info = None
        self._region_counts = None
        self._region_stats = None
        self._region_track = None
        self._comparison = None

    bundle = property(lambda self: self._bundle)
    tiles = property(lambda self: self._tiles)
    tiles_error = property(lambda self: self._tiles_error)
    preview = property(lambda self: self._preview)
    sites = property(lambda self: self._sites)
    paths = property(lambda self: self._paths)
    point_report = property(lambda self: self._point_report)
    region_info = property(lambda self: self._region_info)
    region_counts = property(lambda self: self._region_counts)
    region_stats = property(lambda self: self._region_stats)
    comparison = property(lambda self: self._comparison)
    status = property(lambda self: self._status)

    def set_bundle(self, bundle) -> None:
        """A new run: every earlier result is dropped."""
        self.clear()
        self._bundle = bundle
        self.events.bundle.emit(bundle)
        for name in ("tiles", "preview", "point_report", "region_info", "region_stats", "region_track", "comparison"):
            getattr(self.events, name).emit(None)
        self.events.paths.emit(self._paths)

    def set_tiles(self, tiles: Tiles | None, error: str | None = None) -> None:
        self._tiles, self._tiles_error = tiles, error
        self.events.tiles.emit(tiles)
        self.events.tiles_error.emit(error)

    def set_preview(self, preview) -> None:
        self._preview = preview
        self.events.preview.emit(preview)

    def add_sites(self, key, sites) -> None:
        if len(self._sites) >= MAX_SITE_SETS:
            self._sites.clear()
        self._sites[key] = sites
        self.events.sites.emit(sites)

    def set_paths(self, paths: dict) -> None:
        self._paths = dict(paths)
        self.events.paths.emit(self._paths)

    def shown_paths(self, specs) -> list:
        """(spec, PathResult) of the paths that are drawn: visible and traced, in the order of ``specs`` (the
        state's paths). The 2D and 3D tabs and the exports all draw exactly these."""
        return [(spec, self._paths[spec.id]) for spec in specs if spec.visible and self._paths.get(spec.id) is not None]

    def set_point_report(self, report) -> None:
        self._point_report = report
        self.events.point_report.emit(report)

    def set_region_info(self, info) -> None:
        self._region_info = info
        self.events.region_info.emit(info)

    def set_region_counts(self, counts) -> None:
        self._region_counts = counts
        self.events.region_counts.emit(counts)

    region_track = property(lambda self: self._region_track)

    def set_region_track(self, track) -> None:
        """The tile followed over training (:class:`app.jobs.follow.RegionTrack`) or None."""
        self._region_track = track
        self.events.region_track.emit(track)

    def set_region_stats(self, res) -> None:
        self._region_stats = res
        self.events.region_stats.emit(res)

    def set_comparison(self, comparison) -> None:
        self._comparison = comparison
        self.events.comparison.emit(comparison)

    def set_status(self, text: str, error: bool = False) -> None:
        self._status = (str(text), bool(error))
        self.events.status.emit(self._status)

    def report_error(self, title: str, exc, tb: str = "") -> None:
        """Something failed: the status line says so and the window shows it."""
        from geometry.safe_io import printable

        text = printable(str(exc) if str(exc) else type(exc).__name__, 1000)
        self.last_error = f"{title}: {text}"
        self.set_status(self.last_error, error=True)
        self.events.error.emit((title, text, exc, tb))


__all__ = ["Results", "Tiles"]
