"""Torch plumbing the engine's point-wise analyses share (DeepFool, curvature, detection, power diagram,
boundary angles, leaf and region paths): an eval-mode float64 copy of a model, its device, flat inputs."""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from geometry.networks.device import resolve_device
from geometry.errors import SplineAtlasError


def prepare_model(net: nn.Module, dtype: torch.dtype = torch.float64, device=None) -> nn.Module:
    """An eval-mode copy of ``net`` in ``dtype`` on ``device`` (the original is untouched).

    Works for :class:`geometry.networks.network.Network` and any ``nn.Module`` taking flat (N, D) inputs.
    """
    dev = resolve_device(device) if device is not None else module_device(net)
    # deepcopy, not Network.to_dtype_device: that one reloads weights through a float32 clone
    model = copy.deepcopy(net).to(device=dev, dtype=dtype)
    model.requires_grad_(False)  # gradients are taken w.r.t. inputs only
    return model.eval()


def module_device(net: nn.Module) -> torch.device:
    """The device of a module's first parameter (CPU for a module without parameters)."""
    p = next(iter(net.parameters()), None)
    return p.device if p is not None else torch.device("cpu")


def as_tensor(x, dtype, device) -> torch.Tensor:
    """Flat points (N, D) (or one point (D,)) as a detached tensor of ``dtype`` on ``device``."""
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    if t.ndim == 1:
        t = t[None]
    if t.ndim != 2:
        raise SplineAtlasError(f"expected flat points of shape (N, D); got shape {tuple(t.shape)}.")
    return t.detach().to(device=device, dtype=dtype)
