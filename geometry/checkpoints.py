"""Loading and saving checkpoints safely.

Formats: ``.pt/.pth`` state dicts (``torch.load(weights_only=True)`` only — a full pickle can run
arbitrary code, so it is refused unless the caller passes ``trust_pickle=True``), ``.safetensors``
(architecture may sit in the metadata under ``splineatlas_arch``), and TorchScript archives.
Trainer formats that nest the state dict under ``state_dict``/``model``/... and prefix keys with
``module.``/``model.`` are unwrapped. Spline Atlas checkpoints embed their architecture spec.
"""
from __future__ import annotations

import json
import os
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .errors import ArchitectureError, InputFileError, UnsafePickleError
from .network import Network
from .spec import load_spec_file, spec_from_module, validate_spec

NESTED_KEYS = ("state_dict", "model_state_dict", "model", "net", "network", "weights", "params", "module")
PREFIXES = ("module.", "model.", "net.", "network.", "_orig_mod.", "layers.")
ARCH_FILES = ("architecture.json", "arch.json")


@dataclass
class RawCheckpoint:
    """What a checkpoint file holds before it meets an architecture."""

    state: dict[str, torch.Tensor]
    spec: dict | None = None
    meta: dict = field(default_factory=dict)


def _is_torchscript(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as z:
            return any(n.split("/", 1)[-1].startswith("code/") or n.endswith("constants.pkl") for n in z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def _strip_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    changed = True
    while changed and state:
        changed = False
        for p in PREFIXES:
            if all(k.startswith(p) for k in state):
                state = {k[len(p):]: v for k, v in state.items()}
                changed = True
    return state


def _tensor_dict(obj) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def _module_spec(module: torch.nn.Module, path: Path) -> tuple[dict, dict]:
    """Canonicalise a saved module; its input shape comes from the module or an architecture.json beside it."""
    beside = find_architecture_file(path.parent)
    shape = None
    if beside is not None:
        try:
            shape = json.loads(beside.read_text()).get("input_shape")
        except (json.JSONDecodeError, AttributeError, OSError):
            raise InputFileError(f"{beside} is not a JSON object with an 'input_shape'.") from None
    try:
        return spec_from_module(module, input_shape=shape)
    except ArchitectureError as exc:
        raise ArchitectureError(f"{path}: {exc}") from None


def _from_loaded(obj, path: Path) -> RawCheckpoint:
    if isinstance(obj, torch.nn.Module):
        spec, state = _module_spec(obj, path)
        return RawCheckpoint(state, spec)
    if not isinstance(obj, dict):
        raise InputFileError(f"{path} holds a {type(obj).__name__}, not a state dict or model; save model.state_dict().")
    meta = {k: v for k, v in obj.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)}
    spec = obj.get("arch") or obj.get("architecture")
    if _tensor_dict(obj):
        state = obj
    else:
        nested = next((obj[k] for k in NESTED_KEYS if k in obj and (_tensor_dict(obj[k]) or isinstance(obj[k], torch.nn.Module))), None)
        if nested is None:
            raise InputFileError(
                f"{path} has no state dict (keys: {', '.join(map(str, list(obj)[:8]))}); "
                f"expected tensors at the top level or under one of {', '.join(NESTED_KEYS)}."
            )
        if isinstance(nested, torch.nn.Module):
            spec2, state = _module_spec(nested, path)
            spec = spec or spec2
        else:
            state = nested
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    return RawCheckpoint(_strip_prefixes(dict(state)), spec if isinstance(spec, dict) else None, meta)


def read_checkpoint(path: str | Path, trust_pickle: bool = False) -> RawCheckpoint:
    """Read a checkpoint file's tensors (and embedded spec, metadata) without building a network."""
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"checkpoint {path} does not exist.")
    if path.is_dir():
        raise InputFileError(f"{path} is a folder; open it as a run (splineatlas info {path}) or pick a file in it.")
    if path.stat().st_size == 0:
        raise InputFileError(f"checkpoint {path} is empty (0 bytes); it was not written completely — re-save it.")
    if path.suffix == ".safetensors":
        return _read_safetensors(path)
    if zipfile.is_zipfile(path) and _is_torchscript(path):
        try:
            module = torch.jit.load(str(path), map_location="cpu")
        except Exception as exc:  # torch raises RuntimeError subclasses of many kinds here
            raise InputFileError(f"{path} looks like TorchScript but cannot be loaded ({str(exc).splitlines()[0]}).") from None
        spec, state = _module_spec(module, path)
        return RawCheckpoint(state, spec, {"format": "torchscript"})
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights_only" not in str(exc) and "Weights only" not in str(exc):
            raise InputFileError(f"{path} is not a readable checkpoint (corrupt pickle: {str(exc).splitlines()[0]}).") from None
        if not trust_pickle:
            raise UnsafePickleError(
                f"{path} is a full pickle (it stores Python objects, not just tensors); loading it can execute "
                f"arbitrary code. Re-save it with torch.save(model.state_dict()) or, only if you trust its source, "
                f"pass --trust-pickle."
            ) from None
        obj = _load_trusted_pickle(path)
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, KeyError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputFileError(
            f"{path} is truncated or not a PyTorch checkpoint ({first}); re-download or re-save it."
        ) from None
    return _from_loaded(obj, path)


def _load_trusted_pickle(path: Path):
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # arbitrary user code may raise anything; report it as bad input
        raise InputFileError(f"{path} could not be unpickled even with --trust-pickle ({type(exc).__name__}: {exc}).") from None


def _read_safetensors(path: Path) -> RawCheckpoint:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            state = {k: f.get_tensor(k) for k in f.keys()}
            meta = dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError) as exc:
        raise InputFileError(f"{path} is truncated or not a safetensors file ({exc}); re-save it.") from None
    spec = None
    if "splineatlas_arch" in meta:
        try:
            spec = json.loads(meta.pop("splineatlas_arch"))
        except json.JSONDecodeError:
            raise InputFileError(f"{path} has a corrupt architecture in its metadata.") from None
    return RawCheckpoint(_strip_prefixes(state), spec, meta)


def find_architecture_file(folder: Path) -> Path | None:
    return next((folder / n for n in ARCH_FILES if (folder / n).exists()), None)


def resolve_spec(raw: RawCheckpoint, path: Path, spec: dict | str | Path | None) -> dict:
    """The architecture for a checkpoint: explicit > embedded > architecture.json beside it."""
    if isinstance(spec, (str, Path)):
        return load_spec_file(spec)
    if isinstance(spec, dict):
        return validate_spec(spec)
    if raw.spec is not None:
        return validate_spec(raw.spec)
    beside = find_architecture_file(Path(path).parent)
    if beside is not None:
        return load_spec_file(beside)
    raise ArchitectureError(
        f"{path} holds weights but no architecture; put an architecture.json beside it (README: 'Architecture spec')."
    )


def load_checkpoint(path: str | Path, spec: dict | str | Path | None = None, trust_pickle: bool = False) -> Network:
    """Load one checkpoint as a float32 CPU :class:`Network` in eval mode."""
    raw = read_checkpoint(path, trust_pickle)
    net = Network(resolve_spec(raw, Path(path), spec))
    net.load_weights(raw.state, source=str(path))
    return net


def save_checkpoint(path: str | Path, network: Network, **meta) -> None:
    """Write a self-describing checkpoint atomically (temp file + rename): weights, spec, metadata.

    ``.safetensors`` stores the spec in its metadata; anything else is a weights-only torch file.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    state = {k: v.detach().cpu().contiguous() for k, v in network.layers.state_dict().items()}
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(tmp), metadata={"splineatlas_arch": json.dumps(network.spec), **{k: str(v) for k, v in meta.items()}})
    else:
        torch.save({"state_dict": state, "arch": network.spec, **meta}, tmp)
    os.replace(tmp, path)
