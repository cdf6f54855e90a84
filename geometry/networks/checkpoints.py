"""Loading and saving checkpoints safely.

Formats: ``.pt/.pth`` state dicts (``torch.load(weights_only=True)`` after a static scan of the
pickle's globals — a full pickle can run arbitrary code, so it is refused unless the caller passes
``trust_code=True``), ``.safetensors`` (architecture may sit in the metadata under
``splineatlas_arch``), and TorchScript archives (code: their weights are read without running it,
the architecture then comes from an ``architecture.json`` beside them; ``trust_code`` runs it).
Trainer formats that nest the state dict under ``state_dict``/``model``/... and prefix keys with
``module.``/``model.`` are unwrapped. Spline Atlas checkpoints embed their architecture spec.
"""

from __future__ import annotations

import functools
import io
import json
import os
import pickle
import shutil
import struct
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from geometry.networks import pickle_scan
from geometry.errors import ArchitectureError, InputFileError, UnsafePickleError
from geometry.networks.network import Network
from geometry.safe_io import MAX_JSON_BYTES, atomic_output, check_zip_members, checked_file, max_checkpoint_bytes, name, parse_json, printable, read_json
from geometry.networks.spec import load_spec_file, spec_from_module, validate_spec
from geometry.networks.torchscript_weights import read_torchscript_weights

NESTED_KEYS = ("state_dict", "model_state_dict", "model", "net", "network", "weights", "params", "module", "ema", "model_ema", "state_dict_ema")
"""Where trainers put the weights, in order of preference (the raw weights before an EMA copy)."""
PREFIXES = ("module.", "model.", "net.", "network.", "_orig_mod.", "layers.")
ARCH_FILES = ("architecture.json", "arch.json")


@dataclass
class RawCheckpoint:
    """What a checkpoint file holds before it meets an architecture."""

    state: dict[str, torch.Tensor]
    spec: dict | None = None
    meta: dict = field(default_factory=dict)


def _strip_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    changed = True
    while changed and state:
        changed = False
        for p in PREFIXES:
            if all(k.startswith(p) for k in state):
                state = {k[len(p) :]: v for k, v in state.items()}
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
            shape = read_json(beside, "architecture file", limit=MAX_JSON_BYTES).get("input_shape")
        except AttributeError:
            raise InputFileError(f"{name(beside)} is not a JSON object with an 'input_shape'.") from None
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
    _check_tensors(state, path)
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    return RawCheckpoint(_strip_prefixes(dict(state)), spec if isinstance(spec, dict) else None, meta)


def read_checkpoint(path: str | Path, trust_code: bool = False, root: Path | None = None) -> RawCheckpoint:
    """Read a checkpoint file's tensors (and embedded spec, metadata) without building a network.

    Nothing in the file is executed unless ``trust_code`` is set: pickles are read by torch's
    weights-only unpickler after a static scan of their globals, TorchScript archives by a restricted
    unpickler that only rebuilds tensors. ``root``: the folder the file must stay inside.
    """
    path = Path(path)
    limit = max_checkpoint_bytes()
    real = checked_file(path, "checkpoint", limit, root)
    if real.stat().st_size == 0:
        raise InputFileError(f"checkpoint {name(path)} is empty (0 bytes); it was not written completely — re-save it.")
    if path.suffix == ".safetensors":
        raw = _read_safetensors(real, path)
    elif path.suffix.lower() == ".pt2":
        raw = _read_export(real, path, limit)
    elif path.suffix.lower() == ".onnx":
        from geometry.networks.onnx_import import read_onnx

        spec, state = read_onnx(real, path)  # a protobuf: nothing in it runs
        raw = RawCheckpoint(state, spec, {"format": "onnx"})
    else:
        with open(real, "rb") as fh:
            head = fh.read(512)
        if head[:4] == b"PK\x03\x04":
            raw = _read_zip_checkpoint(real, path, limit, trust_code)
        elif _is_tar(head):
            raise InputFileError(
                f"{name(path)} is in the legacy .tar checkpoint format of torch < 0.4, which cannot "
                f"be read safely; re-save it with a current torch (torch.save(state_dict))."
            )
        elif len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
            raw = _read_legacy_pickle(real, path, trust_code)
        else:
            raise InputFileError(
                f"{name(path)} is not a checkpoint ({_what_it_looks_like(head, path)}); give a "
                f".pt/.pth state dict, a .safetensors file, an .onnx or .pt2 graph, or a TorchScript archive."
            )
    _check_tensors(raw.state, path)
    from geometry.networks.user_model import active

    user = active()  # --model: the user's class gives the architecture and names the weights
    if user is not None:
        raw = RawCheckpoint(user.translate(raw.state, path), user.spec, raw.meta)
    return raw


def _read_export(real: Path, path: Path, limit: int) -> RawCheckpoint:
    """A ``torch.export.save`` archive: its JSON graph and raw weight bytes (nothing in it runs)."""
    from geometry.networks.export_import import read_export

    spec, state = read_export(real, path, limit)
    return RawCheckpoint(state, spec, {"format": "torch.export"})


def _is_tar(head: bytes) -> bool:
    return len(head) >= 262 and head[257:262] == b"ustar"


def _what_it_looks_like(head: bytes, path: Path) -> str:
    if head.startswith(b"\x89HDF"):
        return "it is an HDF5 file (Keras?); export the model to ONNX or a torch state dict"
    if head.startswith(b"\x93NUMPY"):
        return "it is a NumPy .npy array"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return "its bytes match no checkpoint format"
    if "\x00" in text:
        return "its bytes match no checkpoint format"
    if text.lstrip().startswith(("{", "[")):
        return "it is JSON text; open the run folder or run.json instead"
    return "it is text"


def _refuse_code(path: Path, what: str) -> UnsafePickleError:
    return UnsafePickleError(
        f"{name(path)} {what}; loading it would run code stored in the file. Re-save the weights with "
        f"torch.save(model.state_dict()) or, only if you trust its source, pass --trust-code "
        f'(in the app: answer "Trust and open").'
    )


def _scan_problem(path: Path, scans: list) -> str | None:
    """Why the pickles of a checkpoint are not plain data (None if they are)."""
    found = tuple(g for s in scans for g in s.globals)
    problem = next((s.problem for s in scans if s.problem), None)
    unsafe = pickle_scan.unsafe_globals(found)
    if unsafe:
        shown = ", ".join(printable(u, 80) for u in unsafe[:4]) + (" ..." if len(unsafe) > 4 else "")
        return f"holds Python objects that are not plain data ({shown})"
    if problem and not problem.startswith(("is not a valid pickle", "ends without STOP")):
        return f"holds a pickle that {problem}"
    if problem:
        raise InputFileError(f"{name(path)} is truncated or damaged (its pickle {problem}); re-download or re-save it.")
    return None


def _read_zip_checkpoint(real: Path, path: Path, limit: int, trust_code: bool) -> RawCheckpoint:
    from geometry.networks.export_import import is_export_archive

    with check_zip_members(real, "checkpoint", limit) as z:
        names = z.namelist()
        if is_export_archive(names):  # a torch.export archive under another suffix (model.pt)
            return _read_export(real, path, limit)
        data_pkl = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
        if not data_pkl:
            kind = "an .npz archive" if any(n.endswith(".npy") for n in names) else "a zip archive"
            raise InputFileError(
                f"{name(path)} is not a checkpoint ({kind} without a PyTorch data.pkl); give a "
                f".pt/.pth state dict, a .safetensors file, an .onnx or .pt2 graph, or a TorchScript archive."
            )
        torchscript = any(n.split("/", 1)[-1].startswith("code/") or n.endswith("/constants.pkl") for n in names)
        if torchscript:
            if not trust_code:
                state, classes = read_torchscript_weights(path, z)
                return RawCheckpoint(state, None, {"format": "torchscript", "script_classes": classes})
        else:
            with z.open(data_pkl[0]) as fh:
                problem = _scan_problem(path, [pickle_scan.scan(io.BytesIO(fh.read()))])
            if problem and not trust_code:
                raise _refuse_code(path, problem)
    if torchscript:
        return _load_trusted_torchscript(real, path)
    return _from_loaded(_torch_load(real, path, weights_only=not problem), path)


def _read_legacy_pickle(real: Path, path: Path, trust_code: bool) -> RawCheckpoint:
    """torch's pre-1.6 format: pickles (magic, protocol, sys info, the object, storage keys) then raw storages."""
    scans = []
    with open(real, "rb") as fh:
        for _ in range(5):
            s = pickle_scan.scan(fh, fh.tell())
            scans.append(s)
            if s.problem:
                break
            fh.seek(s.end)
    problem = _scan_problem(path, scans)
    if problem and not trust_code:
        raise _refuse_code(path, problem)
    return _from_loaded(_torch_load(real, path, weights_only=not problem), path)


def _torch_load(real: Path, path: Path, weights_only: bool):
    if not weights_only:
        return _load_trusted_pickle(real, path)
    allowed = _importable_safe_globals()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with torch.serialization.safe_globals(list(allowed)):
                return torch.load(real, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise _refuse_code(path, "holds Python objects that are not plain data") from exc
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, KeyError, TypeError, AttributeError, IndexError, MemoryError, struct.error) as exc:
        raise InputFileError(f"{name(path)} is truncated or damaged; re-download or re-save it.") from exc


@functools.cache
def _importable_safe_globals() -> tuple:
    """The objects behind pickle_scan.EXTRA_SAFE_GLOBALS that exist in this Python (looked up once)."""
    import importlib

    found = []
    for full in pickle_scan.EXTRA_SAFE_GLOBALS:
        module, _, attr = full.rpartition(".")
        try:
            found.append(getattr(importlib.import_module(module), attr))
        except (ImportError, AttributeError):
            continue
    import numpy as np

    found += [type(np.dtype(t)) for t in ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool", "complex64", "complex128")]
    return tuple(found)


def _load_trusted_torchscript(real: Path, path: Path) -> RawCheckpoint:
    try:
        module = torch.jit.load(str(real), map_location="cpu")
    except Exception as exc:  # torch raises RuntimeError subclasses of many kinds here
        raise InputFileError(
            f"{name(path)} looks like TorchScript but cannot be loaded ({printable(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, 120)})."
        ) from exc
    spec, state = _module_spec(module, path)
    return RawCheckpoint(state, spec, {"format": "torchscript"})


ALLOWED_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
MAX_TENSORS = 100_000


def _check_tensors(state: dict, path: Path) -> None:
    """Refuse what the engine cannot use before it meets an architecture: non-string or odd keys,
    sparse/quantized/meta/complex/fp8 tensors, integer weights."""
    if len(state) > MAX_TENSORS:
        raise InputFileError(f"{name(path)} holds {len(state):,} tensors; that is not a network checkpoint.")
    for key, value in state.items():
        if not isinstance(key, str):
            raise InputFileError(
                f"{name(path)}: the state dict has a key of type {type(key).__name__} ({printable(repr(key), 40)}); state dict keys must be strings."
            )
        if len(key) > 512 or printable(key, 10_000) != key:
            raise InputFileError(
                f"{name(path)}: the state dict key {printable(key, 60)} is over-long or holds "
                f"control characters; re-save the weights with ordinary module names."
            )
        if not isinstance(value, torch.Tensor):
            raise InputFileError(f"{name(path)}: {printable(key, 60)} is a {type(value).__name__}, not a tensor.")
        if value.layout != torch.strided or value.is_quantized or value.is_meta:
            kind = "quantized" if value.is_quantized else "meta (no data)" if value.is_meta else str(value.layout)
            raise InputFileError(f"{name(path)}: tensor {printable(key, 60)} is {kind}; save dense float weights (model.dequantize() / .to_dense()).")
        integer_buffer = key.endswith("num_batches_tracked") and not value.is_floating_point() and not value.is_complex()
        if value.dtype not in ALLOWED_DTYPES and not integer_buffer:
            raise InputFileError(
                f"{name(path)}: tensor {printable(key, 60)} has dtype {str(value.dtype).replace('torch.', '')}; "
                f"only float16/bfloat16/float32/float64 weights are supported (convert with .float())."
            )


def _load_trusted_pickle(real: Path, path: Path):
    try:
        return torch.load(real, map_location="cpu", weights_only=False)
    except Exception as exc:  # arbitrary user code may raise anything; report it as bad input
        raise InputFileError(f"{name(path)} could not be unpickled even with --trust-code ({type(exc).__name__}: {printable(exc, 120)}).") from exc


def _read_safetensors(real: Path, path: Path) -> RawCheckpoint:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(real), framework="pt") as f:
            state = {k: f.get_tensor(k) for k in f.keys()}
            meta = dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError, TypeError, RuntimeError) as exc:
        raise InputFileError(f"{name(path)} is truncated or not a safetensors file; re-save it.") from exc
    spec = None
    if "splineatlas_arch" in meta:
        spec = parse_json(meta.pop("splineatlas_arch"), "the architecture in the metadata of", path)
    return RawCheckpoint(_strip_prefixes(state), spec if isinstance(spec, dict) else None, meta)


def find_architecture_file(folder: Path) -> Path | None:
    return next((folder / n for n in ARCH_FILES if os.path.lexists(folder / n)), None)


def resolve_spec(raw: RawCheckpoint, path: Path, spec: dict | str | Path | None) -> dict:
    """The architecture for a checkpoint: explicit > embedded > architecture.json beside it."""
    if isinstance(spec, (str, Path)):
        return load_spec_file(spec)
    if isinstance(spec, dict):
        return validate_spec(spec)
    if raw.spec is not None:
        try:
            return validate_spec(raw.spec)
        except ArchitectureError as exc:
            raise ArchitectureError(f"{name(path)} (its embedded architecture): {exc}") from None
    beside = find_architecture_file(Path(path).parent)
    if beside is not None:
        return load_spec_file(beside, root=Path(path).parent)
    if raw.meta.get("format") == "torchscript":
        classes = raw.meta.get("script_classes") or []
        seen = ", ".join(dict.fromkeys(classes[1:]))[:120]
        raise UnsafePickleError(
            f"{name(path)} is a TorchScript archive{f' ({seen})' if seen else ''}: its weights were read safely, "
            f"but its structure is stored as code, which Spline Atlas does not run. Put an architecture.json "
            f"beside it (README: 'Architecture spec'), or, only if you trust the file, pass --trust-code (in the app: "
            f'answer "Trust and open").'
        )
    raise ArchitectureError(f"{name(path)} holds weights but no architecture; put an architecture.json beside it (README: 'Architecture spec').")


def load_checkpoint(path: str | Path, spec: dict | str | Path | None = None, trust_code: bool = False) -> Network:
    """Load one checkpoint as a float32 CPU :class:`Network` in eval mode."""
    raw = read_checkpoint(path, trust_code)
    net = Network(resolve_spec(raw, Path(path), spec))
    net.load_weights(raw.state, source=name(path))
    return net


def save_checkpoint(path: str | Path, network: Network, **meta) -> None:
    """Write a self-describing checkpoint atomically (temp file + rename): weights, spec, metadata.

    ``.safetensors`` stores the spec in its metadata; anything else is a weights-only torch file.
    """
    path = Path(path)
    state = {k: v.detach().cpu().contiguous() for k, v in network.layers.state_dict().items()}
    with atomic_output(path) as tmp:
        if path.suffix == ".safetensors":
            from safetensors.torch import save_file

            save_file(state, str(tmp), metadata={"splineatlas_arch": json.dumps(network.spec), **{k: str(v) for k, v in meta.items()}})
        else:  # torch names the archive's folder after the file: save under the final name, then move
            staging = tmp.with_name(tmp.name + ".d")
            staging.mkdir()
            try:
                staged = staging / (path.name + ".tmp")  # the archive folder is then "<name>.pt", as always
                torch.save({"state_dict": state, "arch": network.spec, **meta}, staged)
                os.replace(staged, tmp)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
