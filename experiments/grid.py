"""A sweep's grid: architectures × seeds × values of training options, each cell trained and measured.

Spelling (the CLI's): ``--arch 2-5-5-1,2-10-10-1``, ``--seeds 0-49`` (or ``0,3,7``), and ``--set
NAME=V1,V2`` for any :class:`geometry.networks.training.TrainingProtocol` field or ``epochs``. A task's
key hashes everything that decides its result (dataset, architecture, seed, protocol, epochs, measures
and their settings, the sweep format), never where its files go.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
from pathlib import Path

from geometry.errors import SplineAtlasError
from geometry.networks.training import TrainingProtocol

from experiments.store import task_key

SWEEP_FORMAT = 1
MAX_TASKS = 100_000
_PROTOCOL_FIELDS = {f.name: f for f in dataclasses.fields(TrainingProtocol)}


def parse_seeds(text: str) -> tuple[int, ...]:
    """``0-49`` (inclusive), ``0,3,7`` or ``5``: distinct non-negative seeds, in order."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part[1:]:
                lo, hi = (int(v) for v in part.split("-", 1))
                if hi < lo:
                    raise ValueError
                seeds += range(lo, hi + 1)
            elif part:
                seeds.append(int(part))
    except ValueError:
        raise SplineAtlasError(f"--seeds {text!r}: give a range like 0-49 or a list like 0,3,7.") from None
    if not seeds or min(seeds) < 0 or max(seeds) > 2**32 - 1 or len(set(seeds)) != len(seeds):
        raise SplineAtlasError(f"--seeds {text!r}: give distinct seeds between 0 and 2**32 - 1.")
    return tuple(seeds)


def _typed(name: str, text: str):
    if name == "epochs":
        kind = int
    else:
        default = _PROTOCOL_FIELDS[name].default
        kind = type(default) if default is not None else float
    try:
        if name == "bias_init" and text.lower() == "none":
            return None
        return kind(text) if kind is not bool else text.lower() in ("1", "true", "yes")
    except ValueError:
        raise SplineAtlasError(f"--set {name}={text}: {name} takes a {kind.__name__}.") from None


def parse_setting(text: str) -> tuple[str, tuple]:
    """``NAME=V1,V2`` -> (name, typed values): a grid axis over a training option or ``epochs``."""
    name, sep, values = text.partition("=")
    name = name.strip().replace("-", "_")
    if not sep or not values.strip():
        raise SplineAtlasError(f"--set {text!r}: write NAME=V1,V2 (e.g. lr=0.01,0.001).")
    if name != "epochs" and name not in _PROTOCOL_FIELDS:
        raise SplineAtlasError(f"--set {name}: not a training option; choose from epochs, {', '.join(sorted(_PROTOCOL_FIELDS))}.")
    typed = tuple(_typed(name, v.strip()) for v in values.split(","))
    if len(set(typed)) != len(typed):
        raise SplineAtlasError(f"--set {text!r} names a value twice.")
    return name, typed


def file_fingerprint(path: str | Path) -> str:
    """SHA-256 of a dataset file (or of an image folder's names and bytes): a changed file is new work."""
    p = Path(path)
    h = hashlib.sha256()
    files = sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p]
    for q in files:
        h.update(str(q.relative_to(p) if p.is_dir() else q.name).encode())
        h.update(q.read_bytes())
    return h.hexdigest()


@dataclasses.dataclass(frozen=True)
class SweepGrid:
    """What a sweep trains and measures. ``dataset``: a built-in reference ({"builtin": ...}) or {"file":
    absolute path, "sha256": ..., "task": ...}; ``protocol``: fixed TrainingProtocol settings; ``axes``:
    (option, values) grid axes; ``settings``: the measures' settings (box half-width, ...)."""

    dataset: dict
    archs: tuple[str, ...]
    seeds: tuple[int, ...]
    epochs: int
    protocol: dict
    axes: tuple[tuple[str, tuple], ...] = ()
    measures: tuple[str, ...] = ("scores", "regions_box")
    settings: dict = dataclasses.field(default_factory=dict)
    activation: str = "relu"
    batchnorm: bool = False

    def cells(self) -> list[dict]:
        """Every (architecture, option values) combination, in grid order."""
        names = [a for a, _ in self.axes]
        return [{"arch": arch, **dict(zip(names, combo))} for arch in self.archs for combo in itertools.product(*(v for _, v in self.axes))]

    def tasks(self) -> dict[str, dict]:
        """key -> payload of every (cell, seed); each payload is all a worker needs."""
        cells = self.cells()
        n = len(cells) * len(self.seeds)
        if n > MAX_TASKS:
            raise SplineAtlasError(f"the grid has {n:,} runs (over {MAX_TASKS:,}); use fewer seeds or values.")
        out = {}
        for cell in cells:
            options = {k: v for k, v in cell.items() if k != "arch"}
            protocol = {**self.protocol, **{k: v for k, v in options.items() if k != "epochs"}}
            TrainingProtocol(**protocol).check()  # a bad value fails here, once, not in every worker
            for seed in self.seeds:
                payload = {
                    "format": SWEEP_FORMAT,
                    "dataset": self.dataset,
                    "arch": cell["arch"],
                    "activation": self.activation,
                    "batchnorm": self.batchnorm,
                    "seed": seed,
                    "epochs": int(options.get("epochs", self.epochs)),
                    "protocol": dict(sorted(protocol.items())),
                    "cell": cell,
                    "measures": list(self.measures),
                    "settings": dict(sorted(self.settings.items())),
                }
                out[task_key(payload)] = payload
        return out
