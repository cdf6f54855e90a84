"""The Qt-free viewer state of the Spline Atlas window (napari's split: model here, widgets observe it).

:class:`ViewerState` holds *what the user is looking at*: which run, which epoch and layer depth,
which slice of input space and which window of it, how tiles are coloured, the clicked point,
the pending picks of the current tool and the kept paths. It holds no computed results (those
live in the result cache) and imports no Qt, so it can be driven and tested headlessly.

Every field is a public read-only property; change it through the ``set_*`` methods, which
validate, clamp and emit one event on :attr:`ViewerState.events` only when the value changes.
The whole state round-trips through a JSON session file (:meth:`to_session` / :meth:`apply_session`,
read and written by :mod:`app.model.session`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np
from psygnal import Signal, SignalGroup

from geometry.slices import Slice

SESSION_VERSION = 1

COLOR_MODE_LABELS = {
    "class": "Predicted class",
    "slope": "‖A_ω‖ (slope norm)",
    "hash": "Activation-pattern hash",
    "layer": "Layer of origin",
    "density": "Hyperplane density (deepest layer shown)",
    "volume": "Volume change log √det(AᵀA)",
}
"""Tile colourings (``app.render.tiles``) and how menus, legends and ``--help`` name them."""
COLOR_MODES = tuple(COLOR_MODE_LABELS)

PICK_MODES = ("inspect", "slice", "horizontal", "normal", "region", "segment")
"""What a click in the 2D view does: inspect a point, pick 3 points for a slice, or start/end a path."""

PATH_KINDS = ("horizontal", "normal", "region", "segment")

PICKS_NEEDED = {"inspect": 1, "slice": 3, "horizontal": 2, "normal": 1, "region": 2, "segment": 2}
"""Number of clicks that complete an action in each pick mode."""

SLICE_KINDS = ("input", "points", "deepfool", "pca", "random", "clip3d")
"""How a slice is chosen (``app.jobs.slicing`` builds and spells them; "clip3d" is the 3D tab's clipping
plane, made by that tab)."""

DEFAULT_PATH_STEPS = 200
"""Step budget of a new leaf path (window setting, ``splineatlas path --steps``)."""
DEFAULT_STEP_FRACTION = 0.02
"""A leaf path's step as a fraction of its own length scale (see ``app.jobs.paths``)."""
LEAF_DTYPE = "float32"
"""Precision a leaf path runs the net in (its steps accumulate in float64; ``splineatlas path --dtype``):
1.3-1.4x the float64 rate on the CNNs (bench/paths.py --clicks); positions agree to ~1e-7 relative."""

MAX_UNDO = 50
"""Path edits that Ctrl+Z can undo."""

PATH_NAMES = {"horizontal": "horizontal leaf path", "normal": "normal leaf path", "region": "same-class region path", "segment": "straight segment"}


@dataclass(frozen=True)
class SliceChoice:
    """How the current slice was made, so a session can say it in words and rebuild it.

    kind: one of SLICE_KINDS; indices: dataset (train) indices of the defining points; seed: of the
    random directions (deepfool, random).
    """

    kind: str = "input"
    indices: tuple[int, ...] = ()
    seed: int = 0

    def __post_init__(self):
        if self.kind not in SLICE_KINDS:
            raise ValueError(f"slice kind must be one of {SLICE_KINDS}, got {self.kind!r}")
        object.__setattr__(self, "indices", tuple(int(i) for i in self.indices))


@dataclass(frozen=True)
class PathSpec:
    """A path the user asked for: its kind, its endpoints in slice coordinates and where it was computed.

    start, end: (2,) slice coordinates (end is None for normal paths). The computed points and
    diagnostics are results (cached by the window), not state.
    """

    id: int
    kind: str
    start: tuple[float, float]
    end: tuple[float, float] | None
    epoch_index: int
    visible: bool = True
    steps: int = DEFAULT_PATH_STEPS
    step_size: float = DEFAULT_STEP_FRACTION
    x_start: tuple[float, ...] | None = None  # the endpoints in input space: what is traced, whatever the slice
    x_end: tuple[float, ...] | None = None

    def in_slice(self, slice_: Slice) -> "PathSpec":
        """The same path seen in another slice (its input-space endpoints projected into it)."""
        if self.x_start is None:
            return self
        u = slice_.project(np.asarray([self.x_start] + ([self.x_end] if self.x_end is not None else []), np.float64))
        return replace(self, start=(float(u[0, 0]), float(u[0, 1])), end=None if self.x_end is None else (float(u[1, 0]), float(u[1, 1])))


@dataclass(frozen=True)
class Settings:
    """View and compute settings that change what is drawn or computed."""

    show_points: bool = True
    show_sites: bool = False
    show_boundary: bool = True
    show_edges: bool = True
    show_legend: bool = True
    log_epochs: bool = False  # the Training tab's epoch axis is logarithmic (epoch 0 drawn at 1)
    max_regions: int = 200_000
    play_fps: float = 4.0
    path_steps: int = DEFAULT_PATH_STEPS
    path_step_size: float = DEFAULT_STEP_FRACTION
    threads: int = 0  # CPU threads of the engine; 0: the cores not busy with other work (the CLI's --threads)


class StateEvents(SignalGroup):
    """Signals of :class:`ViewerState`; each carries the new value."""

    run = Signal(object)  # run path (str) or None
    epoch_index = Signal(int)
    depth = Signal(int)
    slice = Signal(object)  # Slice or None
    window = Signal(object)  # (umin, umax, vmin, vmax)
    color_mode = Signal(str)
    pick_mode = Signal(str)
    picks = Signal(object)  # tuple of (u, v)
    inspected = Signal(object)  # (u, v) or None
    paths = Signal(object)  # tuple of PathSpec
    settings = Signal(object)  # Settings
    playing = Signal(bool)


def _window_tuple(w) -> tuple[float, float, float, float]:
    w = tuple(float(v) for v in w)
    if len(w) != 4 or not all(math.isfinite(v) for v in w) or w[1] <= w[0] or w[3] <= w[2]:
        raise ValueError(f"a view window is (umin, umax, vmin, vmax) with umin < umax, vmin < vmax; got {w}")
    return w  # type: ignore[return-value]


HOME_COVER_ASPECT = 2.0  # the home window widened to 2:1 covers its view in any landscape widget


def home_cover(window, home) -> tuple[float, float, float, float] | None:
    """The home window widened to 2:1 along the view's long side, when ``window`` is a view of the (square)
    ``home`` window fitted to a widget (it holds the home window and lies inside that cover); else None.

    ``splineatlas precompute`` tessellates this cover (it cannot know the widget's size); the window,
    missing its own view in the cache, shows the cover's tiles instead (exact, clipped by the view)."""
    w, h = _window_tuple(window), _window_tuple(home)
    tol = 1e-9 * max(1.0, h[1] - h[0], h[3] - h[2])
    if not (w[0] <= h[0] + tol and w[1] >= h[1] - tol and w[2] <= h[2] + tol and w[3] >= h[3] - tol):
        return None
    cx, cy = (h[0] + h[1]) / 2, (h[2] + h[3]) / 2
    half_x, half_y = (h[1] - h[0]) / 2, (h[3] - h[2]) / 2
    if (w[1] - w[0]) >= (w[3] - w[2]):
        cover = (cx - HOME_COVER_ASPECT * half_y, cx + HOME_COVER_ASPECT * half_y, h[2], h[3])
    else:
        cover = (h[0], h[1], cy - HOME_COVER_ASPECT * half_x, cy + HOME_COVER_ASPECT * half_x)
    inside = w[0] >= cover[0] - tol and w[1] <= cover[1] + tol and w[2] >= cover[2] - tol and w[3] <= cover[3] + tol
    return cover if inside else None


class ViewerState:
    """Observable state of one viewer window. Read fields as properties; change them with ``set_*``.

    Fields:
      run_path      str | None   file or folder the run was opened from
      n_epochs      int          number of checkpoints in the run (0 with no run)
      max_depth     int          number of nonlinearities of the network (layer slider range 1..max_depth)
      epoch_index   int          0-based index into the run's checkpoints
      depth         int          1-based: the tessellation after layers 1..depth
      slice         Slice | None the 2D slice x(u) = o + B u
      slice_choice  SliceChoice  how the slice was made
      home_window   (4,) floats  default window of the slice (data extent plus margin)
      window        (4,) floats  visible window (umin, umax, vmin, vmax) that is tessellated
      color_mode    str          one of COLOR_MODES
      pick_mode     str          one of PICK_MODES
      picks         tuple        pending clicks (u, v) of the current tool
      inspected     (u, v)|None  the inspected point
      paths         tuple        kept PathSpecs
      settings      Settings
      playing       bool         epoch playback running
    """

    def __init__(self):
        self.events = StateEvents()
        self._run_path: str | None = None
        self._n_epochs = 0
        self._max_depth = 0
        self._epoch_index = 0
        self._depth = 1
        self._slice: Slice | None = None
        self._slice_choice = SliceChoice()
        self._home_window = (-1.0, 1.0, -1.0, 1.0)
        self._window = (-1.0, 1.0, -1.0, 1.0)
        self._color_mode = "class"
        self._pick_mode = "inspect"
        self._picks: tuple[tuple[float, float], ...] = ()
        self._inspected: tuple[float, float] | None = None
        self._paths: tuple[PathSpec, ...] = ()
        self._settings = Settings()
        self._playing = False
        self._next_path_id = 1
        self._undo: list[tuple[PathSpec, ...]] = []

    # -- read-only fields ----------------------------------------------------------------------
    run_path = property(lambda self: self._run_path)
    n_epochs = property(lambda self: self._n_epochs)
    max_depth = property(lambda self: self._max_depth)
    epoch_index = property(lambda self: self._epoch_index)
    depth = property(lambda self: self._depth)
    slice = property(lambda self: self._slice)
    slice_choice = property(lambda self: self._slice_choice)
    home_window = property(lambda self: self._home_window)
    window = property(lambda self: self._window)

    @property
    def home_cover(self) -> tuple[float, float, float, float] | None:
        """The precomputable cover of the current view when it is a home view (:func:`home_cover`)."""
        return home_cover(self._window, self._home_window)

    color_mode = property(lambda self: self._color_mode)
    pick_mode = property(lambda self: self._pick_mode)
    picks = property(lambda self: self._picks)
    inspected = property(lambda self: self._inspected)
    paths = property(lambda self: self._paths)
    settings = property(lambda self: self._settings)
    playing = property(lambda self: self._playing)

    # -- setters -------------------------------------------------------------------------------
    def set_run(self, path: str | None, n_epochs: int, max_depth: int, epoch_index: int | None = None) -> None:
        """A new run was opened: reset what depends on it (picks, paths, inspected point)."""
        self._run_path = None if path is None else str(path)
        self._n_epochs = max(int(n_epochs), 0)
        self._max_depth = max(int(max_depth), 0)
        self._epoch_index = min(max(self._n_epochs - 1 if epoch_index is None else int(epoch_index), 0), max(self._n_epochs - 1, 0))
        self._depth = max(self._max_depth, 1)
        self._picks, self._inspected, self._paths = (), None, ()
        self._undo = []
        self._playing = False
        self.events.run.emit(self._run_path)
        self.events.epoch_index.emit(self._epoch_index)
        self.events.depth.emit(self._depth)
        self.events.picks.emit(self._picks)
        self.events.inspected.emit(None)
        self.events.paths.emit(self._paths)
        self.events.playing.emit(False)

    def set_epoch_index(self, i: int) -> None:
        """Clamp to 0..n_epochs-1."""
        i = min(max(int(i), 0), max(self._n_epochs - 1, 0))
        if i != self._epoch_index:
            self._epoch_index = i
            self.events.epoch_index.emit(i)

    def step_epoch(self, delta: int, wrap: bool = False) -> None:
        n = max(self._n_epochs, 1)
        i = self._epoch_index + delta
        self.set_epoch_index(i % n if wrap else i)

    def set_depth(self, depth: int) -> None:
        """Clamp to 1..max_depth."""
        d = min(max(int(depth), 1), max(self._max_depth, 1))
        if d != self._depth:
            self._depth = d
            self.events.depth.emit(d)

    def set_slice(self, slice_: Slice, choice: SliceChoice, home_window) -> None:
        """A new slice resets the window to ``home_window`` and drops the pending picks and the inspected
        point (slice coordinates); the paths stay (they live in input space) and are seen in the new slice.
        A path without input-space endpoints (an old session's) is dropped, undoably."""
        if slice_.dim != 2:
            raise ValueError("the 2D view needs a 2D slice")
        kept = tuple(p.in_slice(slice_) for p in self._paths if p.x_start is not None and len(p.x_start) == slice_.ambient_dim)
        if len(kept) != len(self._paths):
            self._remember_paths()
        self._slice, self._slice_choice = slice_, choice
        self._home_window = _window_tuple(home_window)
        self._window = self._home_window
        self._picks, self._inspected, self._paths = (), None, kept
        self.events.slice.emit(slice_)
        self.events.window.emit(self._window)
        self.events.picks.emit(())
        self.events.inspected.emit(None)
        self.events.paths.emit(self._paths)

    def set_window(self, window) -> None:
        w = _window_tuple(window)
        if not np.allclose(w, self._window, rtol=1e-9, atol=0):
            self._window = w
            self.events.window.emit(w)

    def reset_window(self) -> None:
        self.set_window(self._home_window)

    def set_color_mode(self, mode: str) -> None:
        if mode not in COLOR_MODES:
            raise ValueError(f"colour mode must be one of {COLOR_MODES}, got {mode!r}")
        if mode != self._color_mode:
            self._color_mode = mode
            self.events.color_mode.emit(mode)

    def set_pick_mode(self, mode: str) -> None:
        """Switching tools drops the pending picks of the previous tool."""
        if mode not in PICK_MODES:
            raise ValueError(f"pick mode must be one of {PICK_MODES}, got {mode!r}")
        if mode != self._pick_mode:
            self._pick_mode = mode
            self.events.pick_mode.emit(mode)
        self.cancel_picks()

    def add_pick(self, u: float, v: float) -> tuple[tuple[float, float], ...] | None:
        """Record a click of the current tool. Returns the completed picks when the tool has enough
        (and clears them), else None. Inspect mode sets :attr:`inspected` directly."""
        p = (float(u), float(v))
        if self._pick_mode == "inspect":
            self.set_inspected(p)
            return (p,)
        self._picks = self._picks + (p,)
        if len(self._picks) >= PICKS_NEEDED[self._pick_mode]:
            done, self._picks = self._picks, ()
            self.events.picks.emit(())
            return done
        self.events.picks.emit(self._picks)
        return None

    def cancel_picks(self) -> None:
        if self._picks:
            self._picks = ()
            self.events.picks.emit(())

    def set_inspected(self, p) -> None:
        p = None if p is None else (float(p[0]), float(p[1]))
        if p != self._inspected:
            self._inspected = p
            self.events.inspected.emit(p)

    def add_path(self, kind: str, start, end=None) -> PathSpec:
        """Keep a new path definition (computed by the window); returns it with its id."""
        return self.add_paths(kind, [start], None if end is None else [end])[0]

    def add_paths(self, kind: str, starts, ends=None) -> tuple[PathSpec, ...]:
        """Keep several new paths of one kind in one change (the window traces them in one batch)."""
        if kind not in PATH_KINDS:
            raise ValueError(f"path kind must be one of {PATH_KINDS}, got {kind!r}")
        ends = [None] * len(starts) if ends is None else list(ends)
        if len(ends) != len(starts):
            raise ValueError(f"{len(starts)} starts but {len(ends)} ends")

        def to_input(u):
            return None if u is None or self._slice is None else tuple(float(v) for v in self._slice.to_input(np.asarray(u, np.float64)[None])[0])

        new = tuple(
            PathSpec(
                self._next_path_id + k,
                kind,
                (float(a[0]), float(a[1])),
                None if b is None else (float(b[0]), float(b[1])),
                self._epoch_index,
                True,
                self._settings.path_steps,
                self._settings.path_step_size,
                to_input(a),
                to_input(b),
            )
            for k, (a, b) in enumerate(zip(starts, ends))
        )
        self._next_path_id += len(new)
        self._remember_paths()
        self._paths = self._paths + new
        self.events.paths.emit(self._paths)
        return new

    def set_path_visible(self, path_id: int, visible: bool) -> None:
        new = tuple(replace(p, visible=bool(visible)) if p.id == path_id else p for p in self._paths)
        if new != self._paths:
            self._paths = new
            self.events.paths.emit(new)

    def remove_path(self, path_id: int) -> None:
        new = tuple(p for p in self._paths if p.id != path_id)
        if new != self._paths:
            self._remember_paths()
            self._paths = new
            self.events.paths.emit(new)

    def clear_paths(self) -> None:
        if self._paths:
            self._remember_paths()
            self._paths = ()
            self.events.paths.emit(())

    def _remember_paths(self) -> None:
        self._undo.append(self._paths)
        del self._undo[:-MAX_UNDO]

    def undo(self) -> bool:
        """Ctrl+Z: drop the last pending pick, else restore the paths before the last path edit (adding,
        deleting, clearing, or a slice change that dropped paths). Returns whether anything changed."""
        if self._picks:
            self._picks = self._picks[:-1]
            self.events.picks.emit(self._picks)
            return True
        if not self._undo:
            return False
        self._paths = self._undo.pop()
        if self._slice is not None:
            self._paths = tuple(p.in_slice(self._slice) for p in self._paths)
        self.events.paths.emit(self._paths)
        return True

    def update_settings(self, **changes) -> None:
        new = replace(self._settings, **changes)
        if new != self._settings:
            self._settings = new
            self.events.settings.emit(new)

    def set_playing(self, playing: bool) -> None:
        playing = bool(playing) and self._n_epochs > 1
        if playing != self._playing:
            self._playing = playing
            self.events.playing.emit(playing)

    # -- sessions ------------------------------------------------------------------------------
    def to_session(self) -> dict:
        """A JSON-able dict of everything needed to come back to this view."""
        return {
            "format": "splineatlas-session",
            "version": SESSION_VERSION,
            "run": self._run_path,
            "epoch_index": self._epoch_index,
            "depth": self._depth,
            "slice": None if self._slice is None else self._slice.to_json(),
            "slice_choice": {"kind": self._slice_choice.kind, "indices": list(self._slice_choice.indices), "seed": self._slice_choice.seed},
            "home_window": list(self._home_window),
            "window": list(self._window),
            "color_mode": self._color_mode,
            "pick_mode": self._pick_mode,
            "inspected": None if self._inspected is None else list(self._inspected),
            "paths": [
                {
                    **asdict(p),
                    "start": list(p.start),
                    "end": None if p.end is None else list(p.end),
                    "x_start": None if p.x_start is None else list(p.x_start),
                    "x_end": None if p.x_end is None else list(p.x_end),
                }
                for p in self._paths
            ],
            "settings": asdict(self._settings),
        }

    def apply_session(self, data: dict) -> None:
        """Restore everything but the run (open the run first with :meth:`set_run`, then call this). ``data``
        is a session as :func:`app.model.session.read_session` returns it (validated, defaults filled)."""
        if data["slice"] is not None:
            sc = data.get("slice_choice") or {}
            choice = SliceChoice(sc.get("kind", "input"), tuple(int(i) for i in sc.get("indices", ())), int(sc.get("seed", 0)))
            self.set_slice(Slice.from_json(data["slice"]), choice, data.get("home_window") or data["window"])
            self.set_window(data["window"])
        self.update_settings(**{k: v for k, v in (data.get("settings") or {}).items() if k in Settings.__dataclass_fields__})
        self.set_epoch_index(data.get("epoch_index", self._epoch_index))
        self.set_depth(data.get("depth", self._depth))
        self.set_color_mode(data.get("color_mode", "class"))
        self.set_pick_mode(data.get("pick_mode", "inspect"))
        self.set_inspected(data.get("inspected"))
        paths = []
        for p in data.get("paths") or []:
            paths.append(
                PathSpec(
                    int(p["id"]),
                    str(p["kind"]),
                    tuple(p["start"]),
                    None if p.get("end") is None else tuple(p["end"]),
                    int(p.get("epoch_index", self._epoch_index)),
                    bool(p.get("visible", True)),
                    int(p.get("steps", DEFAULT_PATH_STEPS)),
                    float(p.get("step_size", DEFAULT_STEP_FRACTION)),
                    None if p.get("x_start") is None else tuple(float(v) for v in p["x_start"]),
                    None if p.get("x_end") is None else tuple(float(v) for v in p["x_end"]),
                )
            )
        self._paths = tuple(paths)
        self._undo = []
        self._next_path_id = max([p.id for p in paths], default=0) + 1
        self.events.paths.emit(self._paths)
