"""The Qt-free viewer state of the Spline Atlas window (napari's split: model here, widgets observe it).

:class:`ViewerState` holds *what the user is looking at*: which run, which epoch and layer depth,
which slice of input space and which window of it, how tiles are coloured, the clicked point,
the pending picks of the current tool and the kept paths. It holds no computed results (those
live in the result cache) and imports no Qt, so it can be driven and tested headlessly.

Every field is a public read-only property; change it through the ``set_*`` methods, which
validate, clamp and emit one event on :attr:`ViewerState.events` only when the value changes.
The whole state round-trips through a JSON session file (:meth:`to_session` / :meth:`from_session`).
"""
from __future__ import annotations

import functools
import json
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
from psygnal import Signal, SignalGroup

from geometry.errors import InputFileError
from geometry.slices import Slice
from geometry.safe_io import name, read_json, write_text

SESSION_VERSION = 1

COLOR_MODES = ("class", "slope", "hash", "layer")
"""Tile colourings: predicted class, ||A_w|| (slope norm), activation-pattern hash, layer of origin."""

PICK_MODES = ("inspect", "slice", "horizontal", "normal", "region", "segment")
"""What a click in the 2D view does: inspect a point, pick 3 points for a slice, or start/end a path."""

PATH_KINDS = ("horizontal", "normal", "region", "segment")

PICKS_NEEDED = {"inspect": 1, "slice": 3, "horizontal": 2, "normal": 1, "region": 2, "segment": 2}
"""Number of clicks that complete an action in each pick mode."""

SLICE_KINDS = ("input", "points", "deepfool", "pca")

PATH_NAMES = {"horizontal": "horizontal leaf path", "normal": "normal leaf path",
               "region": "same-class region path", "segment": "straight segment"}


@dataclass(frozen=True)
class SliceChoice:
    """How the current slice was made, so a session can say it in words and rebuild it.

    kind: one of SLICE_KINDS; indices: dataset (train) indices of the defining points.
    """

    kind: str = "input"
    indices: tuple[int, ...] = ()
    seed: int = 0


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
    steps: int = 200
    step_size: float = 0.02


@dataclass(frozen=True)
class Settings:
    """View and compute settings that change what is drawn or computed."""

    show_points: bool = True
    show_sites: bool = False
    show_boundary: bool = True
    show_edges: bool = True
    max_regions: int = 200_000
    play_fps: float = 4.0
    path_steps: int = 200
    path_step_size: float = 0.02


class StateEvents(SignalGroup):
    """Signals of :class:`ViewerState`; each carries the new value."""

    run = Signal(object)          # run path (str) or None
    epoch_index = Signal(int)
    depth = Signal(int)
    slice = Signal(object)        # Slice or None
    window = Signal(object)       # (umin, umax, vmin, vmax)
    color_mode = Signal(str)
    pick_mode = Signal(str)
    picks = Signal(object)        # tuple of (u, v)
    inspected = Signal(object)    # (u, v) or None
    paths = Signal(object)        # tuple of PathSpec
    settings = Signal(object)     # Settings
    playing = Signal(bool)


def _window_tuple(w) -> tuple[float, float, float, float]:
    w = tuple(float(v) for v in w)
    if len(w) != 4 or not all(math.isfinite(v) for v in w) or w[1] <= w[0] or w[3] <= w[2]:
        raise ValueError(f"a view window is (umin, umax, vmin, vmax) with umin < umax, vmin < vmax; got {w}")
    return w  # type: ignore[return-value]


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
        self._epoch_index = min(max(self._n_epochs - 1 if epoch_index is None else int(epoch_index), 0),
                                max(self._n_epochs - 1, 0))
        self._depth = max(self._max_depth, 1)
        self._picks, self._inspected, self._paths = (), None, ()
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
        """A new slice resets the window to ``home_window`` and drops slice-coordinate picks and paths."""
        if slice_.dim != 2:
            raise ValueError("the 2D view needs a 2D slice")
        self._slice, self._slice_choice = slice_, choice
        self._home_window = _window_tuple(home_window)
        self._window = self._home_window
        self._picks, self._inspected, self._paths = (), None, ()
        self.events.slice.emit(slice_)
        self.events.window.emit(self._window)
        self.events.picks.emit(())
        self.events.inspected.emit(None)
        self.events.paths.emit(())

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
        new = tuple(PathSpec(self._next_path_id + k, kind, (float(a[0]), float(a[1])),
                             None if b is None else (float(b[0]), float(b[1])), self._epoch_index,
                             True, self._settings.path_steps, self._settings.path_step_size)
                    for k, (a, b) in enumerate(zip(starts, ends)))
        self._next_path_id += len(new)
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
            self._paths = new
            self.events.paths.emit(new)

    def clear_paths(self) -> None:
        if self._paths:
            self._paths = ()
            self.events.paths.emit(())

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
            "slice_choice": {"kind": self._slice_choice.kind, "indices": list(self._slice_choice.indices),
                             "seed": self._slice_choice.seed},
            "home_window": list(self._home_window),
            "window": list(self._window),
            "color_mode": self._color_mode,
            "pick_mode": self._pick_mode,
            "inspected": None if self._inspected is None else list(self._inspected),
            "paths": [{**asdict(p), "start": list(p.start), "end": None if p.end is None else list(p.end)}
                      for p in self._paths],
            "settings": asdict(self._settings),
        }

    def apply_session(self, data: dict) -> None:
        """Restore everything but the run (open the run first with :meth:`set_run`, then call this)."""
        data = validate_session(data)
        if data["slice"] is not None:
            sc = data.get("slice_choice") or {}
            choice = SliceChoice(sc.get("kind", "input"), tuple(int(i) for i in sc.get("indices", ())),
                                 int(sc.get("seed", 0)))
            self.set_slice(Slice.from_json(data["slice"]), choice, data.get("home_window") or data["window"])
            self.set_window(data["window"])
        self.update_settings(**{k: v for k, v in (data.get("settings") or {}).items()
                                if k in Settings.__dataclass_fields__})
        self.set_epoch_index(data.get("epoch_index", self._epoch_index))
        self.set_depth(data.get("depth", self._depth))
        self.set_color_mode(data.get("color_mode", "class"))
        self.set_pick_mode(data.get("pick_mode", "inspect"))
        self.set_inspected(data.get("inspected"))
        paths = []
        for p in data.get("paths") or []:
            paths.append(PathSpec(int(p["id"]), str(p["kind"]), tuple(p["start"]),
                                  None if p.get("end") is None else tuple(p["end"]),
                                  int(p.get("epoch_index", self._epoch_index)), bool(p.get("visible", True)),
                                  int(p.get("steps", 200)), float(p.get("step_size", 0.02))))
        self._paths = tuple(paths)
        self._next_path_id = max([p.id for p in paths], default=0) + 1
        self.events.paths.emit(self._paths)


MAX_SESSION_PATHS = 256
"""Paths a session may hold: each is traced when the session opens, so the count is bounded."""


@functools.cache
def _session_models():
    """The pydantic model of a session file (built once, on first use: pydantic is imported lazily)."""
    from typing import Annotated, Literal

    from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

    from geometry.schemas import Finite as Num

    Point = tuple[Num, Num]

    def window(v):
        _window_tuple(v)
        return v

    Window = Annotated[tuple[Num, Num, Num, Num], AfterValidator(window)]

    class Loose(BaseModel):
        model_config = ConfigDict(extra="ignore")

    class SliceModel(Loose):
        origin: Annotated[list[Num], Field(min_length=2, max_length=10_000_000)]
        basis: Annotated[list[Annotated[list[Num], Field(min_length=2, max_length=3)]], Field(min_length=2)]
        anchors: Annotated[list[list[Num]], Field(max_length=16)] = []
        description: Annotated[StrictStr, Field(max_length=500)] = ""

        def model_post_init(self, _ctx) -> None:
            if len(self.basis) != len(self.origin) or len({len(r) for r in self.basis}) != 1:
                raise ValueError("slice basis must have one row of 2 or 3 numbers per input of origin")

    class ChoiceModel(Loose):
        kind: Literal[SLICE_KINDS] = "input"  # type: ignore[valid-type]
        indices: Annotated[list[Annotated[StrictInt, Field(ge=0, le=10**9)]], Field(max_length=4)] = []
        seed: Annotated[StrictInt, Field(ge=0, le=2**32 - 1)] = 0

    class PathModel(Loose):
        id: Annotated[StrictInt, Field(ge=0, le=10**9)]
        kind: Literal[PATH_KINDS]  # type: ignore[valid-type]
        start: Point
        end: Point | None = None
        epoch_index: Annotated[StrictInt, Field(ge=0, le=10**6)] = 0
        visible: StrictBool = True
        steps: Annotated[StrictInt, Field(ge=1, le=10_000)] = 200
        step_size: Annotated[Num, Field(gt=0, le=1e6)] = 0.02

    class SettingsModel(Loose):
        show_points: StrictBool = True
        show_sites: StrictBool = False
        show_boundary: StrictBool = True
        show_edges: StrictBool = True
        max_regions: Annotated[StrictInt, Field(ge=1, le=100_000_000)] = 200_000
        play_fps: Annotated[Num, Field(ge=0.1, le=240)] = 4.0
        path_steps: Annotated[StrictInt, Field(ge=1, le=10_000)] = 200
        path_step_size: Annotated[Num, Field(gt=0, le=1e6)] = 0.02

    class SessionModel(Loose):
        format: Literal["splineatlas-session"]
        version: Annotated[StrictInt, Field(ge=0, le=SESSION_VERSION)] = SESSION_VERSION
        run: Annotated[StrictStr, Field(max_length=4096)] | None = None
        epoch_index: Annotated[StrictInt, Field(ge=0, le=10**6)] = 0
        depth: Annotated[StrictInt, Field(ge=1, le=10_000)] = 1
        slice: SliceModel | None = None
        slice_choice: ChoiceModel | None = None
        home_window: Window | None = None
        window: Window | None = None
        color_mode: Literal[COLOR_MODES] = "class"  # type: ignore[valid-type]
        pick_mode: Literal[PICK_MODES] = "inspect"  # type: ignore[valid-type]
        inspected: Point | None = None
        paths: Annotated[list[PathModel], Field(max_length=MAX_SESSION_PATHS)] = []
        settings: SettingsModel | None = None
        view3d: dict | None = None

    return SessionModel


def validate_session(data, where: str = "session") -> dict:
    """Check a session dict field by field (types, ranges, allowed values, at most MAX_SESSION_PATHS paths);
    raise InputFileError naming the field."""
    from geometry.schemas import validate_document

    if not isinstance(data, dict) or data.get("format") != "splineatlas-session":
        raise InputFileError(f"{where} is not a Spline Atlas session file (no \"format\": \"splineatlas-session\"); "
                             "open a file saved with File > Save Session.")
    version = data.get("version", 0)
    if isinstance(version, int) and not isinstance(version, bool) and version > SESSION_VERSION:
        raise InputFileError(f"session version {version} is newer than this Spline Atlas "
                             f"understands ({SESSION_VERSION}); update Spline Atlas.")
    validate_document(_session_models(), data, where, InputFileError, "a file saved by File > Save Session has it right")
    if data.get("slice") is not None and data.get("window") is None:
        raise InputFileError(f"{where}: field window: a session with a slice needs its view window.")
    return data


def save_session(state: ViewerState, path: str | Path, view3d: dict | None = None) -> None:
    """Write the state as pretty JSON (run path stored absolute); ``view3d``: the 3D tab's
    :meth:`app.view3d_state.View3DState.to_dict`, when there is one."""
    data = state.to_session()
    if view3d is not None:
        data["view3d"] = view3d
    write_text(path, json.dumps(data, indent=1))


def read_session(path: str | Path) -> dict:
    """Read and validate a session file."""
    p = Path(path)
    data = read_json(p, "session file")
    return validate_session(data, f"session file {name(p)}")
