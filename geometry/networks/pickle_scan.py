"""A static check of pickle streams: which Python globals would unpickling import and call?

``torch.load(weights_only=True)`` already refuses unknown globals; this scan is a second,
independent line (it executes nothing: ``pickletools.genops`` only parses opcodes) that runs before
any unpickler sees a file, so a weakness in one torch release cannot turn a checkpoint into code. It
also gives the user a plain answer ("holds a Python object of type mylib.Trainer").
"""

from __future__ import annotations

import functools
import io
import pickletools
from dataclasses import dataclass

# Non-tensor objects that trainer checkpoints commonly hold and that are plain data: constructing
# them calls no user code. Torch's own weights-only allowlist is added at run time.
EXTRA_SAFE_GLOBALS = (
    "argparse.Namespace",
    "pathlib.Path",
    "pathlib.PosixPath",
    "pathlib.WindowsPath",
    "pathlib.PurePath",
    "pathlib.PurePosixPath",
    "pathlib.PureWindowsPath",
    "numpy.dtype",
    "numpy.ndarray",
    "numpy.core.multiarray.scalar",
    "numpy._core.multiarray.scalar",
    "numpy.core.multiarray._reconstruct",
    "numpy._core.multiarray._reconstruct",
    "collections.OrderedDict",
    "collections.defaultdict",
    "builtins.slice",
    "builtins.range",
)
_NUMPY_DTYPE_CLASSES = "numpy.dtypes."  # numpy.dtypes.Float32DType & co. (numpy >= 1.25 pickles these)

_STRING_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING", "STRING"}
_MEMO_PUT = {"PUT", "BINPUT", "LONG_BINPUT"}
_MEMO_GET = {"GET", "BINGET", "LONG_BINGET"}
_NEVER = {"INST", "OBJ", "EXT1", "EXT2", "EXT4"}  # old-style or registry-based object creation


@dataclass(frozen=True)
class PickleScan:
    """The globals a pickle stream names, and why the scan could not follow it (if it could not)."""

    globals: tuple[str, ...]
    problem: str | None = None
    end: int = 0  # offset just past the STOP opcode


def scan(data: bytes | memoryview | io.BufferedIOBase, start: int = 0) -> PickleScan:
    """Scan one pickle stream beginning at ``start`` (of bytes, or of a seekable binary file)."""
    found: list[str] = []
    memo: dict[int, object] = {}
    recent: list[object] = []  # the last two pushed values, as far as strings are concerned
    memo_index = 0
    stream = data if hasattr(data, "read") else io.BytesIO(bytes(data))
    stream.seek(start)
    try:
        for op, arg, pos in pickletools.genops(stream):
            opname = op.name
            if opname in _NEVER:
                return PickleScan(tuple(found), f"uses the {opname} opcode", stream.tell())
            if opname == "GLOBAL":
                module, _, qual = str(arg).partition(" ")
                found.append(f"{module}.{qual}")
                recent.append(None)
            elif opname == "STACK_GLOBAL":
                if len(recent) < 2 or not all(isinstance(v, str) for v in recent[-2:]):
                    return PickleScan(tuple(found), "builds a global name at run time", stream.tell())
                found.append(f"{recent[-2]}.{recent[-1]}")
                recent.append(None)
            elif opname in _STRING_OPS:
                recent.append(arg if isinstance(arg, str) else arg.decode("latin-1") if isinstance(arg, bytes) else None)
            elif opname in _MEMO_PUT:
                memo[int(arg)] = recent[-1] if recent else None
            elif opname == "MEMOIZE":
                memo[memo_index] = recent[-1] if recent else None
                memo_index += 1
            elif opname in _MEMO_GET:
                recent.append(memo.get(int(arg)))
            elif opname in ("FRAME", "PROTO"):
                continue
            elif opname == "STOP":
                return PickleScan(tuple(found), None, stream.tell())
            else:
                recent.append(None)
            if opname in _MEMO_PUT or opname == "MEMOIZE":
                continue
            del recent[:-2]
    except Exception as exc:  # pickletools raises ValueError and others on malformed streams
        return PickleScan(tuple(found), f"is not a valid pickle ({type(exc).__name__})", stream.tell())
    return PickleScan(tuple(found), "ends without STOP (truncated)", stream.tell())


@functools.cache
def allowed_globals() -> frozenset[str]:
    """Torch's weights-only allowlist plus :data:`EXTRA_SAFE_GLOBALS` (built once per process)."""
    names = set(EXTRA_SAFE_GLOBALS)
    try:
        from torch import _weights_only_unpickler as wou

        names.update(wou._get_allowed_globals().keys())
    except (ImportError, AttributeError):  # an older torch: fall back to the tensor-rebuild essentials
        names.update(
            {
                "torch._utils._rebuild_tensor_v2",
                "torch._utils._rebuild_parameter",
                "torch.FloatStorage",
                "torch.DoubleStorage",
                "torch.HalfStorage",
                "torch.LongStorage",
                "torch.Size",
                "torch.storage.UntypedStorage",
                "_codecs.encode",
            }
        )
    return frozenset(names)


def unsafe_globals(found: tuple[str, ...], allowed: frozenset[str] | None = None) -> list[str]:
    """The names in ``found`` that are not plain data."""
    allowed = allowed_globals() if allowed is None else allowed
    return sorted({g for g in found if g not in allowed and not g.startswith(_NUMPY_DTYPE_CLASSES)})
