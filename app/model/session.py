"""Session files: the window's state (and the 3D tab's) as JSON, validated field by field on reading.

A session names its run, slice, window, epoch, depth, colouring, inspected point and paths; reading one
never trusts it (pydantic schema, bounded sizes, finite numbers), and writing is atomic.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

from geometry.errors import InputFileError
from geometry.safe_io import name, read_json, write_text

from .state import COLOR_MODES, PATH_KINDS, PICK_MODES, SESSION_VERSION, SLICE_KINDS, ViewerState, _window_tuple

MAX_SESSION_PATHS = 256
MAX_PATH_INPUTS = 1_000_000
"""A path's input-space endpoint in a session has at most this many coordinates."""
"""Paths a session may hold: each is traced when the session opens, so the count is bounded."""


@functools.cache
def _session_models():
    """The pydantic model of a session file (built once, on first use: pydantic is imported lazily)."""
    from typing import Annotated, Literal

    from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

    from geometry.networks.schemas import Finite as Num

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
        x_start: Annotated[list[Num], Field(min_length=2, max_length=MAX_PATH_INPUTS)] | None = None
        x_end: Annotated[list[Num], Field(min_length=2, max_length=MAX_PATH_INPUTS)] | None = None

    class SettingsModel(Loose):
        show_points: StrictBool = True
        show_sites: StrictBool = False
        show_boundary: StrictBool = True
        show_edges: StrictBool = True
        show_legend: StrictBool = True
        log_epochs: StrictBool = False
        max_regions: Annotated[StrictInt, Field(ge=1, le=100_000_000)] = 200_000
        play_fps: Annotated[Num, Field(ge=0.1, le=240)] = 4.0
        path_steps: Annotated[StrictInt, Field(ge=1, le=10_000)] = 200
        path_step_size: Annotated[Num, Field(gt=0, le=1e6)] = 0.02
        threads: Annotated[StrictInt, Field(ge=0, le=1024)] = 0

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
    from geometry.networks.schemas import validate_document

    if not isinstance(data, dict) or data.get("format") != "splineatlas-session":
        raise InputFileError(f'{where} is not a Spline Atlas session file (no "format": "splineatlas-session"); open a file saved with File > Save Session.')
    version = data.get("version", 0)
    if isinstance(version, int) and not isinstance(version, bool) and version > SESSION_VERSION:
        raise InputFileError(f"session version {version} is newer than this Spline Atlas understands ({SESSION_VERSION}); update Spline Atlas.")
    validate_document(_session_models(), data, where, InputFileError, "a file saved by File > Save Session has it right")
    if data.get("slice") is not None and data.get("window") is None:
        raise InputFileError(f"{where}: field window: a session with a slice needs its view window.")
    return data


def save_session(state: ViewerState, path: str | Path, view3d: dict | None = None) -> None:
    """Write the state as pretty JSON (run path stored absolute); ``view3d``: the 3D tab's
    :meth:`app.model.view3d.View3DState.to_dict`, when there is one."""
    data = state.to_session()
    if view3d is not None:
        data["view3d"] = view3d
    write_text(path, json.dumps(data, indent=1))


def read_session(path: str | Path) -> dict:
    """Read and validate a session file."""
    p = Path(path)
    data = read_json(p, "session file")
    return validate_session(data, f"session file {name(p)}")


def is_session_file(path: str | Path) -> bool:
    """Whether ``path`` looks like a session file (its head names the format; nothing is parsed yet)."""
    p = Path(path)
    if p.suffix.lower() != ".json" or not p.is_file():
        return False
    try:
        with open(p, "rb") as fh:  # the head only: the file is not trusted yet
            head = fh.read(4000).decode("utf-8", "replace")
    except OSError:
        return False
    return '"splineatlas-session"' in head
