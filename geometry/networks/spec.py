"""The JSON architecture spec: a small, explicit layer list that builds a torch model.

A spec is a plain dict (JSON-serialisable)::

    {"format": "splineatlas-arch/1",
     "input_shape": [2],            # per-sample shape; [C, H, W] for images
     "num_classes": 3,
     "layers": [{"type": "linear", "in_features": 2, "out_features": 64},
                {"type": "relu"}, ...]}

Layer types (parameters as in the torch constructors):
affine -- ``linear`` (in_features, out_features, bias), ``conv2d`` (in_channels,
out_channels, kernel_size, stride, padding, bias), ``batchnorm1d``/``batchnorm2d``
(num_features, eps, affine), ``avgpool2d`` (kernel_size, stride), ``flatten``,
``identity``, ``residual`` (body: a layer list; shortcut: an optional list of affine layers;
output = shortcut(x) + body(x), or x + body(x)), ``conv1d``, ``conv_transpose2d`` (output_padding),
``zeropad2d`` (padding: left, right, top, bottom), ``scale`` (factor);
branching -- ``concat`` (branches: layer lists, [] the identity; output = their outputs concatenated along
the channel/feature axis: a DenseNet layer's x ⊕ f(x), a U-net's skip connection);
piecewise-linear -- ``relu``, ``leaky_relu`` (negative_slope), ``abs``,
``maxpool2d`` (kernel_size, stride);
smooth (autograd tools only) -- ``gelu``, ``sigmoid``, ``tanh``, ``softplus``,
``elu``, ``silu``, ``softmax``, ``log_softmax``.
A trailing ``softmax``/``log_softmax`` is dropped wherever a spec comes from (a module, architecture.json,
a trace): it does not move the argmax, and Spline Atlas works on logits; the spec records it as
``dropped_output_transform``.
The state_dict keys are those of the equivalent ``nn.Sequential`` ("0.weight", ...).
"""

from __future__ import annotations

import copy
import math
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from geometry.errors import ArchitectureError, InputFileError
from geometry.networks.chain import ChainBuilder

SPEC_FORMAT = "splineatlas-arch/1"

AFFINE = {
    "linear",
    "conv1d",
    "conv2d",
    "conv_transpose2d",
    "batchnorm1d",
    "batchnorm2d",
    "avgpool2d",
    "adaptive_avgpool2d",
    "zeropad2d",
    "scale",
    "flatten",
    "identity",
    "residual",
}
BRANCHING = {"residual", "concat"}
PIECEWISE_LINEAR = {"relu", "leaky_relu", "abs", "maxpool2d"}
SMOOTH = {"gelu", "sigmoid", "tanh", "softplus", "elu", "silu", "softmax", "log_softmax"}
OUTPUT_TRANSFORMS = ("softmax", "log_softmax")
"""Dropped when they end a network (monotone per sample: the argmax and the decision boundary stay)."""
ALL_TYPES = AFFINE | PIECEWISE_LINEAR | SMOOTH | BRANCHING


class Abs(nn.Module):
    """Absolute value activation (piecewise linear, pattern = sign of the input)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.abs()


class Residual(nn.Module):
    """``skip(x) + body(x)``: a sum of two branches, ``skip`` the identity or an affine ``shortcut`` (a
    ResNet's projection: 1x1 conv + batch norm) and ``body`` any layer list."""

    def __init__(self, body: nn.Sequential, shortcut: nn.Sequential | None = None):
        super().__init__()
        self.body = body
        self.shortcut = shortcut

    def skip(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.shortcut is None else self.shortcut(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.body(x)


class Concat(nn.Module):
    """``cat([branch(x) for branch in branches])`` along the channel (feature) axis: a DenseNet layer's
    ``x ⊕ f(x)``, a U-net's skip connection. An empty branch is the identity."""

    def __init__(self, branches: list[nn.Sequential]):
        super().__init__()
        self.branches = nn.ModuleList(branches)

    @staticmethod
    def combine(outputs: list[torch.Tensor], lead: int = 1) -> torch.Tensor:
        """The branch outputs joined; ``lead``: the number of axes before a sample's own (1 for a batch,
        2 for the engine's affine batches ``(R, k+1, *shape)``)."""
        return torch.cat(outputs, dim=lead)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.combine([branch(x) for branch in self.branches])


class Scale(nn.Module):
    """Multiplication by a constant (``x * c``), kept as a layer so that a network stays one canonical form."""

    def __init__(self, factor: float):
        super().__init__()
        self.factor = float(factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor


def _int_pair(v: Any) -> int | tuple[int, int]:
    return tuple(v) if isinstance(v, (list, tuple)) else int(v)


def _one(v: Any) -> int:
    """A 1-d setting given as ``3`` or ``[3]``."""
    return v[0] if isinstance(v, (list, tuple)) and len(v) == 1 else v


MAX_PARAMETERS = 250_000_000  # ~1 GB of float32 weights (2 GB as the exact tools' float64 copy)


def count_parameters(layers) -> int:
    """Parameters the spec's ``layers`` would allocate, counted before anything is built (an absurd spec
    is refused by :func:`validate_spec` instead of exhausting memory). Malformed entries count 0 here;
    :func:`build_layer` reports them."""
    total = 0
    for e in layers if isinstance(layers, list) else []:
        if not isinstance(e, dict):
            continue
        try:
            kind = e.get("type")
            if kind == "linear":
                total += int(e["in_features"]) * int(e["out_features"]) + int(e["out_features"])
            elif kind in ("conv1d", "conv2d", "conv_transpose2d"):
                k = e["kernel_size"]
                kk = math.prod(int(v) for v in k) if isinstance(k, (list, tuple)) else int(k) ** (1 if kind == "conv1d" else 2)
                total += int(e["in_channels"]) * int(e["out_channels"]) * kk // max(1, int(e.get("groups", 1))) + int(e["out_channels"])
            elif kind in ("batchnorm1d", "batchnorm2d"):
                total += 4 * int(e["num_features"])
            elif kind == "residual":
                total += count_parameters(e.get("body")) + count_parameters(e.get("shortcut") or [])
            elif kind == "concat":
                total += sum(count_parameters(b) for b in e.get("branches") or [])
        except (KeyError, TypeError, ValueError):
            continue
    return total


def build_layer(entry: dict) -> nn.Module:
    """Build one torch module from one spec entry."""
    kind = entry.get("type")
    if kind not in ALL_TYPES:
        raise ArchitectureError(f"unknown layer type {kind!r} in architecture spec; supported: {', '.join(sorted(ALL_TYPES))}.")
    try:
        if kind == "linear":
            return nn.Linear(int(entry["in_features"]), int(entry["out_features"]), bias=entry.get("bias", True))
        if kind == "conv2d":
            return nn.Conv2d(
                int(entry["in_channels"]),
                int(entry["out_channels"]),
                _int_pair(entry["kernel_size"]),
                stride=_int_pair(entry.get("stride", 1)),
                padding=_int_pair(entry.get("padding", 0)),
                dilation=_int_pair(entry.get("dilation", 1)),
                groups=int(entry.get("groups", 1)),
                bias=entry.get("bias", True),
            )
        if kind == "conv1d":
            return nn.Conv1d(
                int(entry["in_channels"]),
                int(entry["out_channels"]),
                int(_one(entry["kernel_size"])),
                stride=int(_one(entry.get("stride", 1))),
                padding=int(_one(entry.get("padding", 0))),
                dilation=int(_one(entry.get("dilation", 1))),
                groups=int(entry.get("groups", 1)),
                bias=entry.get("bias", True),
            )
        if kind == "conv_transpose2d":
            return nn.ConvTranspose2d(
                int(entry["in_channels"]),
                int(entry["out_channels"]),
                _int_pair(entry["kernel_size"]),
                stride=_int_pair(entry.get("stride", 1)),
                padding=_int_pair(entry.get("padding", 0)),
                output_padding=_int_pair(entry.get("output_padding", 0)),
                groups=int(entry.get("groups", 1)),
                bias=entry.get("bias", True),
                dilation=_int_pair(entry.get("dilation", 1)),
            )
        if kind == "zeropad2d":
            return nn.ZeroPad2d(tuple(int(v) for v in entry["padding"]))
        if kind == "scale":
            return Scale(float(entry["factor"]))
        if kind == "concat":
            return Concat([nn.Sequential(*[build_layer(e) for e in branch]) for branch in entry["branches"]])
        if kind in ("batchnorm1d", "batchnorm2d"):
            cls = nn.BatchNorm1d if kind == "batchnorm1d" else nn.BatchNorm2d
            return cls(int(entry["num_features"]), eps=float(entry.get("eps", 1e-5)), affine=entry.get("affine", True))
        if kind == "avgpool2d":
            return nn.AvgPool2d(
                _int_pair(entry["kernel_size"]),
                stride=entry.get("stride"),
                padding=_int_pair(entry.get("padding", 0)),
                ceil_mode=entry.get("ceil_mode", False),
                count_include_pad=entry.get("count_include_pad", True),
            )
        if kind == "maxpool2d":
            return nn.MaxPool2d(
                _int_pair(entry["kernel_size"]),
                stride=entry.get("stride"),
                padding=_int_pair(entry.get("padding", 0)),
                dilation=_int_pair(entry.get("dilation", 1)),
                ceil_mode=entry.get("ceil_mode", False),
            )
        if kind == "flatten":
            return nn.Flatten()
        if kind == "identity":
            return nn.Identity()
        if kind == "adaptive_avgpool2d":
            return nn.AdaptiveAvgPool2d(_int_pair(entry["output_size"]))
        if kind == "residual":
            shortcut = entry.get("shortcut")
            return Residual(build_sequential(entry["body"]), build_sequential(shortcut) if shortcut else None)
        if kind == "relu":
            return nn.ReLU()
        if kind == "leaky_relu":
            return nn.LeakyReLU(float(entry.get("negative_slope", 0.01)))
        if kind == "abs":
            return Abs()
        if kind == "log_softmax":
            return nn.LogSoftmax(dim=-1)
        return {"gelu": nn.GELU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "softplus": nn.Softplus, "elu": nn.ELU, "silu": nn.SiLU}.get(
            kind, lambda: nn.Softmax(dim=-1)
        )()
    except KeyError as exc:
        raise ArchitectureError(f"layer {kind!r} in architecture spec is missing the parameter {exc.args[0]!r}.") from None
    except (TypeError, ValueError, RuntimeError) as exc:  # torch: RuntimeError for negative sizes
        raise ArchitectureError(
            f"layer {kind!r} in architecture spec has a bad parameter: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}."
        ) from None


def build_sequential(layers: list[dict]) -> nn.Sequential:
    if not isinstance(layers, list) or not layers:
        raise ArchitectureError("architecture spec needs a non-empty 'layers' list.")
    return nn.Sequential(*[build_layer(e) for e in layers])


MAX_ACTIVATIONS = 64_000_000  # units summed over all layers, per sample (~256 MB of float32 each)


def _check_shortcuts(layers: list[dict], where: str = "layers") -> None:
    """A residual's shortcut branch must be affine (a projection: conv/linear, batch norm, pooling)."""
    for i, e in enumerate(layers):
        if e.get("type") == "concat":
            for j, branch in enumerate(e["branches"]):
                _check_shortcuts(branch, f"{where}[{i}].branches[{j}]")
        if e.get("type") != "residual":
            continue
        for j, s in enumerate(e.get("shortcut") or []):
            if s.get("type") not in AFFINE or s.get("type") in BRANCHING:
                raise ArchitectureError(
                    f"{where}[{i}].shortcut[{j}] is {s.get('type')}: a shortcut branch must be affine (a projection such as "
                    f"conv2d + batchnorm2d); put nonlinear layers in the residual's body."
                )
        _check_shortcuts(e["body"], f"{where}[{i}].body")


def validate_spec(spec: dict) -> dict:
    """Check a spec's fields (typed schema), its size budgets and its shapes (a dry forward pass on torch's
    meta device, so nothing is allocated); return a normalised copy."""
    from geometry.networks.schemas import ArchitectureSpec, validate_document

    if not isinstance(spec, dict):
        raise ArchitectureError("architecture spec must be a JSON object with 'input_shape' and 'layers'.")
    validate_document(ArchitectureSpec, spec, "architecture spec", ArchitectureError, "README: 'Architecture spec'")
    spec = copy.deepcopy(spec)
    spec.setdefault("format", SPEC_FORMAT)
    while len(spec["layers"]) > 1 and spec["layers"][-1]["type"] in OUTPUT_TRANSFORMS:
        spec["dropped_output_transform"] = spec["layers"].pop()["type"]
    _check_shortcuts(spec["layers"])
    shape = spec["input_shape"]
    n_inputs = math.prod(shape)
    if n_inputs > 10_000_000:
        raise ArchitectureError(f"input_shape {shape} is absurdly large (over 10 million features).")
    n_params = count_parameters(spec.get("layers"))
    if n_params > MAX_PARAMETERS:
        raise ArchitectureError(
            f"the architecture has {n_params:,} parameters (over {MAX_PARAMETERS:,}); Spline Atlas is for networks that fit a desktop's memory many times over."
        )
    out_shape = _dry_run_shapes(spec["layers"], shape)
    if len(out_shape) != 2:
        raise ArchitectureError(f"the network's output must be (batch, classes); got shape {tuple(out_shape)}: end with a flatten/linear layer.")
    n_out = int(out_shape[1])
    expected = n_out if n_out > 1 else 2
    if spec.get("num_classes") is not None and spec["num_classes"] != expected:
        raise ArchitectureError(
            f"architecture spec: num_classes is {spec['num_classes']:,} but the network has "
            f"{n_out} output{'s' if n_out > 1 else ''} ({expected} classes); fix num_classes "
            f"or remove it."
        )
    if spec.get("output_dim") is not None and spec["output_dim"] != n_out:
        raise ArchitectureError(f"architecture spec: output_dim is {spec['output_dim']:,} but the layers give {n_out}; fix output_dim or remove it.")
    spec["num_classes"] = expected
    spec["output_dim"] = n_out
    return spec


def _dry_run_shapes(layers: list[dict], shape: list[int]) -> tuple[int, ...]:
    """The output shape of the layer list for one sample, computed on the meta device (no memory), with
    every layer's activation size summed against :data:`MAX_ACTIVATIONS`."""
    total = 0

    def count(module, inputs, output):
        nonlocal total
        if isinstance(output, torch.Tensor) and not list(module.children()):
            total += output.numel()

    try:
        with torch.device("meta"):
            model = build_sequential(layers).eval()
            handles = [m.register_forward_hook(count) for m in model.modules()]
            with torch.no_grad():
                out = model(torch.zeros(1, *shape))
        for h in handles:
            h.remove()
    except (RuntimeError, ValueError, IndexError, NotImplementedError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ArchitectureError(f"architecture spec layers do not fit together for input_shape {shape}: {first[:200]}") from None
    if total > MAX_ACTIVATIONS:
        raise ArchitectureError(
            f"the architecture computes {total:,} activations per sample (over {MAX_ACTIVATIONS:,}); use a smaller input_shape or narrower layers."
        )
    # Within budget: the real dry run as before. Building the layers draws their initial weights from
    # torch's global generator, and seeded training (the bundled runs) depends on that draw.
    with torch.no_grad():
        out = build_sequential(layers).eval()(torch.zeros(1, *shape))
    return tuple(out.shape)


def mlp_spec(widths: list[int], activation: str = "relu", batchnorm: bool = False, negative_slope: float = 0.01) -> dict:
    """Spec of an MLP ``widths[0] -> ... -> widths[-1]`` (e.g. ``[2, 64, 64, 3]``)."""
    if len(widths) < 2 or any(w <= 0 for w in widths):
        raise ArchitectureError(f"an MLP needs at least an input and an output width, all positive; got {widths}.")
    layers: list[dict] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append({"type": "linear", "in_features": a, "out_features": b})
        if i < len(widths) - 2:
            if batchnorm:
                layers.append({"type": "batchnorm1d", "num_features": b})
            act = {"type": activation}
            if activation == "leaky_relu":
                act["negative_slope"] = negative_slope
            layers.append(act)
    return validate_spec({"input_shape": [widths[0]], "layers": layers})


def parse_arch_string(text: str, activation: str = "relu", batchnorm: bool = False) -> dict:
    """``"2-64-64-3"`` -> MLP spec (``activation`` after each hidden layer, with ``batchnorm`` before it);
    ``"digits-cnn"`` -> the small CNN for 8x8 digits (its own layers: the two options do not apply)."""
    if text == "digits-cnn":
        return digits_cnn_spec()
    try:
        widths = [int(p) for p in text.split("-")]
    except ValueError:
        raise ArchitectureError(f"--arch {text!r} is not of the form 2-64-64-3 (MLP widths) nor 'digits-cnn'.") from None
    return mlp_spec(widths, activation=activation, batchnorm=batchnorm)


def digits_cnn_spec(channels: int = 8, hidden: int = 32) -> dict:
    """A small piecewise-affine CNN for 1x8x8 digits: conv-relu-avgpool-conv-relu-flatten-linear-relu-linear."""
    c = channels
    return validate_spec(
        {
            "input_shape": [1, 8, 8],
            "layers": [
                {"type": "conv2d", "in_channels": 1, "out_channels": c, "kernel_size": 3, "padding": 1},
                {"type": "relu"},
                {"type": "avgpool2d", "kernel_size": 2},
                {"type": "conv2d", "in_channels": c, "out_channels": 2 * c, "kernel_size": 3, "padding": 1},
                {"type": "relu"},
                {"type": "flatten"},
                {"type": "linear", "in_features": 2 * c * 16, "out_features": hidden},
                {"type": "relu"},
                {"type": "linear", "in_features": hidden, "out_features": 10},
            ],
        }
    )


def load_spec_file(path: str | Path, root: Path | None = None) -> dict:
    """Read and validate an architecture JSON file (``root``: the folder it must stay inside)."""
    from geometry.safe_io import name, read_json

    path = Path(path)
    if not os.path.lexists(path):
        raise InputFileError(f"architecture file {name(path)} does not exist; write one (see README, 'Architecture spec').")
    data = read_json(path, "architecture file", root)
    try:
        return validate_spec(data)
    except ArchitectureError as exc:
        raise ArchitectureError(f"{name(path)}: {exc}") from None


POOL_DEFAULTS = {"padding": 0, "dilation": 1, "ceil_mode": False, "count_include_pad": True}
CONV_DEFAULTS = {"dilation": 1, "groups": 1}


def _with_settings(entry: dict, module: nn.Module, defaults: dict) -> dict:
    """``entry`` plus each of the module's ``defaults`` settings that differs from its default. Only those
    are written, so a spec (and its content hash) reads as before for a network that uses none; dropping
    one would give another network (a pooling without its padding)."""
    for name, default in defaults.items():
        if not hasattr(module, name):
            continue
        value = getattr(module, name)
        value = list(value) if isinstance(value, tuple) else value
        if value != default and value != [default, default]:
            entry[name] = value
    return entry


def _conv_entry(m: nn.Module) -> dict:
    if m.padding_mode != "zeros" or isinstance(m.padding, str):
        raise ArchitectureError(f"{type(m).__name__} with padding {m.padding!r}, mode {m.padding_mode!r}: Spline Atlas reads zero padding by numbers.")
    kind = {nn.Conv1d: "conv1d", nn.Conv2d: "conv2d", nn.ConvTranspose2d: "conv_transpose2d"}[type(m)]
    entry = {
        "type": kind,
        "in_channels": m.in_channels,
        "out_channels": m.out_channels,
        "kernel_size": list(m.kernel_size),
        "stride": list(m.stride),
        "padding": list(m.padding),
        "bias": m.bias is not None,
    }
    if kind == "conv_transpose2d":
        entry["output_padding"] = list(m.output_padding)
    return _with_settings(entry, m, CONV_DEFAULTS)


def _pool_entry(m: nn.Module) -> dict:
    if getattr(m, "divisor_override", None) is not None or getattr(m, "return_indices", False):
        raise ArchitectureError(f"{type(m).__name__} with divisor_override or return_indices is not read by Spline Atlas.")
    kind = "maxpool2d" if isinstance(m, nn.MaxPool2d) else "avgpool2d"
    return _with_settings({"type": kind, "kernel_size": m.kernel_size, "stride": m.stride}, m, POOL_DEFAULTS)


_MODULE_TO_ENTRY = {
    nn.Linear: lambda m: {"type": "linear", "in_features": m.in_features, "out_features": m.out_features, "bias": m.bias is not None},
    nn.Conv1d: _conv_entry,
    nn.Conv2d: _conv_entry,
    nn.ConvTranspose2d: _conv_entry,
    nn.ZeroPad2d: lambda m: {"type": "zeropad2d", "padding": [int(v) for v in m.padding]},
    Scale: lambda m: {"type": "scale", "factor": m.factor},
    nn.BatchNorm1d: lambda m: {"type": "batchnorm1d", "num_features": m.num_features, "eps": m.eps, "affine": m.affine},
    nn.BatchNorm2d: lambda m: {"type": "batchnorm2d", "num_features": m.num_features, "eps": m.eps, "affine": m.affine},
    nn.AvgPool2d: _pool_entry,
    nn.MaxPool2d: _pool_entry,
    nn.Flatten: lambda m: {"type": "flatten"},
    nn.Identity: lambda m: {"type": "identity"},
    nn.Dropout: lambda m: {"type": "identity"},
    nn.ReLU: lambda m: {"type": "relu"},
    nn.LeakyReLU: lambda m: {"type": "leaky_relu", "negative_slope": m.negative_slope},
    Abs: lambda m: {"type": "abs"},
    nn.GELU: lambda m: {"type": "gelu"},
    nn.Sigmoid: lambda m: {"type": "sigmoid"},
    nn.Tanh: lambda m: {"type": "tanh"},
    nn.Softplus: lambda m: {"type": "softplus"},
    nn.ELU: lambda m: {"type": "elu"},
    nn.SiLU: lambda m: {"type": "silu"},
    nn.Softmax: lambda m: {"type": "softmax"},
    nn.LogSoftmax: lambda m: {"type": "log_softmax"},
    nn.AdaptiveAvgPool2d: lambda m: {"type": "adaptive_avgpool2d", "output_size": _spec_pair(m.output_size)},
}


def _spec_pair(v):
    if isinstance(v, (list, tuple)):
        if any(x is None for x in v):
            raise ArchitectureError(f"AdaptiveAvgPool2d with output size {tuple(v)}: give both sizes.")
        return [int(x) for x in v]
    return int(v)


_SCRIPT_NAMES = {cls.__name__: cls for cls in _MODULE_TO_ENTRY}


def _entries_and_params(module: nn.Module, path: str) -> tuple[list[dict], list[torch.Tensor]]:
    """Walk a (possibly nested, possibly scripted) Sequential into spec entries + its tensors in order."""
    if isinstance(module, Residual):
        body, tensors = _entries_and_params(module.body, path + ".body")
        if module.shortcut is None:
            return [{"type": "residual", "body": body}], tensors
        short, more = _entries_and_params(module.shortcut, path + ".shortcut")
        return [{"type": "residual", "body": body, "shortcut": short}], tensors + more
    if isinstance(module, Concat):
        branches, tensors = [], []
        for j, branch in enumerate(module.branches):
            e, t = _entries_and_params(branch, f"{path}.branches.{j}")
            branches.append(e)
            tensors += t
        return [{"type": "concat", "branches": branches}], tensors
    cls_name = getattr(module, "original_name", type(module).__name__)
    if isinstance(module, nn.Sequential) or cls_name == "Sequential":
        entries, tensors = [], []
        for name, child in module.named_children():
            e, t = _entries_and_params(child, f"{path}.{name}" if path else name)
            entries += e
            tensors += t
        return entries, tensors
    cls = type(module) if type(module) in _MODULE_TO_ENTRY else _SCRIPT_NAMES.get(cls_name)
    if cls is None:
        if not isinstance(module, torch.jit.ScriptModule):
            return _entries_from_fx(module, path, cls_name)
        where = path or "the top-level module"
        raise ArchitectureError(
            f"layer {where} of type {cls_name} is not supported; express the model as nn.Sequential of "
            f"Linear/Conv2d/BatchNorm/AvgPool/MaxPool/Flatten/ReLU/LeakyReLU layers (see README)."
        )
    if cls_name != type(module).__name__:  # scripted module: read attributes from its state
        module = _rebuild_scripted(cls, module)
    tensors = list(module.state_dict().values())
    return [_MODULE_TO_ENTRY[cls](module)], tensors


def _function_entry(node) -> dict | None:
    """The spec entry of a traced functional call / tensor method on the chain's value, or None if unknown."""
    import torch.nn.functional as F

    t, args, kw = node.target, node.args, node.kwargs
    arg = lambda i, name, default=None: args[i] if len(args) > i else kw.get(name, default)  # noqa: E731
    simple = {"relu": "relu", "abs": "abs", "sigmoid": "sigmoid", "tanh": "tanh", "gelu": "gelu", "softplus": "softplus", "elu": "elu", "silu": "silu"}
    name = t if node.op == "call_method" else getattr(t, "__name__", "")
    if node.op == "call_function" and t not in (
        torch.relu,
        F.relu,
        torch.abs,
        torch.sigmoid,
        torch.tanh,
        F.gelu,
        F.softplus,
        F.elu,
        F.silu,
        F.leaky_relu,
        torch.flatten,
        F.max_pool2d,
        F.avg_pool2d,
        F.dropout,
        torch.softmax,
        F.softmax,
        torch.log_softmax,
        F.log_softmax,
        F.adaptive_avg_pool2d,
        F.pad,
    ):
        return None
    if name in simple:
        return {"type": simple[name]}
    if name == "leaky_relu":
        return {"type": "leaky_relu", "negative_slope": float(arg(1, "negative_slope", 0.01))}
    if name == "flatten" and int(arg(1, "start_dim", 0)) == 1 and int(arg(2, "end_dim", -1)) == -1:
        return {"type": "flatten"}
    if name in ("view", "reshape") and len(args) == 3 and args[2] == -1 and _is_batch_size(args[1]):
        return {"type": "flatten"}
    if name in ("max_pool2d", "avg_pool2d"):
        k = arg(1, "kernel_size")
        if name == "max_pool2d":
            module = nn.MaxPool2d(k, arg(2, "stride"), arg(3, "padding", 0), arg(4, "dilation", 1), ceil_mode=arg(5, "ceil_mode", False))
            if arg(6, "return_indices", False):
                return None
        else:
            module = nn.AvgPool2d(
                k, arg(2, "stride"), arg(3, "padding", 0), arg(4, "ceil_mode", False), arg(5, "count_include_pad", True), arg(6, "divisor_override")
            )
        return _pool_entry(module)
    if name == "pad" and arg(2, "mode", "constant") == "constant" and not arg(3, "value", 0) and len(arg(1, "pad")) == 4:
        return {"type": "zeropad2d", "padding": [int(v) for v in arg(1, "pad")]}
    if name == "dropout":
        return {"type": "identity"}
    if name == "adaptive_avg_pool2d":
        return {"type": "adaptive_avgpool2d", "output_size": _spec_pair(arg(1, "output_size"))}
    if name in OUTPUT_TRANSFORMS and arg(1, "dim") in (1, -1):
        return {"type": name}
    return None


def _is_batch_size(node) -> bool:
    """``x.size(0)`` or ``x.shape[0]`` in a traced graph."""
    import operator

    return (getattr(node, "op", None) == "call_method" and node.target == "size" and node.args[1:] == (0,)) or (
        getattr(node, "op", None) == "call_function" and node.target is operator.getitem and node.args[1] == 0
    )


def _scalar_factor(node, current) -> float | None:
    """``x * c``, ``c * x`` or ``x / c`` on the chain's value with a number c: the factor, else None."""
    import operator

    if node.op != "call_function" or node.target not in (operator.mul, torch.mul, operator.truediv, torch.div) or len(node.args) != 2 or node.kwargs:
        return None
    a, b = node.args
    divide = node.target in (operator.truediv, torch.div)
    if a is current and isinstance(b, (int, float)) and not isinstance(b, bool):
        return 1.0 / b if divide and b != 0 else (None if divide else float(b))
    if b is current and isinstance(a, (int, float)) and not isinstance(a, bool) and not divide:
        return float(a)
    return None


def _entries_from_fx(module: nn.Module, path: str, cls_name: str) -> tuple[list[dict], list[torch.Tensor]]:
    """Canonicalise a custom module by tracing its forward with torch.fx: a chain of supported layers and
    functional calls, with ``x + f(x)`` sums as residual entries. Anything else is refused by name."""
    import operator

    import torch.fx as fx

    where = path or "the top-level module"

    def refuse(what: str) -> ArchitectureError:
        return ArchitectureError(
            f"layer {where} of type {cls_name}: its forward {what}, which the canonical form cannot express "
            f"(a chain of Linear/Conv2d/BatchNorm/pooling/Flatten layers and ReLU/LeakyReLU/Abs activations, "
            f"optionally with residual sums x + f(x) or shortcut(x) + f(x)); see README."
        )

    try:
        graph = fx.symbolic_trace(module).graph
    except Exception as exc:  # tracing runs user code: any error means "not traceable"
        raise refuse(f"cannot be traced by torch.fx ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    chain: ChainBuilder | None = None

    for node in graph.nodes:
        if node.op == "placeholder":
            if chain is not None:
                raise refuse("takes more than one input")
            chain = ChainBuilder(node, refuse)
        elif node.op == "output":
            return chain.finish(node.args[0])
        elif (
            (node.op == "call_method" and node.target == "size")
            or _is_batch_size(node)
            or (node.op == "call_function" and node.target is getattr and node.args[1:] == ("shape",))
        ):
            continue  # batch-size bookkeeping of view/reshape
        elif node.op == "call_function" and node.target in (operator.add, torch.add, operator.iadd):
            if len(node.args) > 2 or node.kwargs:
                raise refuse("adds two branches that are not a residual x + f(x) or shortcut(x) + f(x)")
            chain.add(node, node.args[0], node.args[1], "")
        elif node.op == "call_function" and node.target is torch.cat:
            parts = node.args[0] if node.args else node.kwargs.get("tensors")
            dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
            if dim != 1:
                raise refuse(f"concatenates along dim {dim} (Spline Atlas joins branches along the channel axis, dim 1)")
            chain.concat(node, list(parts) if isinstance(parts, (list, tuple)) else [], "")
        elif (factor := _scalar_factor(node, chain.current)) is not None:
            chain.step(node, chain.current, [{"type": "scale", "factor": factor}], [], "")
        elif node.op == "call_module":
            if len(node.args) != 1 or node.kwargs:
                raise refuse(f"calls {node.target} with more than one input")
            sub = module.get_submodule(node.target)
            e, t = _entries_and_params(sub, f"{path}.{node.target}" if path else node.target)
            chain.step(node, node.args[0], e, t, f"calls {node.target} on")
        elif node.op in ("call_function", "call_method"):
            name = getattr(node.target, "__name__", node.target)
            entry = _function_entry(node)
            if entry is None:
                raise refuse(f"uses {name}")
            chain.step(node, node.args[0], [entry], [], f"uses {name} on")
        else:
            raise refuse(f"reads {node.target} directly ({node.op})")
    raise refuse("has no output")


def _traced_constants(scripted: nn.Module, op: str) -> list | None:
    """The constant arguments of the first ``op`` call (e.g. "aten::leaky_relu") in a TorchScript module's
    graph -- where ``torch.jit.trace`` keeps a layer's settings, which it does not store as attributes --
    with None for the non-constant ones; None when the graph has no such call."""
    graph = getattr(scripted, "graph", None)
    if graph is None:
        return None
    for node in graph.nodes():
        if node.kind() != op:
            continue
        out = []
        for value in node.inputs():
            src = value.node()
            if src.kind() == "prim::Constant":
                out.append(src.output().toIValue() if src.hasAttribute("value") else None)
            elif src.kind() == "prim::ListConstruct" and all(v.node().kind() == "prim::Constant" for v in src.inputs()):
                out.append([v.node().output().toIValue() for v in src.inputs()])
            else:
                out.append(None)
        return out
    return None


def _rebuild_scripted(cls: type, scripted: nn.Module) -> nn.Module:
    """Recreate a plain module from a TorchScript one of class ``cls``: its settings come from its attributes
    (``torch.jit.script``) or from the constants of its graph (``torch.jit.trace`` keeps them only there).
    A setting found in neither is refused, never guessed: a guessed LeakyReLU slope or BatchNorm eps gives
    a different network that still tessellates."""
    where = getattr(scripted, "original_name", cls.__name__)

    def setting(name: str, op: str, index: int):
        if hasattr(scripted, name):
            return getattr(scripted, name)
        args = _traced_constants(scripted, op)
        if args is None or len(args) <= index or args[index] is None:
            raise ArchitectureError(
                f"this TorchScript {where} layer records no {name}; give the architecture in an architecture.json "
                f"beside the file, or save a state dict (README: 'Opening networks')."
            )
        return args[index]

    def pair(v) -> tuple[int, int]:
        v = tuple(v) if isinstance(v, (list, tuple)) else (v, v)
        if len(v) != 2 or not all(isinstance(k, int) for k in v):
            raise ArchitectureError(f"this TorchScript {where} layer has setting {v!r}, which Spline Atlas does not read (give an architecture.json).")
        return v

    sd = scripted.state_dict()
    if cls is nn.Linear:
        w = sd["weight"]
        m = nn.Linear(w.shape[1], w.shape[0], bias="bias" in sd)
    elif cls is nn.Conv2d:
        w = sd["weight"]
        stride, padding = pair(setting("stride", "aten::_convolution", 3)), pair(setting("padding", "aten::_convolution", 4))
        dilation, groups = pair(setting("dilation", "aten::_convolution", 5)), setting("groups", "aten::_convolution", 8)
        if dilation != (1, 1) or groups != 1:
            raise ArchitectureError(f"this TorchScript Conv2d has dilation {dilation} and groups {groups}; Spline Atlas reads dilation 1 and groups 1.")
        m = nn.Conv2d(w.shape[1], w.shape[0], tuple(w.shape[2:]), stride=stride, padding=padding, bias="bias" in sd)
    elif cls in (nn.BatchNorm1d, nn.BatchNorm2d):
        m = cls(sd["running_mean"].shape[0], eps=float(setting("eps", "aten::batch_norm", 7)), affine="weight" in sd)
    elif cls in (nn.AvgPool2d, nn.MaxPool2d):
        op = "aten::max_pool2d" if cls is nn.MaxPool2d else "aten::avg_pool2d"
        kernel = pair(setting("kernel_size", op, 1))
        stride = setting("stride", op, 2)
        padding = pair(setting("padding", op, 3))
        if padding != (0, 0):
            raise ArchitectureError(f"this TorchScript {where} pads by {padding}; Spline Atlas reads pooling without padding.")
        m = cls(kernel, stride=pair(stride) if stride not in (None, []) else kernel)
    elif cls is nn.LeakyReLU:
        m = nn.LeakyReLU(float(setting("negative_slope", "aten::leaky_relu", 1)))
    else:
        m = cls()
    m.load_state_dict(sd)
    return m


def spec_from_module(module: nn.Module, input_shape: list[int] | None = None) -> tuple[dict, dict]:
    """Canonicalise a torch Sequential-like module: return (spec, state_dict for that spec).

    A trailing Softmax/LogSoftmax is dropped (it does not move the argmax; Spline Atlas works on logits).
    """
    entries, tensors = _entries_and_params(module, "")
    if input_shape is None:
        first = entries[0] if entries else {}
        if first.get("type") == "linear":
            input_shape = [first["in_features"]]
        else:
            raise ArchitectureError(
                f"cannot infer the input shape of a model whose first layer is {first.get('type', 'missing')}; "
                f'give it: an architecture.json beside the file with e.g. "input_shape": [1, 28, 28] '
                f"(in Python: spec_from_module(module, input_shape=[1, 28, 28]))."
            )
    spec = validate_spec({"input_shape": list(input_shape), "layers": entries})  # drops a trailing softmax
    target = build_sequential(spec["layers"]).state_dict()
    if len(target) != len(tensors):
        raise ArchitectureError("internal: could not map the module's tensors onto the canonical form.")
    state = {k: t.detach().clone() for k, t in zip(target.keys(), tensors)}
    return spec, state
