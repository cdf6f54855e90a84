"""Canonical network form: a spec-built ``nn.Sequential`` plus the facts the engine needs.

``Network`` takes *flat* inputs ``(N, D)`` (D = prod(input_shape)) so that slices
``x(u) = o + B u`` live in R^D whatever the data's shape, and reports every
piecewise-linear layer's pre-activations and activation pattern in one pass.
A *layer* for Spline Atlas is one nonlinearity (ReLU, LeakyReLU, Abs, MaxPool or a
smooth one); layer ``l`` of the layer slider is the l-th of them, in forward order.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch
from torch import nn

from geometry.errors import ArchitectureError, NonFiniteWeightsError, NotPiecewiseAffineError
from geometry.safe_io import printable
from geometry.networks.spec import PIECEWISE_LINEAR, SMOOTH, Abs, Concat, Residual, build_sequential, validate_spec

_PL_MODULES = (nn.ReLU, nn.LeakyReLU, Abs, nn.MaxPool2d)
_SMOOTH_MODULES = (nn.GELU, nn.Sigmoid, nn.Tanh, nn.Softplus, nn.ELU, nn.SiLU, nn.Softmax, nn.LogSoftmax)


@dataclass(frozen=True)
class LayerInfo:
    """One nonlinearity of the network, in forward order."""

    index: int  # 0-based position among nonlinearities
    path: str  # module path inside the Sequential, e.g. "3" or "4.body.1"
    kind: str  # spec type: relu, leaky_relu, abs, maxpool2d, or a smooth type
    width: int  # number of units (flattened output size of the layer)
    piecewise_linear: bool


@dataclass(frozen=True)
class ForwardTrace:
    """Everything one forward pass reveals, for a batch of N points.

    preactivations[l]: (N, width_l) input of nonlinearity l, flattened (for maxpool: the pooled max).
    patterns[l]: (N, width_l) bool (pre > 0) for relu/leaky_relu/abs; int64 argmax index for maxpool;
    all-False for smooth layers. logits: (N, output_dim).
    """

    preactivations: list[torch.Tensor]
    patterns: list[torch.Tensor]
    logits: torch.Tensor


def predicted_classes(logits):
    """(N, C) logits (torch or numpy) -> (N,) int64 classes: the argmax, or for a single-logit (binary)
    network class 1 where the logit is > 0."""
    if logits.shape[1] == 1:
        pos = logits[:, 0] > 0
        return pos.long() if isinstance(logits, torch.Tensor) else pos.astype("int64")
    return logits.argmax(1) if isinstance(logits, torch.Tensor) else logits.argmax(axis=1).astype("int64")


def state_mismatch(target: dict[str, tuple], given: dict[str, tuple]) -> list[str]:
    """How tensor shapes ``given`` (a checkpoint's) differ from ``target`` (the architecture's), as message
    parts ("missing ...", "unexpected ...", "mis-shaped ..."); empty when they fit. BatchNorm's step
    counter ``num_batches_tracked`` may be absent: it does not change the function, and loaders drop it."""
    missing = [k for k in target if k not in given and not k.endswith("num_batches_tracked")]
    unexpected = [printable(k, 60) for k in given if k not in target]
    misshaped = [printable(f"{k} {given[k]} vs {s}", 80) for k, s in target.items() if k in given and given[k] != s]
    return [
        f"{what} {sep.join(keys[:cap])}{' ...' if len(keys) > cap else ''}"
        for what, keys, sep, cap in (("missing", missing, ", ", 6), ("unexpected", unexpected, ", ", 6), ("mis-shaped", misshaped, "; ", 4))
        if keys
    ]


class Network(nn.Module):
    """A canonical network built from an architecture spec (see :mod:`geometry.networks.spec`)."""

    def __init__(self, spec: dict):
        super().__init__()
        self.spec = validate_spec(spec)
        self.layers = build_sequential(self.spec["layers"])
        self.input_shape: tuple[int, ...] = tuple(self.spec["input_shape"])
        self.input_dim = int(torch.tensor(self.input_shape).prod())
        self.output_dim = int(self.spec["output_dim"])
        self.num_classes = int(self.spec["num_classes"])
        self.eval()  # before the dry run: batch norm in training mode refuses a batch of one
        self.layer_infos: list[LayerInfo] = self._describe_layers()
        self.level = 0.0  # set by at_level: this network is f - level (its zero set, f's level set)

    # -- description -------------------------------------------------------------------------
    def _describe_layers(self) -> list[LayerInfo]:
        infos: list[LayerInfo] = []

        def record(module, path, x_in, x_out):
            kind = _kind_of(module)
            infos.append(LayerInfo(len(infos), path, kind, int(x_out[0].numel()), kind in PIECEWISE_LINEAR))

        with torch.no_grad():
            _walk(self.layers, torch.zeros(1, *self.input_shape), "", record)
        return infos

    @property
    def depth(self) -> int:
        """Number of nonlinearities (the layer slider's range is 1..depth)."""
        return len(self.layer_infos)

    @property
    def first_smooth_layer(self) -> LayerInfo | None:
        return next((li for li in self.layer_infos if not li.piecewise_linear), None)

    @property
    def is_piecewise_affine(self) -> bool:
        return self.first_smooth_layer is None

    def require_piecewise_affine(self, what: str = "exact tessellation") -> None:
        """Raise NotPiecewiseAffineError naming the first smooth layer, if any."""
        bad = self.first_smooth_layer
        if bad is not None:
            raise NotPiecewiseAffineError(
                f"{what} needs a piecewise-affine network, but layer {bad.path} is {bad.kind} (smooth); "
                f"gradient-based tools (DeepFool, leaf paths, boundary sampling) still work."
            )

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def summary(self) -> str:
        """One line per layer of the spec, e.g. ``linear 2->64``."""
        return describe_layers(self.spec["layers"])

    def layer_table(self) -> list[dict]:
        """One row per leaf layer, as ``splineatlas info`` prints it and the app's layer list shows it:
        ``path`` (module path, "4.body.1" inside a residual), ``layer`` (its spec type), ``output``
        (shape without the batch axis, from one forward pass of a zero input), ``parameters`` and ``kind``
        (affine, piecewise-linear or smooth)."""
        rows: list[dict] = []
        hooks = []
        kinds = {**{t: "piecewise-linear" for t in PIECEWISE_LINEAR}, **{t: "smooth" for t in SMOOTH}}

        def visit(seq: nn.Sequential, entries: list[dict], prefix: str) -> None:
            for (child_name, module), entry in zip(seq.named_children(), entries):
                path = f"{prefix}{child_name}"
                if isinstance(module, Residual):
                    visit(module.body, entry["body"], path + ".body.")
                    if module.shortcut is not None:
                        visit(module.shortcut, entry["shortcut"], path + ".shortcut.")
                    continue
                if isinstance(module, Concat):
                    for j, (branch, branch_entries) in enumerate(zip(module.branches, entry["branches"])):
                        visit(branch, branch_entries, f"{path}.branches.{j}.")
                    continue
                row = {"path": path, "layer": entry["type"], "output": None, "parameters": sum(p.numel() for p in module.parameters())}
                row["kind"] = kinds.get(entry["type"], "affine")
                rows.append(row)
                hooks.append(module.register_forward_hook(lambda m, i, o, row=row: row.update(output=list(o.shape[1:]))))

        visit(self.layers, self.spec["layers"], "")
        try:
            with torch.no_grad():
                p = next(self.parameters(), None)
                self(torch.zeros(1, self.input_dim, dtype=p.dtype if p is not None else torch.float32))
        finally:
            for h in hooks:
                h.remove()
        return rows

    def content_hash(self) -> str:
        """SHA-256 of the spec and weights: the cache key of everything computed from this network."""
        h = hashlib.sha256(repr(self.spec["layers"]).encode())
        for k, v in self.layers.state_dict().items():
            h.update(k.encode())
            h.update(v.detach().to("cpu", torch.float64).contiguous().numpy().tobytes())
        return h.hexdigest()

    # -- weights -----------------------------------------------------------------------------
    def load_weights(self, state: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
        """Load a state dict for ``self.layers``; mismatches are explained key by key."""
        target = self.layers.state_dict()
        parts = state_mismatch({k: tuple(v.shape) for k, v in target.items()}, {k: tuple(v.shape) for k, v in state.items()})
        if parts:
            raise ArchitectureError(
                f"{source} does not match the architecture: {'; '.join(parts)}. Check that the architecture spec is the one the weights were trained with."
            )
        cast = {}
        for k, v in target.items():
            if k not in state:
                continue
            value = state[k]
            if value.is_complex() or (v.is_floating_point() and not value.is_floating_point()):
                raise NonFiniteWeightsError(f"{source}: {k} has dtype {str(value.dtype).replace('torch.', '')}; weights must be real floating-point numbers.")
            cast[k] = value.to(v.dtype)
        # Checked after the cast: a float64 1e300 becomes inf in float32.
        bad = [k for k, v in cast.items() if v.is_floating_point() and not torch.isfinite(v).all()]
        if bad:
            raise NonFiniteWeightsError(
                f"{source} holds NaN/Inf values in {', '.join(bad[:5])} (as float32); the training diverged at or "
                f"before this checkpoint, or the values are beyond float32's range."
            )
        with torch.no_grad():
            for k, v in cast.items():
                target[k].copy_(v)

    # -- forward -----------------------------------------------------------------------------
    def _as_batch(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.input_dim:
            raise ArchitectureError(f"expected inputs of shape (N, {self.input_dim}) (flattened {list(self.input_shape)}), got {tuple(x.shape)}.")
        return x.reshape(x.shape[0], *self.input_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, output_dim)`` for flat inputs ``(N, D)``."""
        return self.layers(self._as_batch(x))

    def trace(self, x: torch.Tensor) -> ForwardTrace:
        """Forward pass that also returns every nonlinearity's pre-activations and pattern."""
        pres: list[torch.Tensor] = []
        pats: list[torch.Tensor] = []

        def record(module, path, x_in, x_out):
            n = x_in.shape[0]
            if isinstance(module, nn.MaxPool2d):
                out, idx = nn.functional.max_pool2d(
                    x_in, module.kernel_size, module.stride, module.padding, module.dilation, module.ceil_mode, return_indices=True
                )
                pres.append(out.reshape(n, -1))
                pats.append(idx.reshape(n, -1))
            elif isinstance(module, _PL_MODULES):
                pre = x_in.reshape(n, -1)
                pres.append(pre)
                pats.append(pre > 0)
            else:
                pre = x_in.reshape(n, -1)
                pres.append(pre)
                pats.append(torch.zeros_like(pre, dtype=torch.bool))

        logits = _walk(self.layers, self._as_batch(x), "", record)
        return ForwardTrace(pres, pats, logits)

    def to_dtype_device(self, dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu") -> "Network":
        """A copy of this network in ``dtype`` on ``device`` (the original is untouched)."""
        clone = Network(self.spec).to(device=device, dtype=dtype)
        clone.layers.load_state_dict(self.layers.state_dict())  # copies into dtype: no float32 round trip
        if isinstance(self.layers[-1], LevelledLinear):
            clone._set_level(self.layers[-1].unshifted_bias, self.level)
        return clone.eval()

    def at_level(self, level: float) -> "Network":
        """This network minus ``level`` on its single output: f − L, whose zero set (what every boundary tool
        traces) is f's level set {f = L}. Its regions are f's. The shift is exact in every dtype: the last
        layer becomes a :class:`LevelledLinear`, whose bias is recomputed from the unshifted one in float64
        whenever it is cast (the engine's float64 copy traces f − L, not f − L rounded to float32).
        Regression runs use it for ``--level``."""
        last = self.layers[-1] if len(self.layers) else None
        if self.output_dim != 1 or not isinstance(last, nn.Linear) or last.bias is None:
            raise ArchitectureError(f"a level set needs a network whose last layer is a Linear with a bias and one output (this one has {self.output_dim}).")
        clone = Network(self.spec)
        clone.layers.load_state_dict(self.layers.state_dict())
        clone._set_level(last.unshifted_bias if isinstance(last, LevelledLinear) else last.bias, float(level))
        return clone.eval()

    def _set_level(self, unshifted_bias: torch.Tensor, level: float) -> None:
        """Make the last layer a LevelledLinear at ``level`` over ``unshifted_bias`` (kept in float64)."""
        self.layers[-1].__class__ = LevelledLinear
        self.layers[-1].set_level(unshifted_bias, level)
        self.level = level


class LevelledLinear(nn.Linear):
    """A network's last Linear with ``level`` subtracted from its bias, exactly in every dtype: the unshifted
    bias is kept in float64 (outside the state dict) and the bias recomputed from it after every cast or
    move (``.to``, ``.double()``, deepcopy then ``.to``)."""

    unshifted_bias: torch.Tensor
    level: float

    def set_level(self, unshifted_bias: torch.Tensor, level: float) -> None:
        self.unshifted_bias = unshifted_bias.detach().to("cpu", torch.float64).clone()
        self.level = float(level)
        self._shift()

    def _shift(self) -> None:
        with torch.no_grad():
            self.bias.copy_((self.unshifted_bias - self.level).to(self.bias.dtype))

    def _apply(self, fn, recurse=True):
        out = super()._apply(fn, recurse)
        if hasattr(self, "unshifted_bias"):
            self._shift()
        return out


def _kind_of(module: nn.Module) -> str:
    return {
        nn.ReLU: "relu",
        nn.LeakyReLU: "leaky_relu",
        Abs: "abs",
        nn.MaxPool2d: "maxpool2d",
        nn.GELU: "gelu",
        nn.Sigmoid: "sigmoid",
        nn.Tanh: "tanh",
        nn.Softplus: "softplus",
        nn.ELU: "elu",
        nn.SiLU: "silu",
        nn.Softmax: "softmax",
        nn.LogSoftmax: "log_softmax",
    }[type(module)]


def _walk(seq: nn.Sequential, x: torch.Tensor, prefix: str, record) -> torch.Tensor:
    """Run ``seq`` on x, calling ``record(module, path, input, output)`` at each nonlinearity."""
    for name, module in seq.named_children():
        path = f"{prefix}{name}"
        if isinstance(module, Residual):
            x = module.skip(x) + _walk(module.body, x, path + ".body.", record)
            continue
        if isinstance(module, Concat):
            x = module.combine([_walk(b, x, f"{path}.branches.{j}.", record) for j, b in enumerate(module.branches)])
            continue
        y = module(x)
        if isinstance(module, _PL_MODULES + _SMOOTH_MODULES):
            record(module, path, x, y)
        x = y
    return x


def describe_layers(layers: list[dict], indent: str = "") -> str:
    lines = []
    for i, e in enumerate(layers):
        t = e["type"]
        if t == "linear":
            s = f"linear {e['in_features']}->{e['out_features']}"
        elif t in ("conv1d", "conv2d", "conv_transpose2d"):
            s = f"{t} {e['in_channels']}->{e['out_channels']} k={e['kernel_size']}"
        elif t == "concat":
            lines.append(f"{indent}{i}: concat(")
            for j, branch in enumerate(e["branches"]):
                if j:
                    lines.append(f"{indent}   ) ⊕ (")
                lines.append(describe_layers(branch, indent + "    ") if branch else f"{indent}    identity")
            lines.append(f"{indent}   )")
            continue
        elif t == "residual":
            lines.append(f"{indent}{i}: residual(")
            lines.append(describe_layers(e["body"], indent + "    "))
            if e.get("shortcut"):
                lines.append(f"{indent}   ) + shortcut(")
                lines.append(describe_layers(e["shortcut"], indent + "    "))
            lines.append(f"{indent}   )")
            continue
        else:
            s = t + ("" if t in PIECEWISE_LINEAR or t not in SMOOTH else " (smooth)")
        lines.append(f"{indent}{i}: {s}")
    return "\n".join(lines)
