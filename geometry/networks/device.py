"""Device choice: CUDA when present, CPU otherwise, overridable by name."""

from __future__ import annotations

import torch

from geometry.errors import SplineAtlasError


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """Return ``device`` as a torch.device; ``None``/"auto" picks CUDA if available."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SplineAtlasError("CUDA was requested but no CUDA device is available; use --device cpu.")
    return dev


def free_cores() -> int:
    """CPU cores not busy with other work right now: the cores this process may use minus the one-minute
    load average (at least 1). On a shared machine torch's default -- every core -- makes its threads wait
    on each other whenever another process holds a core."""
    import os

    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        load = 0.0
    return max(1, min(cores, int(round(cores - load))))


def set_threads(threads: int | None = None) -> int:
    """Use ``threads`` CPU threads for torch's operators (None or 0: :func:`free_cores`); returns the count.
    Raises a one-line error for a negative count."""
    if threads is not None and threads < 0:
        raise SplineAtlasError(f"--threads {threads}: give a positive number of threads, or 0 for the free cores.")
    n = int(threads) if threads else free_cores()
    torch.set_num_threads(n)
    return n
