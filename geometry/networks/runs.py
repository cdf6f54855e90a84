"""Runs: an ordered series of checkpoints of one architecture (what the epoch slider scrubs).

Sources: a ``run.json`` manifest, a folder of ``epoch_0007.pt``-style files beside an
``architecture.json`` (or with embedded specs), or a single checkpoint (a run of length 1).
``Run.reload()`` picks up checkpoints written since opening, so a run can be watched while training.

run.json::

    {"format": "splineatlas-run/1", "name": "spirals",
     "architecture": {...spec...} | "architecture.json",
     "checkpoints": [{"epoch": 0, "path": "epoch_0000.pt", "train_accuracy": 0.33, ...}, ...],
     "dataset": {"builtin": "spirals", "n": 1000, "seed": 0, "arms": 3} | {"npz": "data.npz"},
     "class_names": ["arm 0", ...],
     "task": "classify" | "regress"}

A regression run (``"task": "regress"``) is a network fitted to float targets; its "boundary" is the level
set {f = L} of its single output, L the run's ``level`` (``--level``, default 0): ``Run.network`` returns
f − L, whose zero set every boundary tool traces, and the two sides are its "classes" (f < L, f > L).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import OrderedDict
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from math import gcd
from pathlib import Path

from geometry.networks.checkpoints import find_architecture_file, read_checkpoint, resolve_spec
from geometry.networks.user_model import active as active_user_architecture
from geometry.networks.user_model import using_model
from geometry.networks.datasets import Dataset, dataset_from_reference
from geometry.networks.preprocessing import parse_preprocessing
from geometry.errors import ArchitectureError, InputFileError, RunError, SplineAtlasError, UnsafePickleError
from geometry.networks.network import Network, state_mismatch
from geometry.safe_io import name, printable, read_json, resolve_member
from geometry.networks.spec import load_spec_file, validate_spec

RUN_FORMAT = "splineatlas-run/1"
CHECKPOINT_NAME = re.compile(
    r"^(?:[a-z0-9]+[_\-])*?(?:epoch|step|ckpt|checkpoint|iter)[_\-=]?(\d+)(?:[_\-](?:step|iter|global_step)[_\-=]?\d+)?\.(?:pt|pth|safetensors|ckpt|pt2|onnx)$",
    re.I,
)
_LEVEL: ContextVar[float | None] = ContextVar("splineatlas_level", default=None)
_PROCESS_LEVEL: list[float | None] = [None]


def set_process_level(level: float | None) -> None:
    """The level of every run opened in this process where no :func:`using_level` says otherwise (the
    app's ``--level``: its runs are opened in worker threads, which do not inherit a context)."""
    _PROCESS_LEVEL[0] = level


@contextmanager
def using_level(level: float | None):
    """Runs opened inside show regression networks at this level (``--level``); None: the default, 0."""
    token = _LEVEL.set(level)
    try:
        yield
    finally:
        _LEVEL.reset(token)


"""Checkpoint files of a run folder and their epoch: epoch_0007.pt, model_epoch_3.pth, ckpt_epoch=3.pt,
checkpoint-1500.pt, and Lightning's epoch=3-step=1200.ckpt (the epoch, not the step)."""
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".safetensors", ".ts", ".ckpt", ".pt2", ".onnx")
HF_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
"""The weights file of a Hugging Face style folder (``save_pretrained``), beside its config.json."""
HF_STEP = re.compile(r"^checkpoint-(\d+)$")
"""A Hugging Face Trainer's checkpoint folder (``output_dir/checkpoint-1500/``): the number is the step."""


def hf_weights(folder: Path) -> Path | None:
    """The weights file of a Hugging Face style folder, or None."""
    return next((folder / f for f in HF_WEIGHTS if (folder / f).is_file()), None)


def hf_config(folder: Path) -> dict | None:
    """config.json of a Hugging Face style folder (or of its first ``checkpoint-N/``), or None."""
    candidates = [folder] + sorted((p for p in folder.iterdir() if p.is_dir() and HF_STEP.match(p.name)), key=lambda p: int(HF_STEP.match(p.name).group(1)))
    for where in candidates[:2]:
        config = where / "config.json"
        if config.is_file() and hf_weights(where) is not None:
            data = read_json(config, "model config", root=where, error=RunError)
            if not isinstance(data, dict):
                raise RunError(f"{name(config)} is not a JSON object of model settings; fix or remove it.")
            return data
    return None


@dataclass(frozen=True)
class CheckpointRef:
    """One checkpoint of a run: its epoch (or step) number, file, and any recorded metrics."""

    epoch: int
    path: Path
    metrics: dict = field(default_factory=dict)


class Run:
    """An ordered series of checkpoints of one architecture, plus an optional dataset."""

    def __init__(
        self,
        name: str,
        source: Path,
        spec: dict,
        checkpoints: list[CheckpointRef],
        dataset_ref: dict | None = None,
        class_names: list[str] | None = None,
        trust_code: bool = False,
        allow_gaps: bool = False,
        cache_size: int = 8,
    ):
        self.name = name
        self.source = source
        self.spec = spec
        self.checkpoints = checkpoints
        self.dataset_ref = dataset_ref
        self._class_names = class_names
        self.trust_code = trust_code
        self.allow_gaps = allow_gaps
        self.model = None  # a user_model.ModelRef when the architecture is the user's class (--model, run.json "model")
        self.task = "classify"  # or "regress", or "generate" (a generator: run.json "task")
        self.level = 0.0  # regression runs: the level L whose set {f = L} the boundary tools trace
        self.preprocessing = None  # geometry.networks.preprocessing.Preprocessing (run.json "preprocessing")
        self.output_shape: tuple[int, int, int] | None = None  # a generator's image outputs (run.json "output_shape")
        self.warnings: list[str] = []
        self._networks: OrderedDict[int, Network] = OrderedDict()
        self._cache_size = cache_size
        self._dataset: Dataset | None = None
        self._dataset_loaded = False
        self._hashes: dict[Path, str] = {}

    def __len__(self) -> int:
        return len(self.checkpoints)

    def __repr__(self) -> str:
        return f"Run({self.name!r}, {len(self)} checkpoints, epochs {self.epochs[:3]}...)"

    @property
    def epochs(self) -> list[int]:
        return [c.epoch for c in self.checkpoints]

    @property
    def folder(self) -> Path:
        return self.source if self.source.is_dir() else self.source.parent

    def index_of_epoch(self, epoch: int) -> int:
        """Index of the checkpoint with this epoch; the nearest earlier one if absent."""
        eps = self.epochs
        if epoch in eps:
            return eps.index(epoch)
        earlier = [i for i, e in enumerate(eps) if e <= epoch]
        if not earlier:
            raise RunError(f"run {self.name!r} has no checkpoint at or before epoch {epoch} (first is {eps[0]}).")
        return earlier[-1]

    def exact_index(self, epoch: int | None) -> int:
        """Index of the checkpoint at exactly ``epoch`` (None: the last). What a user names with --epoch: an
        epoch the run does not hold is refused (not silently replaced), naming the available epochs."""
        if epoch is None:
            return len(self) - 1
        eps = list(self.epochs)
        if epoch in eps:
            return eps.index(epoch)
        shown = ", ".join(map(str, eps)) if len(eps) <= 12 else (", ".join(map(str, eps[:5])) + ", ..., " + ", ".join(map(str, eps[-5:])))
        before = [e for e in eps if e < epoch]
        after = [e for e in eps if e > epoch]
        near = " and ".join(str(e) for e in (before[-1:] + after[:1]))
        raise RunError(f"run {self.name!r} has no checkpoint at epoch {epoch}; available epochs ({len(eps)}): {shown} (nearest: {near}).")

    def epoch_indices(self, text: str) -> list[int]:
        """Checkpoint indices of a user's epoch list: 'all', or comma-separated epochs the run holds (each
        through :meth:`exact_index`). Anything else is a one-line SplineAtlasError."""
        if text.strip().lower() == "all":
            return list(range(len(self)))
        try:
            wanted = [int(t) for t in text.split(",") if t.strip()]
        except ValueError:
            raise SplineAtlasError(f"--epochs expects 'all' or comma-separated integers; got {text!r}.") from None
        if not wanted:
            raise SplineAtlasError("--epochs names no epoch.")
        return [self.exact_index(e) for e in wanted]

    def set_level(self, level: float) -> None:
        """Trace the level set {f = ``level``} of a regression run (a classifier's boundary has no level)."""
        level = float(level)
        if level != 0 and self.task != "regress":
            raise RunError(f'run {self.name!r} is a classifier; --level is for regression runs (run.json "task": "regress").')
        if level != self.level:
            self.level = level
            self._networks.clear()

    @property
    def boundary_name(self) -> str:
        """What this run's boundary is called in every tool: the decision boundary, or the level set."""
        if self.task == "generate":
            return "boundary of the largest output"
        return f"level set f = {self.level:g}" if self.task == "regress" else "decision boundary"

    def network(self, i: int, at_level: bool = True) -> Network:
        """The i-th checkpoint as a float32 CPU Network (a small LRU cache keeps recent ones). A regression
        run's network is f − level (``at_level=False``: f itself, for scores against the targets)."""
        net = self._network(i)
        if at_level and self.level != 0:
            return net.at_level(self.level)
        return net

    def _network(self, i: int) -> Network:
        if not -len(self) <= i < len(self):
            raise RunError(f"checkpoint index {i} is out of range; run {self.name!r} has {len(self)} checkpoints.")
        i %= len(self)
        if i in self._networks:
            self._networks.move_to_end(i)
            return self._networks[i]
        ref = self.checkpoints[i]
        with using_model(self.model):
            raw = read_checkpoint(ref.path, self.trust_code, root=self.folder)
        net = Network(self.spec)
        net.load_weights(raw.state, source=f"checkpoint {name(ref.path.name)} (epoch {ref.epoch})")
        self._networks[i] = net
        while len(self._networks) > self._cache_size:
            self._networks.popitem(last=False)
        return net

    def checkpoint_hash(self, i: int) -> str:
        """SHA-256 of the checkpoint file's bytes (cache key of results computed from it); a regression run
        at a level L ≠ 0 adds L, since its network (f − L) and everything computed from it differ."""
        p = self.checkpoints[i].path
        if p not in self._hashes:
            self._hashes[p] = hashlib.sha256(p.read_bytes()).hexdigest()
        if self.level:
            return hashlib.sha256(f"{self._hashes[p]} level={self.level!r}".encode()).hexdigest()
        return self._hashes[p]

    @property
    def dataset(self) -> Dataset | None:
        """The run's dataset, if its manifest names one (created lazily, deterministically)."""
        if not self._dataset_loaded:
            self._dataset_loaded = True
            if self.dataset_ref:
                ds = self._preprocessed(dataset_from_reference(self.dataset_ref, self.folder, self.data_task))
                self._check_dataset(ds)
                self._dataset = ds
        return self._dataset

    def _preprocessed(self, dataset: Dataset) -> Dataset:
        """Raw ``dataset`` in the network's input space (the run's preprocessing applied, once)."""
        if self.preprocessing is None or dataset.preprocessing is not None:
            return dataset
        return self.preprocessing.apply(dataset)

    @property
    def data_task(self) -> str:
        """The kind of data the run was fitted to: a generator's are (latent code, output) pairs, as a regression's."""
        return "regress" if self.task == "generate" else self.task

    def _check_dataset(self, dataset: Dataset) -> None:
        if dataset.task != self.data_task:
            raise RunError(f"dataset {dataset.name!r} is a {dataset.task} dataset but run {self.name!r} is a {self.task} run; give a dataset of its kind.")
        outputs = self.spec.get("output_dim") if self.data_task == "regress" else self.spec.get("num_classes")
        dataset.check_fits(int(Network(self.spec).input_dim), outputs)

    def attach_dataset(self, dataset: Dataset) -> None:
        """Use ``dataset`` (raw: the run's preprocessing is applied) for this run, checked against the
        network's input size and the run's task."""
        dataset = self._preprocessed(dataset)
        self._check_dataset(dataset)
        self._dataset, self._dataset_loaded = dataset, True

    @property
    def class_names(self) -> list[str]:
        if self.data_task == "regress":  # the two sides of the level set are what the class colours show
            if self.spec.get("output_dim") == 1 and self.task == "regress":
                return [f"f < {self.level:g}", f"f > {self.level:g}"]
            return [f"output {i}" for i in range(self.spec["output_dim"])]
        if self._class_names:
            return list(self._class_names)
        if self.dataset is not None and self.dataset.class_names:
            return list(self.dataset.class_names)
        return [str(i) for i in range(int(self.spec.get("num_classes", 2)))]

    def metrics(self, name: str) -> list[float | None]:
        """A recorded metric (e.g. ``train_accuracy``) per checkpoint, None where absent."""
        return [c.metrics.get(name) for c in self.checkpoints]

    def reload(self) -> int:
        """Re-read the source; return how many checkpoints were added."""
        with using_model(self.model):
            fresh = open_run(self.source, trust_code=self.trust_code, allow_gaps=self.allow_gaps)
        added = len(fresh) - len(self)
        known = {c.path: c for c in self.checkpoints}
        if any(known.get(c.path, c).epoch != c.epoch for c in fresh.checkpoints):
            self._networks.clear()
        self.checkpoints, self.warnings = fresh.checkpoints, fresh.warnings
        return added


def open_run(path: str | Path, trust_code: bool = False, allow_gaps: bool = False) -> Run:
    """Open ``path``: a run.json, a folder (with run.json, or epoch_*.pt files), or one checkpoint."""
    from geometry.networks.user_model import current_ref, manifest_model, ref_with_config

    path = Path(path)
    if not path.exists():
        raise InputFileError(f"{name(path)} does not exist; give a run.json, a run folder or a checkpoint file.")
    manifest = path / "run.json" if path.is_dir() and (path / "run.json").exists() else path if path.suffix == ".json" else None
    data = read_json(manifest, "run manifest", allow_nan=True, error=RunError) if manifest is not None else None
    ref = current_ref()  # --model: the user's class is the architecture of every checkpoint
    if ref is None and isinstance(data, dict) and "model" in data:
        ref = manifest_model(data["model"], manifest.parent, manifest, trust_code)
    if manifest is None and path.is_dir() and ref is not None and not ref.kwargs:
        config = hf_config(path)
        if config is not None:  # save_pretrained's config.json: the class's constructor settings
            ref = ref_with_config(ref, config, path)
    with using_model(ref):
        if manifest is not None:
            run = _open_manifest(manifest, trust_code, allow_gaps, data)
        elif path.is_dir():
            run = _open_folder(path, trust_code, allow_gaps)
        else:
            run = _open_single(path, trust_code)
    run.model = ref  # later reads (other threads, reloads) use the same class
    if isinstance(data, dict) and data.get("task") in ("regress", "generate"):
        run.task = data["task"]
    if isinstance(data, dict) and data.get("output_shape") is not None:  # its form is checked by the manifest's schema
        run.output_shape = _output_shape(data["output_shape"], run, manifest)
    if isinstance(data, dict) and data.get("preprocessing") is not None:  # checked by the manifest's schema already
        run.preprocessing = parse_preprocessing(data["preprocessing"], f"{name(manifest)}: preprocessing")
    level = _LEVEL.get()
    level = _PROCESS_LEVEL[0] if level is None else level
    if level:  # 0 is every run's level already
        run.set_level(level)
    return run


def _output_shape(shape, run: Run, manifest) -> tuple[int, int, int]:
    """run.json's ``output_shape`` [C, H, W] of a generator, checked against its network's outputs."""
    C, H, W = (int(v) for v in shape)
    if run.task != "generate":
        raise RunError(f'{name(manifest)}: field output_shape: only a generator has image outputs; add "task": "generate" or remove the field.')
    if C not in (1, 3):
        raise RunError(f"{name(manifest)}: field output_shape: {C} channels; a picture has 1 (grey) or 3 (RGB); fix the field.")
    outputs = run.spec.get("output_dim")
    if outputs is not None and C * H * W != outputs:
        raise RunError(f"{name(manifest)}: field output_shape: {C}x{H}x{W} = {C * H * W} values, but the network has {outputs} outputs; fix the field.")
    return C, H, W


def _open_single(path: Path, trust_code: bool) -> Run:
    raw = read_checkpoint(path, trust_code)
    spec = resolve_spec(raw, path, None)
    net = Network(spec)
    net.load_weights(raw.state, source=name(path))
    epoch = raw.meta.get("epoch", 0)
    if not isinstance(epoch, int) or isinstance(epoch, bool) or not 0 <= epoch <= 10**15:
        raise InputFileError(
            f"checkpoint {name(path)}: its 'epoch' entry ({printable(repr(epoch), 30)}) is not a whole number >= 0; re-save it with an integer epoch."
        )
    run = Run(path.stem, path, spec, [CheckpointRef(epoch, path, _metrics(raw.meta))], trust_code=trust_code)
    run._networks[0] = net
    return run


def _metrics(meta: dict) -> dict:
    return {k: v for k, v in meta.items() if k not in ("epoch", "format", "path")}


def _open_manifest(path: Path, trust_code: bool, allow_gaps: bool, data) -> Run:
    """A run.json's run; ``data``: the manifest as read by :func:`open_run` (read once)."""
    from geometry.networks.schemas import RunManifest, validate_document

    folder = path.parent
    if not isinstance(data, dict) or not isinstance(data.get("checkpoints"), list):
        raise RunError(f"run manifest {name(path)} needs a 'checkpoints' list (see README, 'Runs').")
    manifest = validate_document(RunManifest, data, f"run manifest {name(path)}", RunError, "README: 'run.json'")
    arch = data.get("architecture")
    user = active_user_architecture()
    if user is not None:
        spec = user.spec
    elif isinstance(arch, str):
        spec = load_spec_file(resolve_member(folder, arch, "'architecture'", path), root=folder)
    elif isinstance(arch, dict):
        try:
            spec = validate_spec(arch)
        except ArchitectureError as exc:
            raise ArchitectureError(f"run manifest {name(path)}: {exc}") from None
    else:
        beside = find_architecture_file(folder)
        if beside is None:
            raise RunError(f"run manifest {name(path)} names no 'architecture' and there is no architecture.json beside it.")
        spec = load_spec_file(beside, root=folder)
    refs = []
    for i, entry in enumerate(manifest.checkpoints):
        p = resolve_member(folder, entry.path, f"checkpoints[{i}].path", path)
        epoch = entry.epoch if entry.epoch is not None else entry.step if entry.step is not None else i
        metrics = {
            k: v
            for k, v in (entry.model_extra or {}).items()
            if isinstance(k, str) and isinstance(v, (int, float, str, type(None))) and not isinstance(v, bool)
        }
        refs.append(CheckpointRef(epoch, p, metrics))
    if not refs:
        raise RunError(f"run manifest {name(path)} lists no checkpoints yet; wait for the first one or check the path.")
    epochs = [r.epoch for r in refs]
    if len(set(epochs)) != len(refs):
        dup = sorted({e for e in epochs if epochs.count(e) > 1})[:3]
        raise RunError(f"run manifest {name(path)} lists epoch {', '.join(map(str, dup))} twice; epochs must be unique.")
    refs.sort(key=lambda r: r.epoch)
    if manifest.dataset is not None and "npz" in data["dataset"]:
        resolve_member(folder, data["dataset"]["npz"], "dataset.npz", path)
    run = Run(manifest.name or folder.name, path, spec, refs, data.get("dataset"), manifest.class_names, trust_code, allow_gaps)
    _check_checkpoints(run, allow_missing_last=True)
    return run


def _open_folder(folder: Path, trust_code: bool, allow_gaps: bool) -> Run:
    try:
        entries = list(folder.iterdir())
    except OSError as exc:
        raise InputFileError(f"folder {name(folder)} cannot be listed ({exc.strerror or type(exc).__name__}).") from None
    if len(entries) > 1_000_000:
        raise RunError(f"folder {name(folder)} holds {len(entries):,} entries; that is not a run folder.")
    files = sorted(p for p in entries if CHECKPOINT_NAME.match(p.name))
    single = hf_weights(folder)
    if not files and single is not None:  # a save_pretrained folder: one checkpoint
        run = _open_single(single, trust_code)
        run.name, run.source = folder.name, folder
        return run
    steps = sorted((p for p in entries if p.is_dir() and HF_STEP.match(p.name) and hf_weights(p)), key=lambda p: int(HF_STEP.match(p.name).group(1)))
    if not files and steps:  # a Trainer's output_dir: checkpoint-500/, checkpoint-1000/, ...
        files = [hf_weights(p) for p in steps]
        numbers = {f: int(HF_STEP.match(f.parent.name).group(1)) for f in files}
    else:
        numbers = {f: int(CHECKPOINT_NAME.match(f.name).group(1)) for f in files}
    if not files:
        others = [name(p.name) for p in entries if p.suffix in CHECKPOINT_SUFFIXES]
        hint = f" (found {', '.join(others[:4])}: rename them like epoch_0007.pt or write a run.json)" if others else ""
        raise RunError(f"folder {name(folder)} has no run.json and no checkpoints named like epoch_0007.pt{hint}.")
    refs = sorted((CheckpointRef(numbers[p], p) for p in files), key=lambda r: r.epoch)
    if len({r.epoch for r in refs}) != len(refs):
        raise RunError(f"folder {name(folder)} has two checkpoints with the same epoch number; keep one of each.")
    arch_file = find_architecture_file(folder)
    user = active_user_architecture()
    if user is not None:
        spec = user.spec
    elif arch_file:
        spec = load_spec_file(arch_file, root=folder)
    else:
        spec = resolve_spec(read_checkpoint(refs[0].path, trust_code, root=folder), refs[0].path, None)
    run = Run(folder.name, folder, spec, refs, trust_code=trust_code, allow_gaps=allow_gaps)
    missing = _missing_epochs([r.epoch for r in refs])
    if missing and not allow_gaps:
        shown = ", ".join(map(str, missing[:8])) + (" ..." if len(missing) > 8 else "")
        raise RunError(f"run folder {name(folder)} has gaps: no checkpoint for epoch(s) {shown}; restore them or pass --allow-gaps.")
    if missing:
        run.warnings.append(f"gaps in the run: epochs {missing[:8]} are missing")
    _check_checkpoints(run, allow_missing_last=True)
    return run


def _missing_epochs(epochs: list[int]) -> list[int]:
    """Epochs missing from an otherwise regular series (step = gcd of the differences)."""
    if len(epochs) < 3:
        return []
    diffs = [b - a for a, b in zip(epochs, epochs[1:])]
    step = 0
    for d in diffs:
        step = gcd(step, d)
    if step <= 0 or (epochs[-1] - epochs[0]) // step > 4 * len(epochs):  # irregular (e.g. log-spaced): no gap check
        return []
    present = set(epochs)
    return [e for e in range(epochs[0], epochs[-1] + 1, step) if e not in present]


def _check_checkpoints(run: Run, allow_missing_last: bool) -> None:
    """Check every checkpoint exists and matches the run's architecture (shapes only; cheap).

    A missing or unreadable *newest* checkpoint is dropped with a warning (it may still be being
    written); any other problem is an error that names the file.
    """
    target = {k: tuple(v.shape) for k, v in Network(run.spec).layers.state_dict().items()}
    good = []
    for i, ref in enumerate(run.checkpoints):
        last = i == len(run.checkpoints) - 1
        try:
            if not os.path.lexists(ref.path):
                raise InputFileError(f"checkpoint {name(ref.path)} listed for epoch {ref.epoch} does not exist")
            raw = read_checkpoint(ref.path, run.trust_code, root=run.folder)
        except SplineAtlasError as exc:
            if last and allow_missing_last and len(run.checkpoints) > 1 and not isinstance(exc, ArchitectureError):
                run.warnings.append(f"newest checkpoint skipped (still being written?): {exc}")
                continue
            kind = UnsafePickleError if isinstance(exc, UnsafePickleError) else RunError  # the app offers trust
            raise kind(f"run {printable(run.name, 60)!r}: {exc}") from None
        parts = state_mismatch(target, {k: tuple(v.shape) for k, v in raw.state.items()})
        if parts:
            where = f"{name(ref.path.name)} (epoch {ref.epoch}) does not match the run's architecture: {'; '.join(parts)}"
            if good:  # earlier checkpoints matched: this one is of another network
                raise RunError(f"run {printable(run.name, 60)!r} mixes architectures: {where}; keep one architecture per run.")
            raise RunError(f"run {printable(run.name, 60)!r}: {where}; check that the architecture spec is the one the weights were trained with.")
        good.append(ref)
    run.checkpoints = good
