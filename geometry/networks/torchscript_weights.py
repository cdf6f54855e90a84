"""Read the weights of a TorchScript archive without running any of its code.

``torch.jit.load`` executes the archive's code (``__setstate__`` and any scripted method it calls),
so an untrusted archive must not reach it. The tensors, though, are plain data: ``data.pkl`` is a
pickle of the module tree whose objects are ``__torch__.*`` classes and whose tensors point at raw
storage records in ``data/``. A restricted unpickler (Python's documented "restricting globals"
pattern) turns every ``__torch__`` class into an inert stand-in, rebuilds tensors from the records
itself (bounds-checked), and refuses every other global. The architecture then comes from a sidecar
``architecture.json``; running the archive needs the user's explicit trust.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path

import torch

from geometry.errors import InputFileError
from geometry.safe_io import name, printable

_STORAGE_DTYPES = {
    "FloatStorage": torch.float32,
    "DoubleStorage": torch.float64,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}


class ScriptObject:
    """Inert stand-in for a ``__torch__.*`` class: it only records the state it is given."""

    script_class = "?"

    def __init__(self, *args):
        self.state = None

    def __setstate__(self, state):
        self.state = state


class _StorageType:
    def __init__(self, dtype: torch.dtype):
        self.dtype = dtype


def _as_list(value, *_):
    return list(value)


def _restore_type_tag(value, _tag):
    return value


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str, path: Path):
        super().__init__(io.BytesIO(data))
        self._archive, self._prefix, self._path = archive, prefix, path
        self._classes: dict[str, type] = {}
        self._storages: dict[str, torch.Tensor] = {}  # a storage shared by many tensors is read once

    def find_class(self, module: str, qualname: str):
        full = f"{module}.{qualname}"
        if module.startswith("__torch__"):
            if full not in self._classes:
                self._classes[full] = type("ScriptObject", (ScriptObject,), {"script_class": full})
            return self._classes[full]
        if module == "torch" and qualname in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[qualname])
        if full == "torch._utils._rebuild_tensor_v2":
            return self._rebuild_tensor
        if full == "collections.OrderedDict":
            return OrderedDict
        if full in (
            "torch.jit._pickle.build_intlist",
            "torch.jit._pickle.build_doublelist",
            "torch.jit._pickle.build_boollist",
            "torch.jit._pickle.build_tensorlist",
        ):
            return _as_list
        if full == "torch.jit._pickle.restore_type_tag":
            return _restore_type_tag
        raise pickle.UnpicklingError(f"refused global {printable(full, 80)}")

    def persistent_load(self, pid):
        if not (
            isinstance(pid, tuple)
            and len(pid) == 5
            and pid[0] == "storage"
            and isinstance(pid[1], _StorageType)
            and isinstance(pid[2], str)
            and isinstance(pid[4], int)
        ):
            raise pickle.UnpicklingError("unexpected persistent id")
        _, kind, key, _location, numel = pid
        if key in self._storages:
            return self._storages[key]
        record = f"{self._prefix}data/{key}"
        try:
            raw = self._archive.read(record)
        except KeyError:
            raise pickle.UnpicklingError(f"storage record {printable(key, 40)} is missing") from None
        itemsize = torch.empty((), dtype=kind.dtype).element_size()
        if numel < 0 or numel * itemsize > len(raw):
            raise pickle.UnpicklingError(f"storage record {printable(key, 40)} is shorter than it claims")
        storage = torch.empty(0, dtype=kind.dtype) if numel == 0 else torch.frombuffer(bytearray(raw[: numel * itemsize]), dtype=kind.dtype)
        self._storages[key] = storage
        return storage

    @staticmethod
    def _rebuild_tensor(storage, offset, size, stride, *_rest):
        if not isinstance(storage, torch.Tensor) or not all(isinstance(v, int) and v >= 0 for v in (offset, *size, *stride)):
            raise pickle.UnpicklingError("malformed tensor")
        if len(size) != len(stride):
            raise pickle.UnpicklingError("malformed tensor")
        if all(s > 0 for s in size):
            last = offset + sum((s - 1) * st for s, st in zip(size, stride))
            if last >= storage.numel():
                raise pickle.UnpicklingError("tensor reaches past its storage")
        return torch.as_strided(storage, tuple(size), tuple(stride), offset)


def _flatten(obj: ScriptObject, prefix: str, out: dict, classes: list, depth: int = 0) -> None:
    if depth > 64:
        raise pickle.UnpicklingError("module tree nested too deeply")
    classes.append(obj.script_class.rsplit(".", 1)[-1])
    state = obj.state if isinstance(obj.state, dict) else {}
    for key, value in state.items():
        if not isinstance(key, str):
            continue
        if isinstance(value, torch.Tensor):
            out[prefix + key] = value
        elif isinstance(value, ScriptObject):
            _flatten(value, f"{prefix}{key}.", out, classes, depth + 1)


def read_torchscript_weights(path: Path, archive: zipfile.ZipFile) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The archive's tensors by module path (``"0.weight"``), and its module class names, read
    without executing anything. Raises InputFileError if the archive is not of the expected shape."""
    data_pkl = [n for n in archive.namelist() if n.endswith("data.pkl") and n.count("/") == 1]
    if len(data_pkl) != 1:
        raise InputFileError(f"{name(path)} looks like TorchScript but has no single data.pkl; re-export it.")
    prefix = data_pkl[0][: -len("data.pkl")]
    byteorder = prefix + "byteorder"
    if byteorder in archive.namelist() and archive.read(byteorder).strip() not in (b"little", b""):
        raise InputFileError(f"{name(path)} was saved on a big-endian machine; re-save it on a little-endian one.")
    unpickler = _RestrictedUnpickler(archive.read(data_pkl[0]), archive, prefix, path)
    try:
        root = unpickler.load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError, RuntimeError, MemoryError, RecursionError) as exc:
        raise InputFileError(f"{name(path)}: the TorchScript archive's weights cannot be read safely ({printable(exc, 100)}).") from None
    if not isinstance(root, ScriptObject):
        raise InputFileError(f"{name(path)} looks like TorchScript but holds no module.")
    state: dict[str, torch.Tensor] = {}
    classes: list[str] = []
    try:
        _flatten(root, "", state, classes)
    except pickle.UnpicklingError as exc:
        raise InputFileError(f"{name(path)}: {exc}.") from None
    return state, classes
