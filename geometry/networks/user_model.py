"""Where a checkpoint's architecture comes from when it is the user's own ``nn.Module`` class.

``--model models.py:LeNet5`` (with ``--model-kwargs '{"num_classes": 10}'`` and ``--input-shape 1 28 28``)
names the class; ``--model torchvision:resnet18`` names a torchvision model (built with random weights,
never downloaded). Importing the user's file runs its code: that is the user's explicit choice when they
pass ``--model``, and the CLI says so when it imports it. The class is instantiated once and canonicalised
by :func:`geometry.networks.spec.spec_from_module` (a chain of supported layers, traced with ``torch.fx``
when it is not a Sequential); its own parameter names (``conv1.weight``) are mapped onto the canonical
ones (``0.weight``), so a state dict saved from the class opens. A state dict that does not fit the class
is refused naming the missing, unexpected and mis-shaped keys.

While :func:`using_model` is active, :func:`geometry.networks.checkpoints.read_checkpoint` hands every
checkpoint it reads to :func:`active` for this translation, so runs, folders and single files all open.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import sys
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

import torch

from geometry.errors import ArchitectureError, InputFileError
from geometry.safe_io import name, printable


@dataclass(frozen=True)
class ModelRef:
    """The user's model: ``source`` a .py file (or "torchvision"), ``cls`` the class or model name,
    ``kwargs`` its constructor arguments, ``input_shape`` the input's shape without the batch axis."""

    source: str
    cls: str
    kwargs: dict = field(default_factory=dict, hash=False, compare=False)
    input_shape: tuple[int, ...] | None = None
    kwargs_text: str = "{}"


def parse_model_ref(text: str, kwargs: str | None = None, input_shape=None) -> ModelRef:
    """``FILE.py:CLASS`` or ``torchvision:NAME``, JSON constructor keywords, and an optional input shape."""
    source, sep, cls = (text or "").rpartition(":")
    if not sep or not source or not cls.isidentifier():
        raise ArchitectureError(f"--model {text!r}: write FILE.py:CLASS (e.g. models.py:LeNet5) or torchvision:NAME (e.g. torchvision:resnet18).")
    try:
        kw = json.loads(kwargs) if kwargs else {}
    except json.JSONDecodeError as exc:
        raise ArchitectureError(f"--model-kwargs is not JSON ({exc.msg}); write e.g. '{{\"num_classes\": 10}}'.") from None
    if not isinstance(kw, dict):
        raise ArchitectureError("--model-kwargs must be a JSON object of constructor keywords, e.g. '{\"num_classes\": 10}'.")
    shape = None
    if input_shape:
        shape = tuple(int(v) for v in input_shape)
        if not 1 <= len(shape) <= 4 or min(shape) < 1:
            raise ArchitectureError(f"--input-shape {list(shape)}: give 1 to 4 positive sizes without the batch axis, e.g. 1 28 28.")
    return ModelRef(source, cls, kw, shape, json.dumps(kw, sort_keys=True))


def _import_class(ref: ModelRef):
    if ref.source == "torchvision":
        try:
            import torchvision.models as tvm
        except ImportError:
            raise ArchitectureError("--model torchvision:... needs torchvision, which is not installed here (pip install torchvision).") from None
        except Exception as exc:  # installed, but built for another torch: its C++ operators do not register
            raise ArchitectureError(
                f"--model torchvision:...: torchvision is installed but does not import ({type(exc).__name__}: {printable(str(exc), 120)}); "
                "install the torchvision build made for this torch."
            ) from None
        return lambda **kw: tvm.get_model(ref.cls, weights=None, **kw)  # an unknown name fails when built, named there
    path = Path(ref.source)
    if path.suffix != ".py" or not path.is_file():
        raise InputFileError(f"--model {ref.source}:{ref.cls}: {name(path)} is not a Python file (.py).")
    folder = str(path.resolve().parent)
    mod_name = f"splineatlas_user_model_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(mod_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, folder)  # the file may import its neighbours
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the user's code: any failure is reported as bad input
        raise ArchitectureError(f"importing {name(path)} failed ({type(exc).__name__}: {exc}).") from exc
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(folder)
    cls = getattr(module, ref.cls, None)
    if cls is None:
        found = sorted(n for n, v in vars(module).items() if isinstance(v, type) and issubclass(v, torch.nn.Module))
        raise ArchitectureError(f"{name(path)} has no class {ref.cls}; it defines {', '.join(found) or 'no nn.Module class'}.")
    return cls


@dataclass(frozen=True, eq=False)
class UserArchitecture:
    """The canonical spec of the user's class and how its parameter names map onto the spec's."""

    ref: ModelRef
    spec: dict
    key_map: dict  # the class's state-dict key -> the canonical key
    shapes: dict  # the class's state-dict key -> shape

    def translate(self, state: dict, path: Path) -> dict:
        """``state`` (the class's keys) under the canonical keys; refuses a state dict that does not fit."""
        missing = [k for k in self.shapes if k not in state and not k.endswith("num_batches_tracked")]
        unexpected = [k for k in state if k not in self.shapes]
        misshaped = [
            f"{k} {tuple(state[k].shape)} (the class has {self.shapes[k]})" for k in self.shapes if k in state and tuple(state[k].shape) != self.shapes[k]
        ]
        if missing or unexpected or misshaped:
            parts = []
            for label, keys in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped)):
                if keys:
                    parts.append(f"{label}: {', '.join(keys[:4])}{' …' if len(keys) > 4 else ''}")
            raise ArchitectureError(f"{name(path)} does not fit {self.ref.cls}({self.ref.kwargs_text}): {'; '.join(parts)}. Check --model and --model-kwargs.")
        return {self.key_map[k]: v for k, v in state.items() if k in self.key_map}


_CACHE: dict[ModelRef, UserArchitecture] = {}


def user_architecture(ref: ModelRef) -> UserArchitecture:
    """Instantiate the class once (seeded; its weights are replaced by the checkpoint's) and canonicalise it."""
    from geometry.networks.spec import spec_from_module

    if ref in _CACHE:
        return _CACHE[ref]
    cls = _import_class(ref)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        try:
            module = cls(**ref.kwargs).eval()
        except Exception as exc:
            raise ArchitectureError(f"{ref.cls}(**{ref.kwargs_text}) could not be built ({type(exc).__name__}: {exc}); check --model-kwargs.") from exc
        own = module.state_dict()
        with torch.no_grad():  # distinct values in every tensor, so each canonical tensor names its source
            for i, t in enumerate(own.values()):
                if t.is_floating_point():
                    t.copy_(torch.randn_like(t) + 10.0 * i)
    try:
        spec, canon = spec_from_module(module, list(ref.input_shape) if ref.input_shape else None)
    except ArchitectureError as exc:
        if "cannot infer the input shape" in str(exc):
            raise ArchitectureError(f"{ref.cls} does not start with a Linear layer, so give its input shape: --input-shape C H W (e.g. 1 28 28).") from None
        raise ArchitectureError(f"{ref.cls}: {exc}") from None
    float_own = {k: t for k, t in own.items() if t.is_floating_point()}
    key_map = {}
    for ck, ct in canon.items():
        if not ct.is_floating_point():  # BatchNorm's num_batches_tracked: not needed in eval mode
            continue
        src = next((k for k, t in float_own.items() if k not in key_map and t.shape == ct.shape and torch.equal(t, ct)), None)
        if src is None:
            raise ArchitectureError(f"internal: could not match the canonical tensor {ck} of {ref.cls} to one of its parameters.")
        key_map[src] = ck
    ua = UserArchitecture(ref, spec, key_map, {k: tuple(t.shape) for k, t in own.items()})
    _CACHE[ref] = ua
    return ua


_ACTIVE: ContextVar[ModelRef | None] = ContextVar("splineatlas_user_model", default=None)


_PROCESS_MODEL: ModelRef | None = None


def set_process_model(ref: ModelRef | None) -> None:
    """The model of every read in this process where no :func:`using_model` says otherwise (the app's
    ``--model``: its worker threads do not share a context)."""
    global _PROCESS_MODEL
    _PROCESS_MODEL = ref


def current_ref() -> ModelRef | None:
    ref = _ACTIVE.get()
    return ref if ref is not None else _PROCESS_MODEL


def manifest_model(entry, folder: Path, manifest: Path, trust_code: bool) -> ModelRef:
    """run.json's ``"model": {"file": "models.py", "class": "LeNet5", "kwargs": {...}, "input_shape": [...]}``:
    the file stays inside the run folder, and importing it runs its code, so it needs ``trust_code``."""
    from geometry.errors import RunError, UnsafePickleError
    from geometry.safe_io import resolve_member

    if not isinstance(entry, dict) or not isinstance(entry.get("file"), str) or not isinstance(entry.get("class"), str):
        raise RunError(f'run manifest {name(manifest)}: \'model\' must be {{"file": "models.py", "class": "LeNet5"}} (optional kwargs, input_shape).')
    file = resolve_member(folder, entry["file"], "model.file", manifest)
    if not trust_code:
        raise UnsafePickleError(
            f"run manifest {name(manifest)} builds its network with class {printable(entry['class'], 60)} from {name(file)}: importing it runs "
            f'its code. Only if you trust that file, pass --trust-code (in the app: answer "Trust and open").'
        )
    kwargs = entry.get("kwargs") or {}
    shape = entry.get("input_shape")
    return parse_model_ref(f"{file}:{entry['class']}", json.dumps(kwargs), shape)


def ref_with_config(ref: ModelRef, config: dict, folder: Path) -> ModelRef:
    """``ref`` with its constructor keywords read from a Hugging Face style config.json: the keys the class's
    ``__init__`` takes (all of them if it takes ``**kwargs``); bookkeeping keys such as ``architectures``
    or ``model_type`` are left out. A class that wants a config object is refused with the fix."""
    import inspect

    cls = _import_class(ref)
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return ref
    if "config" in params:
        raise ArchitectureError(
            f"{ref.cls} takes a config object; give its settings with --model-kwargs (the JSON of {name(folder / 'config.json')} is not built into one)."
        )
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    kwargs = {k: v for k, v in config.items() if (k in params or takes_any) and k not in ("architectures", "model_type", "transformers_version", "torch_dtype")}
    return ModelRef(ref.source, ref.cls, kwargs, ref.input_shape, json.dumps(kwargs, sort_keys=True))


@contextlib.contextmanager
def using_model(ref: ModelRef | None):
    """While active, every checkpoint read takes its architecture from ``ref`` (None: no change)."""
    token = _ACTIVE.set(ref) if ref is not None else None
    try:
        yield
    finally:
        if token is not None:
            _ACTIVE.reset(token)


def active() -> UserArchitecture | None:
    ref = current_ref()
    return user_architecture(ref) if ref is not None else None
