"""ONNX models as canonical networks: the graph is read with the ``onnx`` package (a protobuf: reading it
runs no code), its initializers are the weights, and its nodes are mapped onto the canonical layer list.

Supported nodes: Gemm (and MatMul + Add), Conv (no groups or dilation), BatchNormalization, Relu,
LeakyRelu, Abs, MaxPool and AveragePool (no padding), GlobalAveragePool, Flatten, Reshape to (N, -1),
Identity, Dropout, and Add as a residual ``x + f(x)`` or ``shortcut(x) + f(x)`` -- a chain with sums of two
branches, as the torch.fx conversion. A trailing Softmax/LogSoftmax is dropped, as everywhere. Any other
node is refused naming its op type; models with external data files are refused (the weights must be
in the file).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from geometry.errors import ArchitectureError, InputFileError
from geometry.safe_io import name

SHAPE_OPS = ("Shape", "Gather", "Unsqueeze", "Concat", "Constant", "Cast", "Squeeze", "Slice")
"""Ops that only compute a Reshape's target shape in exported graphs (followed back, never run)."""


def read_onnx(real: Path, path: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """(canonical spec, its state dict) of the ONNX model at ``real`` (``path``: the name to report)."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise InputFileError(f"{name(path)} is an ONNX model; reading it needs the onnx package (pip install onnx).") from None
    try:
        model = onnx.load(str(real), load_external_data=False)
    except Exception as exc:  # protobuf decode errors of a damaged file
        raise InputFileError(f"{name(path)} is not a readable ONNX model ({type(exc).__name__}); re-export it.") from None
    g = model.graph
    inits = {}
    for t in g.initializer:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            raise InputFileError(f"{name(path)} keeps its weights in external files; re-export with the weights inside the .onnx file.")
        inits[t.name] = numpy_helper.to_array(t)
    consts = dict(inits)
    for n in g.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    consts[n.output[0]] = numpy_helper.to_array(a.t)
    inputs = [i for i in g.input if i.name not in inits]
    if len(inputs) != 1:
        raise ArchitectureError(f"{name(path)} has {len(inputs)} inputs; Spline Atlas reads models with one input.")
    dims = [d.dim_value for d in inputs[0].type.tensor_type.shape.dim]
    if len(dims) < 2 or any(v <= 0 for v in dims[1:]):
        raise ArchitectureError(f"{name(path)}: its input has shape {dims}; export with a fixed shape (batch, features...) .")
    return _Graph(path, consts, inits).convert(g, inputs[0].name, dims[1:])


class _Graph:
    def __init__(self, path: Path, consts: dict, inits: dict):
        self.path, self.consts, self.inits = path, consts, inits

    def refuse(self, what: str) -> ArchitectureError:
        return ArchitectureError(f"{name(self.path)}: {what}, which the canonical form cannot express (see README: 'Opening networks').")

    def convert(self, g, inp: str, input_shape: list[int]):
        from geometry.networks.spec import build_sequential, fold_branch_sum, validate_spec

        producers = {o: n for n in g.node for o in n.output}
        entries: list[dict] = []
        tensors: list[torch.Tensor] = []
        position = {inp: (0, 0)}
        side: dict = {}
        current = inp
        rank = len(input_shape) + 1
        self.shape_values: set = set()
        for n in g.node:
            op = n.op_type
            if op == "Shape":  # reads only the shape of a value
                self.shape_values.update(n.output)
                continue
            if op in SHAPE_OPS and all(not x or x in self.consts or x in self.shape_values for x in n.input):
                self.shape_values.update(n.output)  # shape arithmetic, for a Reshape's target
                continue
            attrs = {a.name: _attr(a) for a in n.attribute}
            data_in = [x for x in n.input if x and x not in self.consts and x not in self.shape_values]
            if op == "Add" and len(data_in) == 2:
                a, b = data_in
                other = b if a == current else a if b == current else None
                if other is None or not fold_branch_sum(entries, tensors, position, side, other):
                    raise self.refuse(f"node {n.name or op} adds two values that are not a residual x + f(x)")
                position[n.output[0]] = (len(entries), len(tensors))
                current = n.output[0]
                continue
            if len(data_in) != 1:
                raise self.refuse(f"node {n.name or op} ({op}) takes {len(data_in)} data inputs")
            src = data_in[0]
            entry, params, rank_out = self.node_entry(n, op, attrs, rank, producers)
            if src == current:
                if entry is not None:
                    entries.append(entry)
                    tensors += params
                rank = rank_out
                position[n.output[0]] = (len(entries), len(tensors))
                current = n.output[0]
            elif src in side or src in position:
                origin, s_entries, s_tensors = side.pop(src) if src in side else (src, [], [])
                side[n.output[0]] = (origin, s_entries + ([entry] if entry else []), s_tensors + params)
            else:
                raise self.refuse(f"node {n.name or op} ({op}) reads {src}, which is neither the layer chain nor a branch off it")
        if side:
            raise self.refuse(f"values {', '.join(side)} are computed and never added to the chain")
        if [o.name for o in g.output] != [current]:
            raise self.refuse("its output is not the end of its layer chain")
        spec = validate_spec({"input_shape": list(input_shape), "layers": entries})
        keys = list(build_sequential(spec["layers"]).state_dict().keys())
        floats = [k for k in keys if not k.endswith("num_batches_tracked")]
        if len(floats) != len(tensors):
            raise ArchitectureError(f"internal: {name(self.path)} gave {len(tensors)} weight tensors for {len(floats)} canonical ones.")
        return spec, dict(zip(floats, tensors))

    def w(self, key: str) -> torch.Tensor:
        if key not in self.inits:
            raise self.refuse(f"weight {key} is computed, not stored")
        return torch.as_tensor(np.array(self.inits[key], dtype=np.float32))

    def node_entry(self, n, op: str, attrs: dict, rank: int, producers: dict):
        """(spec entry or None for a no-op, its tensors in canonical order, the output's rank)."""
        if op in ("Identity", "Dropout"):
            return None, [], rank
        if op in ("Relu", "Abs"):
            return {"type": op.lower()}, [], rank
        if op == "LeakyRelu":
            return {"type": "leaky_relu", "negative_slope": float(attrs.get("alpha", 0.01))}, [], rank
        if op in ("Softmax", "LogSoftmax"):
            return {"type": "softmax" if op == "Softmax" else "log_softmax"}, [], rank
        if op == "Gemm":
            if attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0 or attrs.get("transA", 0):
                raise self.refuse(f"Gemm {n.name} scales or transposes its input")
            W = self.w(n.input[1])
            W = W if attrs.get("transB", 0) else W.T.contiguous()
            params = [W]
            bias = len(n.input) > 2 and bool(n.input[2])
            if bias:
                params.append(self.w(n.input[2]).reshape(-1))
            return {"type": "linear", "in_features": int(W.shape[1]), "out_features": int(W.shape[0]), "bias": bias}, params, 2
        if op == "MatMul":
            W = self.w(n.input[1]).T.contiguous()
            return {"type": "linear", "in_features": int(W.shape[1]), "out_features": int(W.shape[0]), "bias": False}, [W], 2
        if op == "Conv":
            if attrs.get("group", 1) != 1 or any(d != 1 for d in attrs.get("dilations", [1, 1])):
                raise self.refuse(f"Conv {n.name} has groups or dilation")
            pads = attrs.get("pads", [0, 0, 0, 0])
            if pads[:2] != pads[2:]:
                raise self.refuse(f"Conv {n.name} pads asymmetrically ({pads})")
            W = self.w(n.input[1])
            bias = len(n.input) > 2 and bool(n.input[2])
            entry = {
                "type": "conv2d",
                "in_channels": int(W.shape[1]),
                "out_channels": int(W.shape[0]),
                "kernel_size": [int(v) for v in W.shape[2:]],
                "stride": [int(v) for v in attrs.get("strides", [1, 1])],
                "padding": [int(v) for v in pads[:2]],
                "bias": bias,
            }
            return entry, [W] + ([self.w(n.input[2])] if bias else []), 4
        if op == "BatchNormalization":
            scale, b, mean, var = (self.w(k) for k in n.input[1:5])
            kind = "batchnorm2d" if rank == 4 else "batchnorm1d"
            return {"type": kind, "num_features": int(mean.shape[0]), "eps": float(attrs.get("epsilon", 1e-5))}, [scale, b, mean, var], rank
        if op in ("MaxPool", "AveragePool"):
            if any(attrs.get("pads", [0])) or attrs.get("ceil_mode", 0) or any(d != 1 for d in attrs.get("dilations", [1, 1])):
                raise self.refuse(f"{op} {n.name} pads, dilates or rounds up")
            k = [int(v) for v in attrs["kernel_shape"]]
            return {"type": "maxpool2d" if op == "MaxPool" else "avgpool2d", "kernel_size": k, "stride": [int(v) for v in attrs.get("strides", k)]}, [], 4
        if op == "GlobalAveragePool":
            return {"type": "adaptive_avgpool2d", "output_size": 1}, [], 4
        if op == "Flatten":
            if attrs.get("axis", 1) != 1:
                raise self.refuse(f"Flatten {n.name} keeps axes other than the batch")
            return {"type": "flatten"}, [], 2
        if op == "Reshape":
            shape = self.consts.get(n.input[1]) if len(n.input) > 1 else None
            if shape is not None and len(shape) == 2 and (int(shape[1]) == -1 or int(shape[0]) in (-1, 0, 1)):
                return {"type": "flatten"}, [], 2
            producer = producers.get(n.input[1]) if len(n.input) > 1 else None
            if producer is not None and producer.op_type == "Concat" and len(producer.input) == 2:  # x.view(x.size(0), -1)
                tail = self.consts.get(producer.input[1])
                if tail is not None and np.array_equal(np.asarray(tail).reshape(-1), [-1]):
                    return {"type": "flatten"}, [], 2
            raise self.refuse(f"Reshape {n.name} to {shape}")
        raise self.refuse(f"node {n.name or op} is {op}")


def _attr(a):
    from onnx import helper

    return helper.get_attribute_value(a)
