"""Reading untrusted files and writing results safely.

Reading: every file is checked *before* it is read — it must be a regular file (not a folder, FIFO,
socket or device), stay inside the folder it belongs to (no ``..`` escapes, absolute paths or
symlinks that leave it), and be no larger than its kind's limit. JSON is parsed with a depth limit
and without NaN/Infinity.

Writing: :func:`atomic_output` writes to a hidden temporary name in the target's folder, created with
the user's umask, and renames it over the target only when complete, so an interrupted write leaves
the previous file intact and (after Ctrl+C / SIGTERM) no temporary behind; temporaries left by a
killed process are removed by the next write to the same target.

Messages: :func:`printable` makes any text safe for one terminal line (control characters and
undecodable bytes escaped, long text shortened).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import secrets
import shutil
import stat
import zipfile
from collections.abc import Iterator
from pathlib import Path

from geometry.errors import BudgetExceededError, InputFileError, SplineAtlasError

MiB = 1 << 20
GiB = 1 << 30
MAX_JSON_BYTES = 8 * MiB  # manifests, specs, sessions
MAX_JSON_DEPTH = 48  # nesting of any JSON document we read
MAX_DATASET_BYTES = 2 * GiB  # an .npz dataset, uncompressed
DEFAULT_MAX_CHECKPOINT_BYTES = 4 * GiB
CHECKPOINT_LIMIT_ENV = "SPLINEATLAS_MAX_CHECKPOINT_MB"

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def printable(text: object, limit: int = 240) -> str:
    """``text`` as one safe terminal line: control characters, ANSI escapes and undecodable bytes
    (surrogate escapes of non-UTF-8 file names) shown as ``\\xNN``; over ``limit`` characters the
    middle is cut."""
    s = str(text)
    s = _CONTROL.sub(
        lambda m: (
            f"\\x{ord(m.group()) & 0xFF:02x}" if ord(m.group()) < 0xD800 else f"\\x{ord(m.group()) - 0xDC00:02x}" if ord(m.group()) >= 0xDC80 else "\\ufffd"
        ),
        s,
    )
    s = s.replace("\n", "\\n").replace("\t", " ")
    if len(s) > limit:
        keep = max(limit // 2 - 2, 8)
        s = f"{s[:keep]} … {s[-keep:]}"
    return s


def name(path: object) -> str:
    """A path for a message: printable and short."""
    return printable(path, 160)


def max_checkpoint_bytes() -> int:
    """The checkpoint size limit: 4 GiB unless ``SPLINEATLAS_MAX_CHECKPOINT_MB`` (or the CLI's
    ``--max-checkpoint-mb``, which sets it) says otherwise."""
    raw = os.environ.get(CHECKPOINT_LIMIT_ENV)
    if not raw:
        return DEFAULT_MAX_CHECKPOINT_BYTES
    try:
        mb = float(raw)
    except ValueError:
        raise BudgetExceededError(f"{CHECKPOINT_LIMIT_ENV}={printable(raw, 40)} is not a number of MB.") from None
    if not mb > 0:
        raise BudgetExceededError(f"{CHECKPOINT_LIMIT_ENV} must be a positive number of MB.")
    return int(mb * MiB)


def _describe_kind(mode: int) -> str | None:
    if stat.S_ISREG(mode):
        return None
    for test, what in (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return what
    return "not a regular file"


def check_inside(path: Path, root: Path, what: str, error: type[SplineAtlasError] = InputFileError) -> Path:
    """``path`` resolved (symlinks followed); refused unless it lies inside ``root``."""
    try:
        real, base = path.resolve(), root.resolve()
    except (OSError, RuntimeError) as exc:  # symlink loops
        raise error(f"{what} {name(path)} cannot be resolved ({type(exc).__name__}); fix the link.") from None
    if real != base and base not in real.parents:
        raise error(f"{what} {name(path)} points outside its folder {name(base)} (to {name(real)}); keep the files of a run inside the run's folder.")
    return real


def resolve_member(folder: Path, relative: str, what: str, manifest: Path) -> Path:
    """A path named in a manifest (``relative`` to ``folder``), checked to stay inside it."""
    if not isinstance(relative, str) or not relative.strip():
        raise InputFileError(f"{name(manifest)}: {what} must be a non-empty relative path string.")
    if "\x00" in relative:
        raise InputFileError(f"{name(manifest)}: {what} {printable(relative, 80)} contains a NUL byte.")
    p = Path(relative)
    if p.is_absolute() or ".." in p.parts:
        raise InputFileError(
            f"{name(manifest)}: {what} {printable(relative, 80)} must be a path inside the run "
            f"folder (no absolute paths, no '..'); move the file into {name(folder)}."
        )
    return folder / p


def checked_file(path: str | Path, what: str, limit: int, root: Path | None = None, error: type[SplineAtlasError] = InputFileError) -> Path:
    """Check ``path`` before reading: exists, a regular file (after following links), inside ``root``
    if given, and at most ``limit`` bytes. Returns the resolved path."""
    path = Path(path)
    if len(str(path)) > 4096 or any(len(part) > 255 for part in path.parts):
        raise error(f"{what} {name(path)}: the file name is too long.")
    if not os.path.lexists(path):
        raise error(f"{what} {name(path)} does not exist.")
    real = check_inside(path, root, what, error) if root is not None else path
    try:
        st = os.stat(real)
    except OSError as exc:
        raise error(f"{what} {name(path)} cannot be read ({exc.strerror or type(exc).__name__}).") from None
    kind = _describe_kind(st.st_mode)
    if kind is not None:
        raise error(f"{what} {name(path)} is {kind}, not a file; give a regular file.")
    if st.st_size > limit:
        raise BudgetExceededError(
            f"{what} {name(path)} is {st.st_size / MiB:,.1f} MB, over the limit of "
            f"{limit / MiB:,.0f} MB" + ("; raise it with --max-checkpoint-mb if you trust the file's size" if what == "checkpoint" else "") + "."
        )
    return real


def read_bytes(path: str | Path, what: str, limit: int, root: Path | None = None, error: type[SplineAtlasError] = InputFileError) -> bytes:
    """The bytes of a checked file (see :func:`checked_file`), read with a hard cap."""
    real = checked_file(path, what, limit, root, error)
    try:
        fd = os.open(real, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        raise error(f"{what} {name(path)} cannot be opened ({exc.strerror or type(exc).__name__}).") from None
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):  # replaced between the check and the open
            raise error(f"{what} {name(path)} is not a regular file.")
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise BudgetExceededError(f"{what} {name(path)} grew over the limit of {limit / MiB:,.0f} MB while being read.")
    return data


def _reject_constant(token: str):
    raise ValueError(f"{token} is not allowed in JSON")


def _depth(obj, limit: int) -> int:
    """Nesting depth of a parsed JSON value (iterative, so deep documents cannot overflow the stack)."""
    deepest, stack = 0, [(obj, 1)]
    while stack:
        value, d = stack.pop()
        if isinstance(value, (dict, list)):
            if d > limit:
                return d
            deepest = max(deepest, d)
            stack.extend((v, d + 1) for v in (value.values() if isinstance(value, dict) else value))
    return deepest


def parse_json(text: bytes | str, what: str, where: object, allow_nan: bool = False, error: type[SplineAtlasError] = InputFileError) -> object:
    """Parse JSON from an untrusted source: UTF-8, nesting at most MAX_JSON_DEPTH, and no NaN/Infinity
    unless ``allow_nan`` (run manifests record a NaN loss for epoch 0; their schema checks the fields
    that must be finite)."""
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        # A cheap bound on nesting before the recursive parser sees it.
        if text.count("[") + text.count("{") > MAX_JSON_DEPTH and re.search(r"[\[{]\s*" * (MAX_JSON_DEPTH + 1), text):
            raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
        data = json.loads(text, parse_constant=None if allow_nan else _reject_constant)
    except UnicodeDecodeError:
        raise error(f"{what} {name(where)} is not UTF-8 text; save it as UTF-8 JSON.") from None
    except (ValueError, RecursionError) as exc:
        msg = (
            exc.msg if isinstance(exc, json.JSONDecodeError) else f"nested deeper than {MAX_JSON_DEPTH} levels" if isinstance(exc, RecursionError) else str(exc)
        )
        pos = f" at line {exc.lineno} column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise error(f"{what} {name(where)} is not valid JSON ({printable(msg, 80)}{pos}); fix or regenerate it.") from None
    if _depth(data, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise error(f"{what} {name(where)} is nested deeper than {MAX_JSON_DEPTH} levels.")
    return data


def read_json(
    path: str | Path, what: str, root: Path | None = None, limit: int = MAX_JSON_BYTES, allow_nan: bool = False, error: type[SplineAtlasError] = InputFileError
) -> object:
    """Read and parse a JSON file with the checks of :func:`checked_file` and :func:`parse_json`."""
    return parse_json(read_bytes(path, what, limit, root, error), what, path, allow_nan, error)


def check_zip_members(path: Path, what: str, limit: int, error: type[SplineAtlasError] = InputFileError) -> zipfile.ZipFile:
    """Open a zip archive and refuse it unless its members' declared sizes add up to at most ``limit``
    (the guard against zip bombs: inflating stops at the declared size). The caller closes it."""
    try:
        z = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise error(f"{what} {name(path)} is a damaged archive ({printable(exc, 80)}); re-save it.") from None
    try:
        infos = z.infolist()
        if len(infos) > 1_000_000:
            raise BudgetExceededError(f"{what} {name(path)} has {len(infos):,} members; that is not a checkpoint.")
        total = sum(i.file_size for i in infos)
        if total > limit:
            raise BudgetExceededError(f"{what} {name(path)} would inflate to {total / MiB:,.0f} MB, over the limit of {limit / MiB:,.0f} MB.")
        bad = next((i for i in infos if i.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)), None)
        if bad is not None:
            raise error(f"{what} {name(path)}: member {printable(bad.filename, 60)} uses an unsupported compression; re-save the file.")
    except BaseException:
        z.close()
        raise
    return z


def read_npz(
    path: str | Path,
    what: str,
    members: tuple[str, ...],
    limit: int,
    root: Path | None = None,
    error: type[SplineAtlasError] = InputFileError,
    strings: tuple[str, ...] = (),
) -> dict:
    """The arrays ``members`` of an .npz (others are not read), each checked from its header before its data
    is read: numeric dtypes (strings for the names in ``strings``; never objects, so nothing is unpickled),
    and no more data claimed than the archive holds (an "npz bomb" declares a huge shape)."""
    import numpy as np

    real = checked_file(path, what, limit, root, error)
    data: dict = {}
    with check_zip_members(real, what, limit, error) as z:
        for info in z.infolist():
            key = info.filename[:-4] if info.filename.endswith(".npy") else None
            if key not in members:
                continue
            try:
                with z.open(info) as fh:
                    version = np.lib.format.read_magic(fh)
                    reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                    shape, _, dtype = reader(fh)
                    header_len = fh.tell()
                allowed = ("b", "i", "u", "f") + (("U",) if key in strings else ())
                if dtype.hasobject or dtype.kind not in allowed:
                    raise error(f"{what} {name(path)}: array {key!r} has dtype {dtype}; it must be numeric{' (or strings)' if key in strings else ''}.")
                nbytes = math.prod(shape) * dtype.itemsize
                if nbytes > info.file_size - header_len:
                    raise error(
                        f"{what} {name(path)}: array {key!r} claims {nbytes:,} bytes but its member holds {info.file_size - header_len:,}; the file is damaged."
                    )
                with z.open(info) as fh:
                    data[key] = np.lib.format.read_array(fh, allow_pickle=False)
            except SplineAtlasError:
                raise
            except (ValueError, OSError, EOFError, zipfile.BadZipFile, SyntaxError, TypeError) as exc:
                raise error(f"{what} {name(path)}: array {key!r} cannot be read ({printable(exc, 80)}); re-export it with numpy.savez.") from None
    return data


# -- writing --------------------------------------------------------------------------------------

_PARTIAL = re.compile(r"^\.(?P<target>.+)\.partial-(?P<pid>\d+)-[0-9a-f]{8}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_partials(target: Path) -> None:
    """Remove temporaries for ``target`` left by processes that no longer run (killed mid-write)."""
    try:
        entries = list(target.parent.iterdir())
    except OSError:
        return
    for p in entries:
        m = _PARTIAL.match(p.name)
        if m and m.group("target") == target.name and int(m.group("pid")) != os.getpid() and not _pid_alive(int(m.group("pid"))):
            with contextlib.suppress(OSError):
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p)
                else:
                    p.unlink()


def partial_name(target: Path) -> Path:
    """A hidden temporary beside ``target`` that keeps its suffix (libraries pick formats by suffix)."""
    return target.with_name(f".{target.name}.partial-{os.getpid()}-{secrets.token_hex(4)}{target.suffix}")


def new_partial(target: str | Path) -> Path:
    """Create (empty, with the user's umask) the temporary that will replace ``target``, after removing
    temporaries of ``target`` left by killed processes. The caller renames or removes it."""
    target = Path(target)
    if target.exists() and not target.is_file():
        raise InputFileError(f"output {name(target)} exists and is not a regular file; choose another name.")
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(target)
    tmp = partial_name(target)
    os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    return tmp


@contextlib.contextmanager
def atomic_output(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; when the block completes it replaces ``target``.

    The temporary is created empty with the user's umask (so the result has the same permissions as
    any file the user creates); on any exception (Ctrl+C included) it is removed and ``target`` is
    left as it was."""
    tmp = new_partial(target)
    target = Path(target)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_bytes(target: str | Path, data: bytes) -> None:
    """Write ``data`` to ``target`` atomically."""
    with atomic_output(target) as tmp:
        tmp.write_bytes(data)


def write_text(target: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``target`` atomically."""
    write_bytes(target, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_open(target: str | Path, mode: str = "w", **kwargs) -> Iterator:
    """``open()`` for writing, atomically: the file appears under its name only once closed cleanly."""
    with atomic_output(target) as tmp, open(tmp, mode, **kwargs) as fh:
        yield fh


def atomic_save(target: str | Path, save) -> None:
    """Call ``save(temporary_path)`` (e.g. ``fig.savefig``, ``imageio.imwrite``) and move the result onto
    ``target`` atomically. The temporary keeps ``target``'s suffix, so libraries pick the same format."""
    with atomic_output(target) as tmp:
        save(tmp)


def write_npz(target: str | Path, **arrays) -> None:
    """``numpy.savez`` to ``target`` atomically (no ``.npz`` is appended to the name)."""
    import numpy as np

    with atomic_open(target, "wb") as fh:
        np.savez(fh, **arrays)
