"""Result cache: in memory (LRU, bounded by bytes) and on disk (``.npz``, no pickle), keyed by content.

Keys are SHA-256 digests of the *inputs* of a computation (checkpoint content hash, slice, domain,
settings) made with :func:`cache_key`, so a result is reused whenever the same work would be redone
— e.g. scrubbing an epoch slider back over computed checkpoints is a dictionary lookup.

On disk a result is stored as one ``.npz`` written with ``allow_pickle=False``: frozen dataclasses
(and nested dataclasses, lists, tuples, dicts, numpy arrays, scalars, strings, None) are flattened into
named arrays plus a JSON description of the structure. Only dataclasses defined in ``geometry.``
modules are rebuilt on load, so a cache file cannot make the app import or run arbitrary code.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
from geometry.safe_io import atomic_open

_FORMAT = "splineatlas-cache-1"


def cache_key(*parts: Any) -> str:
    """SHA-256 hex digest of ``parts`` (numbers, strings, None, arrays, lists/tuples/dicts of those).

    Arrays contribute dtype, shape and bytes, so float64 slices that differ in the last bit differ.
    """
    h = hashlib.sha256()

    def feed(x):
        if isinstance(x, np.ndarray) or (hasattr(x, "__array__") and not isinstance(x, (str, bytes))):
            a = np.ascontiguousarray(np.asarray(x))
            h.update(f"A{a.dtype.str}{a.shape}".encode())
            h.update(a.tobytes())
        elif isinstance(x, dict):
            h.update(b"D")
            for k in sorted(x, key=str):
                feed(str(k))
                feed(x[k])
        elif isinstance(x, (list, tuple)):
            h.update(f"L{len(x)}".encode())
            for v in x:
                feed(v)
        elif isinstance(x, float):
            h.update(b"F" + np.float64(x).tobytes())
        elif dataclasses.is_dataclass(x) and not isinstance(x, type):
            feed(type(x).__qualname__)
            feed({f.name: getattr(x, f.name) for f in dataclasses.fields(x)})
        else:
            h.update(f"S{type(x).__name__}:{x!r}".encode())

    for p in parts:
        feed(p)
    return h.hexdigest()


def _nbytes(obj: Any) -> int:
    """Rough size of a result in bytes (arrays dominate)."""
    if isinstance(obj, np.ndarray):
        return obj.nbytes
    if hasattr(obj, "element_size") and hasattr(obj, "numel"):  # torch tensor
        return int(obj.element_size() * obj.numel())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return 64 + sum(_nbytes(getattr(obj, f.name)) for f in dataclasses.fields(obj))
    if isinstance(obj, (list, tuple)):
        return 56 + sum(_nbytes(v) for v in obj)
    if isinstance(obj, dict):
        return 64 + sum(_nbytes(v) for v in obj.values())
    return 32


# -- serialisation without pickle ------------------------------------------------------------------
def _flatten(obj: Any, arrays: dict[str, np.ndarray]) -> Any:
    """Describe ``obj`` as JSON, moving arrays into ``arrays`` (named a0, a1, ...)."""
    if isinstance(obj, np.ndarray) or (hasattr(obj, "detach") and hasattr(obj, "cpu")):
        a = obj.detach().cpu().numpy() if hasattr(obj, "detach") else obj
        if a.dtype == object:
            raise TypeError("object arrays cannot be cached")
        shared = arrays.setdefault("$ids", {})  # an array held twice (codes shared across depths) is stored once
        name = shared.get(id(obj), (None,))[0]
        if name is None:
            name = f"a{len(shared)}"
            shared[id(obj)] = (name, obj)  # obj stays alive, so its id is not reused while flattening
            arrays[name] = a
        return {"$array": name, "torch": not isinstance(obj, np.ndarray)}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        cls = type(obj)
        return {
            "$dataclass": f"{cls.__module__}:{cls.__qualname__}",
            "fields": {f.name: _flatten(getattr(obj, f.name), arrays) for f in dataclasses.fields(obj) if f.init},
        }
    if isinstance(obj, tuple):
        return {"$tuple": [_flatten(v, arrays) for v in obj]}
    if isinstance(obj, list):
        return [_flatten(v, arrays) for v in obj]
    if isinstance(obj, dict):
        if not all(isinstance(k, str) for k in obj):
            return {"$dict": [[_flatten(k, arrays), _flatten(v, arrays)] for k, v in obj.items()]}
        return {"$map": {k: _flatten(v, arrays) for k, v in obj.items()}}
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot cache a {type(obj).__name__}")


def _resolve_class(path: str):
    module, _, qual = path.partition(":")
    if not (module == "geometry" or module.startswith("geometry.")):
        raise ValueError(f"refusing to rebuild {path} from a cache file (only geometry.* dataclasses)")
    obj = importlib.import_module(module)
    for part in qual.split("."):
        obj = getattr(obj, part)
    if not dataclasses.is_dataclass(obj):
        raise ValueError(f"{path} is not a dataclass")
    return obj


def _unflatten(desc: Any, arrays) -> Any:
    if isinstance(desc, list):
        return [_unflatten(v, arrays) for v in desc]
    if isinstance(desc, dict):
        if "$array" in desc:
            a = arrays[desc["$array"]]
            if desc.get("torch"):
                import torch

                return torch.from_numpy(np.array(a))
            return a
        if "$dataclass" in desc:
            cls = _resolve_class(desc["$dataclass"])
            return cls(**{k: _unflatten(v, arrays) for k, v in desc["fields"].items()})
        if "$tuple" in desc:
            return tuple(_unflatten(v, arrays) for v in desc["$tuple"])
        if "$map" in desc:
            return {k: _unflatten(v, arrays) for k, v in desc["$map"].items()}
        if "$dict" in desc:
            return {_unflatten(k, arrays): _unflatten(v, arrays) for k, v in desc["$dict"]}
    return desc


def dump_result(obj: Any, path: str | Path) -> None:
    """Write ``obj`` to ``path`` (.npz) atomically; raises TypeError for values that cannot be stored."""
    arrays: dict[str, np.ndarray] = {}
    desc = _flatten(obj, arrays)
    arrays.pop("$ids", None)
    arrays["__meta__"] = np.frombuffer(json.dumps({"format": _FORMAT, "value": desc}).encode(), dtype=np.uint8)
    path = Path(path)
    with atomic_open(path, "wb") as fh:
        np.savez(fh, **arrays)


def load_result(path: str | Path) -> Any:
    """Read a value written by :func:`dump_result` (never unpickles)."""
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(bytes(z["__meta__"]).decode())
        if meta.get("format") != _FORMAT:
            raise ValueError("not a Spline Atlas cache file")
        arrays = {k: z[k] for k in z.files if k != "__meta__"}
    return _unflatten(meta["value"], arrays)


def default_cache_dir() -> Path:
    """``$SPLINEATLAS_CACHE`` or ``$XDG_CACHE_HOME/splineatlas`` or ``~/.cache/splineatlas``."""
    env = os.environ.get("SPLINEATLAS_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "splineatlas"


class ResultCache:
    """Thread-safe two-level cache: an LRU in memory bounded by ``max_bytes``, and optionally a folder.

    ``get(key)`` looks in memory, then on disk (a disk hit is promoted to memory). ``put(key, value,
    persist=True)`` stores in memory and, when a folder is set and ``persist``, on disk. Values that
    cannot be serialised without pickle stay in memory only. Corrupt disk entries are deleted and
    treated as misses.
    """

    def __init__(self, folder: str | Path | None = None, max_bytes: int = 512 * 2**20, max_disk_bytes: int = 2 * 2**30):
        self.folder = None if folder is None else Path(folder)
        self.max_bytes = int(max_bytes)
        self.max_disk_bytes = int(max_disk_bytes)
        self._mem: OrderedDict[str, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def _path(self, key: str) -> Path:
        assert self.folder is not None
        return self.folder / key[:2] / f"{key}.npz"

    def __contains__(self, key: str) -> bool:
        with self._lock:
            if key in self._mem:
                return True
        return self.folder is not None and self._path(key).exists()

    def peek(self, key: str) -> Any | None:
        """Memory-only lookup (never touches the disk): for the UI thread's instant paths."""
        with self._lock:
            item = self._mem.get(key)
            if item is not None:
                self._mem.move_to_end(key)
                return item[0]
        return None

    def get(self, key: str) -> Any | None:
        value = self.peek(key)
        if value is not None:
            self.hits += 1
            return value
        if self.folder is not None:
            p = self._path(key)
            if p.exists():
                try:
                    value = load_result(p)
                except Exception:  # corrupt or from an incompatible version: drop it
                    p.unlink(missing_ok=True)
                    value = None
                if value is not None:
                    self.hits += 1
                    self._remember(key, value)
                    return value
        self.misses += 1
        return None

    def put(self, key: str, value: Any, persist: bool = True) -> None:
        self._remember(key, value)
        if persist and self.folder is not None:
            try:
                dump_result(value, self._path(key))
            except (TypeError, OSError, ValueError):
                pass  # memory-only
            else:
                self._trim_disk()

    def clear_memory(self) -> None:
        with self._lock:
            self._mem.clear()
            self._bytes = 0

    def _remember(self, key: str, value: Any) -> None:
        size = _nbytes(value)
        with self._lock:
            if key in self._mem:
                self._bytes -= self._mem.pop(key)[1]
            self._mem[key] = (value, size)
            self._bytes += size
            while self._bytes > self.max_bytes and len(self._mem) > 1:
                _, (_, s) = self._mem.popitem(last=False)
                self._bytes -= s

    def _trim_disk(self) -> None:
        """Delete the least recently written files while the folder exceeds ``max_disk_bytes``."""
        try:
            files = [(p.stat().st_mtime, p.stat().st_size, p) for p in self.folder.glob("*/*.npz")]
        except OSError:
            return
        total = sum(s for _, s, _ in files)
        if total <= self.max_disk_bytes:
            return
        for _, s, p in sorted(files):
            p.unlink(missing_ok=True)
            total -= s
            if total <= self.max_disk_bytes:
                break
