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
