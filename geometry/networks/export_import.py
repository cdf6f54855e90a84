"""``torch.export`` archives (``.pt2``, written by ``torch.export.save``) as canonical networks, read
without running anything stored in them.

A ``.pt2`` is a zip archive holding the exported program as JSON (``models/*.json``: the ATen graph and
its signature) and each weight as raw bytes described in ``data/weights/model_weights_config.json``
(dtype, sizes, strides). ``torch.export.load`` would also unpickle the archive's sample inputs and any
pickled constants; this reader never calls it. It parses the JSON graph, maps each ATen call onto the
canonical layer list (through the same :class:`~geometry.networks.chain.ChainBuilder` as the torch.fx
and ONNX imports) and rebuilds the tensors from their bytes with numpy. Weights stored as pickles,
compiled (AOTInductor) packages and unknown ops are refused by name.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from geometry.errors import ArchitectureError, InputFileError
from geometry.safe_io import name, printable

# torch/_export/serde/schema.py ScalarType -> numpy dtype (floating point weights; LONG for step counters)
_DTYPES = {5: np.int64, 6: np.float16, 7: np.float32, 8: np.float64, 13: "bfloat16"}
_NO_OPS = {"alias", "clone", "contiguous", "dropout", "detach", "lift_fresh_copy"}
_ACTIVATIONS = {
    "relu": "relu",
    "relu_": "relu",
    "abs": "abs",
    "sigmoid": "sigmoid",
    "tanh": "tanh",
    "gelu": "gelu",
    "silu": "silu",
    "elu": "elu",
    "softplus": "softplus",
}


def is_export_archive(names: list[str]) -> bool:
    """Whether a zip's member names are those of a ``torch.export.save`` archive."""
    return any(n.split("/", 1)[-1] == "archive_format" for n in names) and any("/models/" in n and n.endswith(".json") for n in names)


def read_export(real: Path, path: Path, limit: int) -> tuple[dict, dict[str, torch.Tensor]]:
    """(canonical spec, its state dict) of the ``torch.export`` archive at ``real`` (``path``: its name)."""
    from geometry.safe_io import check_zip_members

    with check_zip_members(real, "exported program", limit) as z:
        names = z.namelist()
        if not is_export_archive(names):
            raise InputFileError(f"{name(path)} is not a torch.export archive (no archive_format and models/*.json); save it with torch.export.save.")
        if any(n.endswith((".so", ".cubin", ".wrapper.cpp")) for n in names):
            raise InputFileError(f"{name(path)} is a compiled AOTInductor package (it holds machine code); export with torch.export.save instead.")
        models = sorted(n for n in names if "/models/" in n and n.endswith(".json"))
        if len(models) != 1:
            raise ArchitectureError(f"{name(path)} holds {len(models)} exported programs; Spline Atlas reads archives with one.")
        prefix = models[0].split("/models/")[0] + "/"
        program = _json(z, models[0], path)
        config = _json(z, prefix + "data/weights/model_weights_config.json", path).get("config", {})
        constants = _json(z, prefix + "data/constants/model_constants_config.json", path).get("config", {})
        byteorder = z.read(prefix + "byteorder").decode("ascii", "replace").strip() if prefix + "byteorder" in names else "little"
        if byteorder != "little":
            raise InputFileError(f"{name(path)} was written on a {printable(byteorder, 20)}-endian machine; re-export it on this one.")
        weights = {key: _tensor(z, prefix + "data/weights/", key, meta, path) for key, meta in config.items()}
    return _Program(path, program, weights, constants).convert()


def _json(z: zipfile.ZipFile, member: str, path: Path) -> dict:
    try:
        data = json.loads(z.read(member))
    except KeyError:
        raise InputFileError(f"{name(path)} lacks {printable(member, 80)}; it is not a complete torch.export archive — re-save it.") from None
    except (ValueError, UnicodeDecodeError):
        raise InputFileError(f"{name(path)}: {printable(member, 80)} is not valid JSON; the archive is damaged — re-save it.") from None
    if not isinstance(data, dict):
        raise InputFileError(f"{name(path)}: {printable(member, 80)} is not a JSON object; the archive is damaged — re-save it.")
    return data


def _ints(values) -> list[int]:
    out = []
    for v in values:
        if not isinstance(v, dict) or not isinstance(v.get("as_int"), int):
            raise ArchitectureError(f"a tensor has a symbolic size ({printable(v, 60)}); export with fixed sizes.")
        out.append(v["as_int"])
    return out


def _tensor(z: zipfile.ZipFile, folder: str, key: str, meta: dict, path: Path) -> torch.Tensor:
    """One weight from its raw bytes (never a pickle), checked against its declared sizes and strides."""
    where = f"{name(path)}: weight {printable(key, 60)}"
    if meta.get("use_pickle"):
        raise InputFileError(f"{where} is stored as a pickle, which could run code; re-export its module with plain tensor weights.")
    tm = meta.get("tensor_meta") or {}
    dtype = _DTYPES.get(tm.get("dtype"))
    if dtype is None:
        raise ArchitectureError(f"{where} has dtype code {printable(tm.get('dtype'), 10)}, which Spline Atlas does not read (float16/32/64, bfloat16).")
    sizes, strides = _ints(tm.get("sizes", [])), _ints(tm.get("strides", []))
    offset = _ints([tm.get("storage_offset", {"as_int": 0})])[0]
    try:
        raw = z.read(folder + str(meta.get("path_name")))
    except KeyError:
        raise InputFileError(f"{where} names the missing member {printable(meta.get('path_name'), 60)}; the archive is incomplete — re-save it.") from None
    if dtype == "bfloat16":
        flat = torch.frombuffer(bytearray(raw), dtype=torch.bfloat16) if raw else torch.zeros(0, dtype=torch.bfloat16)
    else:
        flat = torch.from_numpy(np.frombuffer(raw, dtype=dtype).copy())
    reach = offset + sum((s - 1) * st for s, st in zip(sizes, strides) if s > 0)
    if len(sizes) != len(strides) or any(s < 0 or st < 0 for s, st in zip(sizes, strides)) or (all(sizes) and reach >= flat.numel()):
        raise InputFileError(f"{where}: its sizes {sizes} and strides {strides} do not fit its {len(raw):,} bytes; the archive is damaged.")
    return flat.as_strided(sizes, strides, offset).clone() if all(sizes) else torch.zeros(sizes, dtype=flat.dtype)


def _per_axis(value, dims: int) -> tuple[int, ...]:
    """A convolution setting as one int per spatial axis (ATen writes ``[1]`` for "1 on every axis")."""
    values = [int(x) for x in value] if isinstance(value, list) else [int(value)]
    return tuple(values * dims if len(values) == 1 else values)


class _Program:
    """The JSON graph of one exported program, walked into the canonical form."""

    def __init__(self, path: Path, program: dict, weights: dict[str, torch.Tensor], constants: dict):
        self.path = path
        gm = program.get("graph_module") or {}
        self.graph = gm.get("graph") or {}
        self.signature = gm.get("signature") or {}
        self.weights = weights
        self.constants = constants

    def refuse(self, what: str) -> ArchitectureError:
        return ArchitectureError(f"{name(self.path)}: {what}, which the canonical form cannot express (see README: 'Opening networks').")

    def convert(self) -> tuple[dict, dict[str, torch.Tensor]]:
        from geometry.networks.chain import ChainBuilder
        from geometry.networks.spec import build_sequential, validate_spec

        self.bound: dict[str, torch.Tensor] = {}  # graph names of parameters and buffers -> their tensors
        user_inputs = []
        for spec in self.signature.get("input_specs", []):
            kind, body = next(iter(spec.items()))
            if kind in ("parameter", "buffer"):
                key = body.get("parameter_name") or body.get("buffer_name")
                if key not in self.weights:
                    raise InputFileError(f"{name(self.path)}: {kind} {printable(key, 60)} has no stored weight; the archive is incomplete — re-save it.")
                self.bound[body["arg"]["name"]] = self.weights[key]
            elif kind == "user_input":
                user_inputs.append(body["arg"]["as_tensor"]["name"])
            else:
                raise self.refuse(f"the program takes a {kind.replace('_', ' ')} input")
        outputs = [s.get("user_output", {}).get("arg", {}).get("as_tensor", {}).get("name") for s in self.signature.get("output_specs", [])]
        if len(user_inputs) != 1 or len(outputs) != 1 or outputs[0] is None:
            raise self.refuse(f"the program takes {len(user_inputs)} inputs and returns {len(outputs)} values (Spline Atlas reads one tensor in, one out)")
        meta = (self.graph.get("tensor_values") or {}).get(user_inputs[0]) or {}
        sizes = meta.get("sizes", [])
        if len(sizes) < 2:
            raise self.refuse(f"the input has shape {printable(sizes, 60)}; export with a batch axis and the feature sizes")
        input_shape = _ints(sizes[1:])  # the batch size may be symbolic (dynamic_shapes)
        self.batch = sizes[0].get("as_int") if isinstance(sizes[0], dict) else None
        self.batch_symbols: set[str] = set()  # sym_size(x, 0): the batch size, read for view(x.size(0), -1)
        shape = [0, *input_shape]
        chain = ChainBuilder(user_inputs[0], self.refuse)
        self.rank = {user_inputs[0]: len(shape)}
        for node in self.graph.get("nodes", []):
            self.node(chain, node)
        entries, tensors = chain.finish(outputs[0])
        spec = validate_spec({"input_shape": input_shape, "layers": entries})
        keys = [k for k in build_sequential(spec["layers"]).state_dict() if not k.endswith("num_batches_tracked")]
        if len(keys) != len(tensors):
            raise ArchitectureError(f"internal: {name(self.path)} gave {len(tensors)} weight tensors for {len(keys)} canonical ones.")
        return spec, {k: t.float() if t.is_floating_point() else t for k, t in zip(keys, tensors)}

    # -- one node ------------------------------------------------------------------------------------
    def node(self, chain, node: dict) -> None:
        target = str(node.get("target", ""))
        op = target.removeprefix("torch.ops.aten.").split(".")[0]
        args = {i["name"]: i["arg"] for i in node.get("inputs", [])}
        outs = node.get("outputs", [])
        if target == "torch.ops.aten.sym_size.int" and self.value(args.get("dim")) == 0 and len(outs) == 1 and "as_sym_int" in outs[0]:
            self.batch_symbols.add(outs[0]["as_sym_int"].get("as_name"))
            return
        if len(outs) != 1 or "as_tensor" not in outs[0] or not target.startswith("torch.ops.aten."):
            raise self.refuse(f"node {printable(node.get('name'), 40)} calls {printable(target, 60)}")
        out = outs[0]["as_tensor"]["name"]
        what = f"node {printable(node.get('name'), 40)} ({op})"
        if op in ("add", "add_") and "as_tensor" in args.get("other", {}):
            if self.value(args.get("alpha"), 1) != 1:
                raise self.refuse(f"{what} adds with a factor")
            chain.add(out, args["self"]["as_tensor"]["name"], args["other"]["as_tensor"]["name"], what)
            self.rank[out] = self.rank.get(chain.current, 2)
            return
        if op == "cat":
            parts = [t["name"] for t in args["tensors"]["as_tensors"]]
            dim = self.value(args.get("dim"), 0)
            rank = self.rank.get(parts[0], 2)
            if dim not in (1, 1 - rank):
                raise self.refuse(f"{what} concatenates along dim {dim}, not the channel axis")
            chain.concat(out, parts, what)
            self.rank[out] = rank
            return
        src = (args.get("self") or args.get("input") or {}).get("as_tensor", {}).get("name")
        if src is None:
            raise self.refuse(f"{what} has no tensor input")
        entry, tensors, rank = self.entry(op, args, self.rank.get(src, 2), what)
        self.rank[out] = rank
        chain.step(out, src, [entry] if entry is not None else [], tensors, f"{what} reads")

    def value(self, arg: dict | None, default=None):
        """A constant argument (ints, floats, bools, none) or ``default`` when the call omits it."""
        if arg is None:
            return default
        kind, v = next(iter(arg.items()))
        if kind == "as_none":
            return None
        if kind in ("as_int", "as_float", "as_bool", "as_ints", "as_floats", "as_bools", "as_string"):
            return v
        if kind == "as_scalar_type":
            return v
        raise self.refuse(f"an argument is {kind.removeprefix('as_')} ({printable(v, 40)}), not a constant")

    def tensor(self, arg: dict | None, what: str) -> torch.Tensor | None:
        if arg is None or "as_none" in arg:
            return None
        key = arg.get("as_tensor", {}).get("name")
        if key not in self.bound:
            raise self.refuse(f"{what} takes a computed tensor ({printable(key, 40)}) where a weight belongs")
        return self.bound[key]

    def entry(self, op: str, args: dict, rank: int, what: str):
        """(spec entry or None for a no-op, its tensors in canonical order, the output's rank)."""
        from geometry.networks.spec import _conv_entry, _pool_entry

        v = lambda key, default=None: self.value(args.get(key), default)  # noqa: E731
        if op in _NO_OPS:
            return None, [], rank
        if op in _ACTIVATIONS:
            return {"type": _ACTIVATIONS[op]}, [], rank
        if op in ("leaky_relu", "leaky_relu_"):
            return {"type": "leaky_relu", "negative_slope": float(v("negative_slope", 0.01))}, [], rank
        if op in ("softmax", "_softmax", "log_softmax", "_log_softmax"):
            return {"type": "log_softmax" if "log" in op else "softmax"}, [], rank
        if op == "linear":
            W, b = self.tensor(args.get("weight"), what), self.tensor(args.get("bias"), what)
            return (
                {"type": "linear", "in_features": int(W.shape[1]), "out_features": int(W.shape[0]), "bias": b is not None},
                [W] + ([b] if b is not None else []),
                2,
            )
        if op in ("conv1d", "conv2d", "conv_transpose2d"):
            W, b = self.tensor(args.get("weight"), what), self.tensor(args.get("bias"), what)
            groups, dims = int(v("groups", 1)), W.ndim - 2
            one = lambda key, default: _per_axis(v(key, default), dims)  # noqa: E731
            if isinstance(v("padding", 0), str):
                raise self.refuse(f"{what} pads {v('padding')!r}")
            with torch.device("meta"):
                if op == "conv_transpose2d":
                    module = nn.ConvTranspose2d(
                        W.shape[0],
                        W.shape[1] * groups,
                        W.shape[2:],
                        one("stride", 1),
                        one("padding", 0),
                        one("output_padding", 0),
                        groups,
                        b is not None,
                        one("dilation", 1),
                    )
                else:
                    cls = nn.Conv2d if op == "conv2d" else nn.Conv1d
                    module = cls(
                        W.shape[1] * groups, W.shape[0], tuple(W.shape[2:]), one("stride", 1), one("padding", 0), one("dilation", 1), groups, b is not None
                    )
            return _conv_entry(module), [W] + ([b] if b is not None else []), dims + 2
        if op == "batch_norm":
            if v("training", False):
                raise self.refuse(f"{what} normalises in training mode (export the model after model.eval())")
            W, b = self.tensor(args.get("weight"), what), self.tensor(args.get("bias"), what)
            mean, var = self.tensor(args.get("running_mean"), what), self.tensor(args.get("running_var"), what)
            entry = {"type": "batchnorm2d" if rank == 4 else "batchnorm1d", "num_features": int(mean.shape[0]), "eps": float(v("eps", 1e-5))}
            if W is None:
                entry["affine"] = False
            return entry, ([W, b] if W is not None else []) + [mean, var], rank
        if op in ("max_pool2d", "avg_pool2d"):
            stride = v("stride", []) or None
            with torch.device("meta"):
                if op == "max_pool2d":
                    module = nn.MaxPool2d(v("kernel_size"), stride, v("padding", 0), v("dilation", 1), ceil_mode=v("ceil_mode", False))
                else:
                    module = nn.AvgPool2d(v("kernel_size"), stride, v("padding", 0), v("ceil_mode", False), v("count_include_pad", True), v("divisor_override"))
            return _pool_entry(module), [], 4
        if op == "adaptive_avg_pool2d":
            return {"type": "adaptive_avgpool2d", "output_size": [int(s) for s in v("output_size")]}, [], 4
        if op == "flatten":
            if v("start_dim", 0) != 1 or v("end_dim", -1) not in (-1, rank - 1):
                raise self.refuse(f"{what} flattens axes {v('start_dim', 0)}..{v('end_dim', -1)} (Spline Atlas flattens all but the batch)")
            return {"type": "flatten"}, [], 2
        if op in ("view", "reshape", "_unsafe_view"):
            arg = args.get("size") or args.get("shape") or {}
            size = (
                ["batch" if d.get("as_name") in self.batch_symbols else d.get("as_int") for d in arg["as_sym_ints"]]
                if "as_sym_ints" in arg
                else self.value(arg)
            )
            if isinstance(size, list) and len(size) == 2 and size[1] == -1 and (size[0] == "batch" or (self.batch is not None and size[0] in (self.batch, -1))):
                return {"type": "flatten"}, [], 2
            raise self.refuse(f"{what} reshapes to {size} (Spline Atlas reads view(x.size(0), -1), a flatten)")
        if op in ("mul", "div") and any(k in args.get("other", {}) for k in ("as_float", "as_int")):
            factor = float(v("other"))
            if op == "div" and factor == 0:
                raise self.refuse(f"{what} divides by zero")
            return {"type": "scale", "factor": 1.0 / factor if op == "div" else factor}, [], rank
        if op in ("constant_pad_nd", "pad"):
            pad = v("pad")
            if v("value", 0) or (op == "pad" and v("mode", "constant") != "constant") or not isinstance(pad, list) or len(pad) != 4:
                raise self.refuse(f"{what} is not a zero padding of the two spatial axes")
            return {"type": "zeropad2d", "padding": [int(p) for p in pad]}, [], rank
        raise self.refuse(f"{what} is aten.{op}")
