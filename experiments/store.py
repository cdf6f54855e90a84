"""One result per task, keyed by a hash of the task's inputs, in a folder or any fsspec URL.

Each result is a small JSON file ``KEY.json`` written atomically (a temporary name, then a rename), so
a task killed mid-write leaves nothing, a finished task is never recomputed, and a rerun after a crash
picks up exactly the tasks that had not finished. Local folders use the engine's atomic writer; other
URLs (``s3://``, ``gcs://``, ``memory://`` ...) go through fsspec (write, then move).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path

from geometry.errors import InputFileError
from geometry.safe_io import name, write_text

KEY_LENGTH = 64


def task_key(payload: dict) -> str:
    """SHA-256 of the canonical JSON of a task's inputs: the same work always has the same key."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


def _is_url(location: str) -> bool:
    return "://" in location and not location.startswith("file://")


class ResultStore:
    """Per-task JSON results under ``location`` (a local folder, created, or an fsspec URL)."""

    def __init__(self, location: str | Path):
        self.location = str(location)
        if _is_url(self.location):
            import fsspec

            self.fs, self.root = fsspec.core.url_to_fs(self.location)
            self.fs.makedirs(self.root, exist_ok=True)
        else:
            self.fs, self.root = None, Path(self.location.removeprefix("file://"))
            try:
                self.root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise InputFileError(f"results folder {name(self.root)} cannot be created ({exc.strerror or type(exc).__name__}).") from None

    def _path(self, key: str):
        if len(key) != KEY_LENGTH or not all(c in "0123456789abcdef" for c in key):
            raise ValueError(f"not a task key: {key!r}")  # keys are our own hashes: never a path from outside
        return f"{self.root}/{key}.json" if self.fs is not None else self.root / f"{key}.json"

    def has(self, key: str) -> bool:
        p = self._path(key)
        return self.fs.exists(p) if self.fs is not None else p.exists()

    def read(self, key: str) -> dict | None:
        """The stored result, or None (absent or unreadable: a damaged file counts as not done)."""
        p = self._path(key)
        try:
            if self.fs is not None:
                with self.fs.open(p, "r") as fh:
                    data = json.load(fh)
            else:
                data = json.loads(p.read_text())
        except (OSError, ValueError, FileNotFoundError):
            return None
        return data if isinstance(data, dict) else None

    def write(self, key: str, result: dict) -> None:
        text = json.dumps(result, allow_nan=True)  # the row's column order is kept
        p = self._path(key)
        if self.fs is None:
            write_text(p, text)
            return
        tmp = f"{self.root}/.{key}.{uuid.uuid4().hex}.tmp"
        with self.fs.open(tmp, "w") as fh:
            fh.write(text)
        self.fs.mv(tmp, p)

    def keys(self) -> list[str]:
        if self.fs is not None:
            names = [Path(p).name for p in self.fs.ls(self.root, detail=False)]
        else:
            names = [p.name for p in self.root.iterdir()]
        return sorted(n[:-5] for n in names if n.endswith(".json") and len(n) == KEY_LENGTH + 5)
