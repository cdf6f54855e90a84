"""Qt-free state of the 3D slice view (what the 3D tab shows), observed by :mod:`app.qt.view3d`.

The 3D tab shares the window's :class:`app.model.state.ViewerState` (run, epoch, layer depth, colour mode,
inspected point, paths) and adds what only it has: which 3D slice of input space, its box, how faces are
filtered and drawn, the camera, and the clipping plane. Like ViewerState, fields are read-only
properties changed through ``set_*`` methods that validate and emit one event when the value changes.

The clipping plane is axis-aligned in slice coordinates (``u[axis] = position``); the window's 2D view can
follow it (``link_2d``): its 2D slice is then exactly that plane (see :func:`app.jobs.scene3d.clip_slice`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from psygnal import Signal, SignalGroup

from geometry.errors import InputFileError
from geometry.slices import Slice

from .state import SliceChoice

SLICE3_KINDS = ("input", "pca", "deepfool", "random")
"""3D slices: the input space (3-input nets), PCA with 3 components, a point + its DeepFool direction + 2 random,
three random directions (seed) through the data mean."""

CAMERAS = ("turntable", "fly")
MANIFOLD_SAMPLERS = ("none", "prior", "magnet", "polarity")
"""Samples drawn on a generator's manifold (none, or a sampler of :mod:`geometry.generative`)."""
AXES = ("u", "v", "w")


@dataclass(frozen=True)
class Slice3Choice:
    """How the 3D slice is made. kind: SLICE3_KINDS; index: dataset point (deepfool); seed: random directions."""

    kind: str = "pca"
    index: int = 0
    seed: int = 0

    def as_choice(self) -> SliceChoice:
        """The same slice in the one vocabulary of :mod:`app.jobs.slicing` (what ``make_slice`` takes)."""
        return SliceChoice(self.kind, (int(self.index),) if self.kind == "deepfool" else (), int(self.seed))

    @classmethod
    def from_choice(cls, choice: SliceChoice) -> "Slice3Choice":
        return cls(choice.kind, choice.indices[0] if choice.indices else 0, choice.seed)


@dataclass(frozen=True)
class View3DSettings:
    """Drawing settings of the 3D view.

    only_layer: show only the faces created by this layer (1-based; 0 = faces of every layer);
    near_boundary: show only faces near the decision boundary (cells it crosses, or face centroid within
    ``near_distance`` x the box diagonal of it); explode: cells pushed out by this fraction of their offset
    from the box centre; opacity: alpha of the region faces; max_cells: budget of the 3D tessellation;
    box_scale: the box tessellated, as a fraction of the slice's own box about its centre (a CNN's slice
    box can hold millions of cells: a smaller box is how to see them, see :func:`scale_box`).
    A generator's manifold (2 latent inputs into R³) is drawn with ``samples`` points of ``sampler``
    (MANIFOLD_SAMPLERS; polarity with exponent ``rho``, random seed ``sample_seed``) on it; a generator of
    images as an ``image_grid`` x ``image_grid`` grid of its pictures over the latent window.
    """

    show_faces: bool = True
    show_edges: bool = True
    show_boundary: bool = True
    show_points: bool = True
    show_paths: bool = True
    show_domain_faces: bool = False
    only_layer: int = 0
    near_boundary: bool = False
    near_distance: float = 0.05
    explode: float = 0.0
    opacity: float = 0.12
    camera: str = "turntable"
    max_cells: int = 20_000
    box_scale: float = 1.0
    sampler: str = "magnet"
    rho: float = -1.0
    samples: int = 1000
    sample_seed: int = 0
    image_grid: int = 8


BOX_SCALE_RANGE = (0.01, 1.0)


def scale_box(box, scale: float) -> tuple[float, ...]:
    """``box`` (umin, umax, vmin, vmax, wmin, wmax) shrunk about its centre to ``scale`` of its side lengths."""
    b = np.asarray(box, dtype=np.float64).reshape(3, 2)
    centre, half = b.mean(1), (b[:, 1] - b[:, 0]) / 2 * float(scale)
    return tuple(float(x) for x in np.stack([centre - half, centre + half], 1).reshape(-1))


@dataclass(frozen=True)
class ClipPlane:
    """Axis-aligned clipping plane ``u[axis] = position`` in slice coordinates; the half ``u[axis] >= position``
    (``keep_above``) or ``<=`` (default: the camera looks down onto the cut) is drawn when ``enabled``.
    ``link_2d``: the 2D view shows this plane."""

    enabled: bool = False
    axis: int = 2
    position: float = 0.0
    keep_above: bool = False
    link_2d: bool = True


class View3DEvents(SignalGroup):
    choice = Signal(object)  # Slice3Choice
    slice3 = Signal(object)  # Slice (k = 3) or None
    settings = Signal(object)  # View3DSettings
    clip = Signal(object)  # ClipPlane
    picked = Signal(object)  # (3,) tuple or None


class View3DState:
    """Observable state of the 3D tab.

    Fields: choice (Slice3Choice), slice3 (Slice with k = 3, or None), box ((6,) floats
    ``umin, umax, vmin, vmax, wmin, wmax``: the slice's own box scaled by ``settings.box_scale``, what is
    tessellated and drawn), settings (View3DSettings), clip (ClipPlane),
    picked ((u, v, w) of the last picked surface point, or None).
    """

    def __init__(self):
        self.events = View3DEvents()
        self._choice = Slice3Choice()
        self._slice3: Slice | None = None
        self._home_box = (-1.0, 1.0, -1.0, 1.0, -1.0, 1.0)  # the slice's own box
        self._settings = View3DSettings()
        self._clip = ClipPlane()
        self._picked: tuple[float, float, float] | None = None
        self._pending_clip: ClipPlane | None = None  # a session's plane, applied when its slice arrives

    choice = property(lambda self: self._choice)
    slice3 = property(lambda self: self._slice3)
    box = property(lambda self: scale_box(self._home_box, self._settings.box_scale))
    home_box = property(lambda self: self._home_box)
    settings = property(lambda self: self._settings)
    clip = property(lambda self: self._clip)
    picked = property(lambda self: self._picked)

    def set_choice(self, choice: Slice3Choice) -> None:
        if choice.kind not in SLICE3_KINDS:
            raise ValueError(f"3D slice kind must be one of {SLICE3_KINDS}, got {choice.kind!r}")
        if choice != self._choice:
            self._choice = choice
            self.events.choice.emit(choice)

    def set_slice3(self, slice3: Slice | None, box=None) -> None:
        """A new 3D slice (k = 3) and its box; centres the clipping plane and drops the picked point."""
        if slice3 is not None and slice3.dim != 3:
            raise ValueError("the 3D view needs a slice with 3 directions")
        if box is not None:
            b = tuple(float(x) for x in np.asarray(box, dtype=np.float64).reshape(-1))
            if len(b) != 6 or not all(math.isfinite(x) for x in b) or not all(b[2 * i + 1] > b[2 * i] for i in range(3)):
                raise ValueError(f"a 3D box is (umin, umax, vmin, vmax, wmin, wmax) with min < max; got {b}")
            self._home_box = b
        self._slice3 = slice3
        self._picked = None
        a, box = self._clip.axis, self.box
        self._clip = replace(self._clip, position=(box[2 * a] + box[2 * a + 1]) / 2)
        if slice3 is not None and self._pending_clip is not None:
            pending, self._pending_clip = self._pending_clip, None
            lo, hi = box[2 * pending.axis], box[2 * pending.axis + 1]
            self._clip = replace(pending, position=min(max(float(pending.position), lo), hi))
        self.events.slice3.emit(slice3)
        self.events.clip.emit(self._clip)
        self.events.picked.emit(None)

    def update_settings(self, **changes) -> None:
        if "camera" in changes and changes["camera"] not in CAMERAS:
            raise ValueError(f"camera must be one of {CAMERAS}, got {changes['camera']!r}")
        if "explode" in changes:
            changes["explode"] = min(max(float(changes["explode"]), 0.0), 3.0)
        if "opacity" in changes:
            changes["opacity"] = min(max(float(changes["opacity"]), 0.0), 1.0)
        if "only_layer" in changes:
            changes["only_layer"] = max(int(changes["only_layer"]), 0)
        if "sampler" in changes and changes["sampler"] not in MANIFOLD_SAMPLERS:
            raise ValueError(f"sampler must be one of {MANIFOLD_SAMPLERS}, got {changes['sampler']!r}")
        if "rho" in changes:
            changes["rho"] = float(changes["rho"])
            if not math.isfinite(changes["rho"]):
                raise ValueError(f"rho must be a finite number, got {changes['rho']}")
        if "image_grid" in changes:
            changes["image_grid"] = min(max(int(changes["image_grid"]), 1), 32)
        if "samples" in changes:
            changes["samples"] = min(max(int(changes["samples"]), 0), 200_000)
        if "box_scale" in changes:
            scale = float(changes["box_scale"])
            if not math.isfinite(scale):
                raise ValueError(f"box_scale must be a finite number, got {changes['box_scale']}")
            changes["box_scale"] = min(max(scale, BOX_SCALE_RANGE[0]), BOX_SCALE_RANGE[1])
        new = replace(self._settings, **changes)
        if new != self._settings:
            rescaled = new.box_scale != self._settings.box_scale
            self._settings = new
            self.events.settings.emit(new)
            if rescaled:  # the clipping plane stays inside the new box
                self.update_clip(position=self._clip.position)

    def update_clip(self, **changes) -> None:
        """Change the clipping plane; the position is clamped to the box along its axis."""
        new = replace(self._clip, **changes)
        if new.axis not in (0, 1, 2):
            raise ValueError(f"clip axis must be 0, 1 or 2, got {new.axis}")
        lo, hi = self.box[2 * new.axis : 2 * new.axis + 2]
        if "axis" in changes and "position" not in changes and new.axis != self._clip.axis:
            new = replace(new, position=(lo + hi) / 2)
        new = replace(new, position=min(max(float(new.position), lo), hi))
        if new != self._clip:
            self._clip = new
            self.events.clip.emit(new)

    def set_picked(self, p) -> None:
        p = None if p is None else tuple(float(x) for x in np.asarray(p, dtype=np.float64).reshape(3))
        if p != self._picked:
            self._picked = p
            self.events.picked.emit(p)

    def apply_dict(self, data: dict) -> None:
        """Restore what :meth:`to_dict` saved (sessions): the slice choice (the slice itself is rebuilt from
        it), the drawing settings, and the clipping plane (applied once that slice arrives; at once when the
        choice is the current one). Unknown keys are ignored; malformed values raise InputFileError."""
        if not isinstance(data, dict):
            raise InputFileError("the session's 3D view must be a JSON object.")
        ch = data.get("choice") or {}
        settings = {k: v for k, v in (data.get("settings") or {}).items() if k in View3DSettings.__dataclass_fields__}
        clip = {k: v for k, v in (data.get("clip") or {}).items() if k in ClipPlane.__dataclass_fields__}
        try:
            choice = Slice3Choice(str(ch.get("kind", self._choice.kind)), int(ch.get("index", 0)), int(ch.get("seed", 0)))
            if choice.kind not in SLICE3_KINDS:
                raise ValueError(f"3D slice kind must be one of {SLICE3_KINDS}, got {choice.kind!r}")
            plane = replace(ClipPlane(), **clip)
            if plane.axis not in (0, 1, 2):
                raise ValueError(f"clip axis must be 0, 1 or 2, got {plane.axis}")
            self.update_settings(**settings)
        except (TypeError, ValueError) as exc:
            raise InputFileError(f"the session's 3D view is malformed ({exc}).") from None
        if choice == self._choice and self._slice3 is not None:
            self.update_clip(**{k: getattr(plane, k) for k in ClipPlane.__dataclass_fields__})
        else:
            self._pending_clip = plane
            self.set_choice(choice)

    def to_dict(self) -> dict:
        """JSON-able snapshot (for sessions)."""
        from dataclasses import asdict

        return {
            "choice": asdict(self._choice),
            "box": list(self.box),
            "settings": asdict(self._settings),
            "clip": asdict(self._clip),
            "slice3": None if self._slice3 is None else self._slice3.to_json(),
        }
