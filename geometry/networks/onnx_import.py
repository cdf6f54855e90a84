"""ONNX models as canonical networks: the graph is read with the ``onnx`` package (a protobuf: reading it
runs no code), its initializers are the weights, and its nodes are mapped onto the canonical layer list.

Supported nodes: Gemm (and MatMul + Add), Conv (1-d and 2-d), ConvTranspose (2-d), BatchNormalization,
Relu, LeakyRelu, Abs, MaxPool and AveragePool (symmetric padding, dilation, ceil_mode), GlobalAveragePool,
Pad (zeros), Mul/Div by a number, Flatten, Reshape to (N, -1), Identity, Dropout, Add as a residual
``x + f(x)`` or ``shortcut(x) + f(x)`` and Concat along the channel axis of branches leaving the chain at
one place (DenseNet, U-net skips) -- as the torch.fx conversion. A trailing Softmax/LogSoftmax is dropped, as everywhere. Any other
node is refused naming its op type; models with external data files are refused (the weights must be
in the file).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

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
        from geometry.networks.chain import ChainBuilder

        producers = {o: n for n in g.node for o in n.output}
        chain = ChainBuilder(inp, self.refuse)
        rank = len(input_shape) + 1
        self.shape_values: set = set()
        for n in g.node:
            op = n.op_type
            what = f"node {n.name or op} ({op})"
            if op == "Shape":  # reads only the shape of a value
                self.shape_values.update(n.output)
                continue
            if op in SHAPE_OPS and all(not x or x in self.consts or x in self.shape_values for x in n.input):
                self.shape_values.update(n.output)  # shape arithmetic, for a Reshape's target
                continue
            attrs = {a.name: _attr(a) for a in n.attribute}
            data_in = [x for x in n.input if x and x not in self.consts and x not in self.shape_values]
            if op == "Add" and len(data_in) == 2:
                chain.add(n.output[0], *data_in, what)
                continue
            if op == "Concat" and data_in:
                if attrs.get("axis") not in (1, 1 - rank):
                    raise self.refuse(f"{what} concatenates along axis {attrs.get('axis')}, not the channel axis")
                chain.concat(n.output[0], data_in, what)
                continue
            if len(data_in) != 1:
                raise self.refuse(f"{what} takes {len(data_in)} data inputs")
            entry, params, rank_out = self.node_entry(n, op, attrs, rank, producers)
            if chain.is_current(data_in[0]):
                rank = rank_out
            chain.step(n.output[0], data_in[0], [entry] if entry is not None else [], params, f"{what} reads")
        outputs = [o.name for o in g.output]
        if len(outputs) != 1:
            raise self.refuse(f"it has {len(outputs)} outputs")
        entries, tensors = chain.finish(outputs[0])
        from geometry.networks.spec import build_sequential, validate_spec

        spec = validate_spec({"input_shape": list(input_shape), "layers": entries})
        keys = list(build_sequential(spec["layers"]).state_dict().keys())
        floats = [k for k in keys if not k.endswith("num_batches_tracked")]
        if len(floats) != len(tensors):
            raise ArchitectureError(f"internal: {name(self.path)} gave {len(tensors)} weight tensors for {len(floats)} canonical ones.")
        return spec, dict(zip(floats, tensors))

    def symmetric_pads(self, n, attrs: dict, dims: int) -> list[int]:
        """ONNX pads ``[begin..., end...]`` as torch's symmetric padding, or refused."""
        if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            raise self.refuse(f"{n.op_type} {n.name} pads with auto_pad")
        pads = [int(v) for v in attrs.get("pads", [0] * (2 * dims))]
        if pads[:dims] != pads[dims:]:
            raise self.refuse(f"{n.op_type} {n.name} pads asymmetrically ({pads})")
        return pads[:dims]

    def w(self, key: str) -> torch.Tensor:
        if key not in self.inits:
            raise self.refuse(f"weight {key} is computed, not stored")
        return torch.as_tensor(np.array(self.inits[key], dtype=np.float32))

    def node_entry(self, n, op: str, attrs: dict, rank: int, producers: dict):
        """(spec entry or None for a no-op, its tensors in canonical order, the output's rank)."""
        from geometry.networks.spec import _conv_entry, _pool_entry

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
        if op in ("Conv", "ConvTranspose"):
            W = self.w(n.input[1])
            dims = W.ndim - 2
            if dims not in (1, 2) or (op == "ConvTranspose" and dims != 2) or "output_shape" in attrs:
                raise self.refuse(f"{op} {n.name} is {dims}-dimensional{' with an output_shape' if 'output_shape' in attrs else ''}")
            groups = int(attrs.get("group", 1))
            bias = len(n.input) > 2 and bool(n.input[2])
            kernel, pads = tuple(int(v) for v in W.shape[2:]), tuple(self.symmetric_pads(n, attrs, dims))
            strides = tuple(int(v) for v in attrs.get("strides", [1] * dims))
            dilations = tuple(int(v) for v in attrs.get("dilations", [1] * dims))
            with torch.device("meta"):  # the settings only, read by the one conv reader: nothing is allocated
                if op == "ConvTranspose":
                    out_pad = tuple(int(v) for v in attrs.get("output_padding", [0, 0]))
                    module = nn.ConvTranspose2d(W.shape[0], W.shape[1] * groups, kernel, strides, pads, out_pad, groups, bias, dilations)
                else:
                    cls = nn.Conv2d if dims == 2 else nn.Conv1d
                    module = cls(W.shape[1] * groups, W.shape[0], kernel, strides, pads, dilations, groups, bias)
            return _conv_entry(module), [W] + ([self.w(n.input[2])] if bias else []), dims + 2
        if op == "BatchNormalization":
            scale, b, mean, var = (self.w(k) for k in n.input[1:5])
            kind = "batchnorm2d" if rank == 4 else "batchnorm1d"
            return {"type": kind, "num_features": int(mean.shape[0]), "eps": float(attrs.get("epsilon", 1e-5))}, [scale, b, mean, var], rank
        if op in ("MaxPool", "AveragePool"):
            k = [int(v) for v in attrs["kernel_shape"]]
            if len(k) != 2 or attrs.get("storage_order", 0) or attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
                raise self.refuse(f"{op} {n.name} is not a plain 2-d pooling")
            stride, pads, ceil = [int(v) for v in attrs.get("strides", k)], self.symmetric_pads(n, attrs, 2), bool(attrs.get("ceil_mode", 0))
            if op == "MaxPool":
                module = nn.MaxPool2d(k, stride, pads, [int(v) for v in attrs.get("dilations", [1, 1])], ceil_mode=ceil)
            else:  # ONNX's count_include_pad defaults to 0, torch's to True
                module = nn.AvgPool2d(k, stride, pads, ceil, bool(attrs.get("count_include_pad", 0)))
            return _pool_entry(module), [], 4
        if op == "Pad":
            pads = self.consts.get(n.input[1]) if len(n.input) > 1 else attrs.get("pads")
            value = self.consts.get(n.input[2]) if len(n.input) > 2 and n.input[2] else 0
            mode = attrs.get("mode", b"constant")
            if (
                pads is None
                or len(pads) != 8
                or any(int(v) for v in list(pads[:2]) + list(pads[4:6]))
                or np.any(value)
                or mode not in (b"constant", "constant")
            ):
                raise self.refuse(f"Pad {n.name} is not a zero padding of the two spatial axes")
            top, left, bottom, right = int(pads[2]), int(pads[3]), int(pads[6]), int(pads[7])
            return {"type": "zeropad2d", "padding": [left, right, top, bottom]}, [], rank
        if op in ("Mul", "Div"):
            c = [x for x in n.input if x in self.consts]
            value = np.asarray(self.consts[c[0]]) if len(c) == 1 else np.zeros(0)
            if value.size != 1 or (op == "Div" and (n.input[1] != c[0] or float(value.reshape(())) == 0)):
                raise self.refuse(f"{op} {n.name} does not {'multiply' if op == 'Mul' else 'divide'} the data by one non-zero number")
            factor = float(value.reshape(()))
            factor = 1.0 / factor if op == "Div" else factor
            return {"type": "scale", "factor": factor}, [], rank
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
