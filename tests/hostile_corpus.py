"""A corpus of hostile and malformed inputs, built from scratch in a folder (nothing is shipped).

Each :class:`Case` is a file or folder plus the CLI command lines to run it through. Every case is
something Spline Atlas must refuse in one line with exit code 2: code-execution attempts (each leaves
a marker file or prints a marker if it ever runs), files outside their folder, special files, bombs,
absurd sizes, wrong types, and hostile text. ``tests/test_hostile_inputs.py`` runs them.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import socket
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

PRINTED_MARKER = "PWNED-MARKER"

SPEC = {
    "input_shape": [2],
    "layers": [{"type": "linear", "in_features": 2, "out_features": 4}, {"type": "relu"}, {"type": "linear", "in_features": 4, "out_features": 3}],
}


@dataclass
class Case:
    name: str
    target: str  # the path the commands open
    commands: list[list[str]] = field(default_factory=list)
    app_loader: str = "run"  # "run": app.jobs.open_run_bundle; "session": read_session; "": none
    expect: str | None = None  # a phrase the error line must contain (why it was refused)


def _state(seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    m = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 3))
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


class _System:
    """Unpickling this calls os.system with ``command``."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class _Eval:
    def __init__(self, code: str):
        self.code = code

    def __reduce__(self):
        import builtins

        return (builtins.exec, (self.code,))


def _touch(marker_dir: Path, name: str) -> str:
    return f"touch {marker_dir / name}"


def _exec_touch(marker_dir: Path, name: str) -> str:
    return f"open({str(marker_dir / name)!r}, 'w').close(); print({PRINTED_MARKER!r})"


class _Builder:
    def __init__(self, root: Path, marker_dir: Path):
        self.root, self.markers = root, marker_dir
        self.cases: list[Case] = []

    # -- helpers ---------------------------------------------------------------------------------
    def folder(self, name: str) -> Path:
        p = self.root / name
        p.mkdir(parents=True, exist_ok=True)
        return p

    def file_case(self, name: str, path: Path) -> None:
        t = str(path)
        self.cases.append(Case(name, t, [["info", t], ["tessellate", t, "--summary"], ["deepfool", t, "--points", "0"]]))

    def spec_beside(self, folder: Path, spec=SPEC) -> None:
        (folder / "architecture.json").write_text(json.dumps(spec))

    def checkpoint(self, name: str, obj, legacy: bool = False, spec: bool = True) -> None:
        d = self.folder(name)
        p = d / "model.pt"
        torch.save(obj, p, _use_new_zipfile_serialization=not legacy)
        if spec:
            self.spec_beside(d)
        self.file_case(name, p)

    def raw_file(self, name: str, data: bytes, filename: str = "model.pt", spec: bool = True) -> None:
        d = self.folder(name)
        (d / filename).write_bytes(data)
        if spec:
            self.spec_beside(d)
        self.file_case(name, d / filename)

    def run_json(self, name: str, manifest, raw: str | None = None, checkpoint: bool = True) -> Path:
        d = self.folder(name)
        if checkpoint:
            torch.save(_state(), d / "epoch_0000.pt")
        (d / "run.json").write_text(raw if raw is not None else json.dumps(manifest))
        self.file_case(name, d)
        return d

    def manifest(self, **changes) -> dict:
        m = {"format": "splineatlas-run/1", "name": "r", "architecture": SPEC, "checkpoints": [{"path": "epoch_0000.pt", "epoch": 0}]}
        m.update(changes)
        return m

    def arch_case(self, name: str, spec_text: str) -> None:
        d = self.folder(name)
        torch.save(_state(), d / "model.pt")
        (d / "architecture.json").write_text(spec_text)
        self.file_case(name, d / "model.pt")

    def npz_run(self, name: str, arrays: dict | None = None, raw: bytes | None = None) -> None:
        d = self.folder(name)
        torch.save(_state(), d / "epoch_0000.pt")
        if raw is not None:
            (d / "data.npz").write_bytes(raw)
        else:
            np.savez(d / "data.npz", **arrays)
        (d / "run.json").write_text(json.dumps(self.manifest(dataset={"npz": "data.npz"})))
        t = str(d)
        # info reads the dataset (accuracy); tessellate --through needs it
        self.cases.append(Case(name, t, [["info", t], ["tessellate", t, "--through", "0,1,2"], ["deepfool", t, "--points", "0"]]))

    def session(self, name: str, data, raw: str | None = None) -> None:
        d = self.folder(name)
        p = d / "session.json"
        p.write_text(raw if raw is not None else json.dumps(data))
        self.cases.append(Case(name, str(p), [["session", "show", str(p)]], app_loader="session"))

    def cli(self, name: str, argv: list[str], expect: str) -> None:
        self.cases.append(Case(name, "", [argv], app_loader="", expect=expect))


def _zip_with_declared_sizes(members: dict[str, bytes], declared: int) -> bytes:
    """A zip whose central directory claims each member inflates to ``declared`` bytes (a zip bomb's header)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for n, data in members.items():
            z.writestr(n, data)
    raw = bytearray(buf.getvalue())
    pos = 0
    while (pos := raw.find(b"PK\x01\x02", pos)) >= 0:  # central directory entries
        struct.pack_into("<I", raw, pos + 24, declared)
        pos += 4
    pos = 0
    while (pos := raw.find(b"PK\x03\x04", pos)) >= 0:  # local headers
        struct.pack_into("<I", raw, pos + 22, declared)
        pos += 4
    return bytes(raw)


def _npy_header_bomb(member: str = "X", other: str = "y") -> bytes:
    """An .npz whose ``member``.npy header declares 2 x 10^10 float64 values and holds 16 bytes."""
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': (10000000000, 2), }"
    header += " " * (63 - (len(header) + 10) % 64) + "\n"
    npy = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + b"\x00" * 16
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(f"{member}.npy", npy)
        ybuf = io.BytesIO()
        np.save(ybuf, np.zeros(3, dtype=np.int64))
        z.writestr(f"{other}.npy", ybuf.getvalue())
    return buf.getvalue()


def _torchscript_with_setstate(path: Path) -> None:
    """A scripted module whose __setstate__ prints the marker: torch.jit.load runs it."""
    from typing import Tuple

    class Evil(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.randn(2, 3))

        def forward(self, x):
            return x @ self.weight

        @torch.jit.export
        def __getstate__(self) -> Tuple[torch.Tensor, bool]:
            return (self.weight, self.training)

        @torch.jit.export
        def __setstate__(self, state: Tuple[torch.Tensor, bool]) -> None:
            print("PWNED-MARKER")
            self.weight = state[0]
            self.training = state[1]

    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.script(Evil()).save(str(path))


def _stack_global_pickle(module: str, name: str, arg: str) -> bytes:
    """A protocol-4 pickle that builds ``module.name(arg)`` with STACK_GLOBAL (no GLOBAL opcode to spot)."""

    def s(x: str) -> bytes:
        b = x.encode()
        return b"\x8c" + bytes([len(b)]) + b

    return b"\x80\x04" + s(module) + s(name) + b"\x93" + s(arg) + b"\x85R."


def build_corpus(root: Path, marker_dir: Path, valid_run: Path) -> list[Case]:
    """Write the corpus under ``root``; payloads that ever run leave files in ``marker_dir``.
    ``valid_run``: a small valid run (for the CLI-argument cases)."""
    b = _Builder(root, marker_dir)
    m = marker_dir
    good = _state()

    # -- code execution ----------------------------------------------------------------------------
    b.checkpoint("pickle_system", {"state_dict": good, "x": _System(_touch(m, "pickle_system"))})
    b.checkpoint("pickle_system_legacy", {"state_dict": good, "x": _System(_touch(m, "legacy"))}, legacy=True)
    b.checkpoint("pickle_exec", {"state_dict": good, "x": _Eval(_exec_touch(m, "pickle_exec"))})
    b.checkpoint("pickle_exec_legacy", {"state_dict": good, "x": _Eval(_exec_touch(m, "exec_legacy"))}, legacy=True)
    b.checkpoint("pickle_top_level_system", _System(_touch(m, "top")))
    b.checkpoint("pickle_in_tensor_list", {"state_dict": good, "hooks": [_System(_touch(m, "list"))]})
    b.checkpoint("full_module_pickle", nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 3)))
    raw_pickle = _stack_global_pickle("os", "system", _touch(m, "stack_global"))
    b.raw_file("raw_stack_global_pickle", raw_pickle)
    b.raw_file("raw_inst_opcode", b"\x80\x02(cos\nsystem\nS'" + _touch(m, "inst").encode() + b"'\ni__main__\nX\n.")
    b.raw_file("raw_global_eval", b"\x80\x02cbuiltins\neval\nX\x0b\x00\x00\x00print('hi')\x85R.")
    b.raw_file("raw_ext_opcode", b"\x80\x02\x82\x01)R.")
    b.raw_file("raw_getattr_chain", b"\x80\x02cbuiltins\ngetattr\ncos\nsystem\n\x85R.")
    b.raw_file("raw_torch_load_global", b"\x80\x02ctorch\nload\nX\x04\x00\x00\x00/x.p\x85R.")
    # a state dict pickle inside a zip whose data.pkl is replaced by a payload
    buf = io.BytesIO()
    torch.save(good, buf)
    zin = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename.endswith("data.pkl"):
                data = pickle.dumps(_System(_touch(m, "zip_datapkl")), protocol=2)
            z.writestr(info, data)
    b.raw_file("zip_datapkl_payload", out.getvalue())
    d = b.folder("torchscript_setstate")
    _torchscript_with_setstate(d / "model.pt")
    b.file_case("torchscript_setstate", d / "model.pt")
    d = b.folder("torchscript_setstate_with_sidecar")
    _torchscript_with_setstate(d / "model.pt")
    b.spec_beside(d, {"input_shape": [2], "layers": [{"type": "linear", "in_features": 2, "out_features": 3}]})
    b.file_case("torchscript_setstate_with_sidecar", d / "model.pt")
    d = b.folder("torchscript_in_run_folder")
    _torchscript_with_setstate(d / "epoch_0000.pt")
    _torchscript_with_setstate(d / "epoch_0001.pt")
    b.file_case("torchscript_in_run_folder", d)
    # polyglot: a legacy pickle head with a TorchScript zip appended
    ts = (root / "torchscript_setstate" / "model.pt").read_bytes()
    b.raw_file("polyglot_pickle_then_zip", pickle.dumps(_System(_touch(m, "polyglot")), protocol=2) + ts)
    # a legacy tar-format checkpoint
    import tarfile

    tbuf = io.BytesIO()
    with tarfile.open(fileobj=tbuf, mode="w") as tar:
        for n in ("sys_info", "pickle", "storages", "tensors"):
            data = pickle.dumps(_System(_touch(m, "tar_" + n)), protocol=2)
            info = tarfile.TarInfo(n)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    b.raw_file("legacy_tar_format", tbuf.getvalue())

    # -- not checkpoints at all ----------------------------------------------------------------------
    b.raw_file("readme_as_checkpoint", b"# Spline Atlas\nThis is a README, not a checkpoint.\n")
    b.raw_file("random_bytes", bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)))
    b.raw_file("json_as_checkpoint", json.dumps(SPEC).encode())
    b.raw_file("hdf5_header", b"\x89HDF\r\n\x1a\n" + b"\x00" * 512, "model.h5")
    nbuf = io.BytesIO()
    np.save(nbuf, np.zeros(4))
    b.raw_file("npy_as_checkpoint", nbuf.getvalue(), "model.npy")
    zbuf = io.BytesIO()
    np.savez(zbuf, X=np.zeros((3, 2)))
    b.raw_file("npz_named_pt", zbuf.getvalue())
    b.raw_file("onnx_bytes", b"\x08\x07\x12\x07pytorch" + b"\x00" * 64, "model.onnx")
    b.raw_file("empty_file", b"")
    full = io.BytesIO()
    torch.save({"state_dict": good, "arch": SPEC}, full)
    b.raw_file("truncated_checkpoint", full.getvalue()[: len(full.getvalue()) // 2])
    b.raw_file("truncated_legacy", pickle.dumps({"a": 1}, protocol=2)[:5])
    b.raw_file("zip_garbage_datapkl", _zip_with_declared_sizes({"archive/data.pkl": b"\x80\x02garbage"}, 20))
    b.raw_file(
        "zip_bomb_declared_sizes", _zip_with_declared_sizes({f"archive/data/{i}": b"\x00" * 1000 for i in range(4)} | {"archive/data.pkl": b"x"}, 0xF0000000)
    )
    b.raw_file("safetensors_garbage", b"\xff" * 64, "model.safetensors")
    b.raw_file("safetensors_huge_header", struct.pack("<Q", 10**15) + b"{}", "model.safetensors")
    b.raw_file("safetensors_bad_json", struct.pack("<Q", 5) + b"{x: 1", "model.safetensors")
    b.raw_file("text_with_ansi", b"\x1b[31mred\x1b[0m\n")
    b.raw_file("nul_bytes", b"\x00" * 1024)

    # -- tensors that are not dense real weights ------------------------------------------------------
    b.checkpoint("nan_weights", {k: torch.full_like(v, float("nan")) for k, v in good.items()})
    b.checkpoint("inf_weights", {k: torch.full_like(v, float("inf")) for k, v in good.items()})
    b.checkpoint("float64_overflow", {k: torch.full_like(v, 1e300, dtype=torch.float64) for k, v in good.items()})
    b.checkpoint("complex_weights", {k: v.to(torch.complex64) for k, v in good.items()})
    b.checkpoint("integer_weights", {k: v.to(torch.int64) for k, v in good.items()})
    b.checkpoint("bool_weights", {k: v > 0 for k, v in good.items()})
    b.checkpoint("fp8_weights", {k: v.to(torch.float8_e4m3fn) for k, v in good.items()})
    b.checkpoint("sparse_weights", {k: v.to_sparse() for k, v in good.items()})
    b.checkpoint("quantized_weights", {k: torch.quantize_per_tensor(v, 0.1, 0, torch.qint8) for k, v in good.items()})
    b.checkpoint("meta_weights", {k: torch.empty(v.shape, device="meta") for k, v in good.items()})
    b.checkpoint("int_keys", {i: v for i, v in enumerate(good.values())})
    b.checkpoint("ansi_key", {"\x1b[2J\x1b[31m0.weight": good["0.weight"], **good})
    b.checkpoint("huge_key", {"k" * 200_000: good["0.weight"], **good})
    b.checkpoint("non_tensor_values", {"0.weight": [1, 2], "0.bias": "x"})
    b.checkpoint("wrong_shapes", {k: torch.zeros(7, 7) for k in good})
    b.checkpoint("missing_keys", {"0.weight": good["0.weight"]})
    b.checkpoint("no_state_dict", {"optimizer": {"lr": 0.1}, "epoch": 3})
    b.checkpoint("list_not_dict", [good["0.weight"]])
    b.checkpoint("nested_too_deep", {"state_dict": {"state_dict": {"state_dict": 1}}})
    b.checkpoint("epoch_nan_meta", {"state_dict": good, "arch": SPEC, "epoch": float("nan")}, spec=False)
    b.checkpoint("epoch_huge_meta", {"state_dict": good, "arch": SPEC, "epoch": 10**30}, spec=False)
    b.checkpoint("no_architecture", good, spec=False)
    b.checkpoint("embedded_bad_arch", {"state_dict": good, "arch": {"input_shape": "two", "layers": []}}, spec=False)
    b.checkpoint(
        "embedded_arch_huge",
        {"state_dict": good, "arch": {"input_shape": [2], "layers": [{"type": "linear", "in_features": 2, "out_features": 10**8}]}},
        spec=False,
    )

    # -- architecture.json beside a valid state dict ---------------------------------------------------
    lin = lambda i, o: {"type": "linear", "in_features": i, "out_features": o}  # noqa: E731
    specs = {
        "arch_num_classes_1e9": {**SPEC, "num_classes": 1_000_000_000},
        "arch_num_classes_float": {**SPEC, "num_classes": 3.5},
        "arch_num_classes_mismatch": {**SPEC, "num_classes": 7},
        "arch_string_int": {"input_shape": [2], "layers": [{"type": "linear", "in_features": "2", "out_features": 4}]},
        "arch_bool_int": {"input_shape": [2], "layers": [{"type": "linear", "in_features": True, "out_features": 4}]},
        "arch_float_int": {"input_shape": [2], "layers": [{"type": "linear", "in_features": 2.0, "out_features": 4}]},
        "arch_negative": {"input_shape": [2], "layers": [lin(2, -4)]},
        "arch_zero": {"input_shape": [2], "layers": [lin(2, 0)]},
        "arch_huge_linear": {"input_shape": [2], "layers": [lin(2, 100_000), lin(100_000, 100_000)]},
        "arch_huge_input": {"input_shape": [100000, 100000], "layers": [{"type": "flatten"}]},
        "arch_huge_activations": {
            "input_shape": [3, 1000, 1000],
            "layers": [{"type": "conv2d", "in_channels": 3, "out_channels": 64, "kernel_size": 3, "padding": 1}, {"type": "flatten"}],
        },
        "arch_huge_kernel": {"input_shape": [1, 8, 8], "layers": [{"type": "conv2d", "in_channels": 1, "out_channels": 1, "kernel_size": 10**6}]},
        "arch_unknown_type": {"input_shape": [2], "layers": [{"type": "evil"}]},
        "arch_type_not_string": {"input_shape": [2], "layers": [{"type": 3}]},
        "arch_extra_key": {"input_shape": [2], "layers": [{**lin(2, 4), "__class__": "os.system"}]},
        "arch_empty_layers": {"input_shape": [2], "layers": []},
        "arch_layers_not_list": {"input_shape": [2], "layers": {"0": lin(2, 4)}},
        "arch_layer_not_object": {"input_shape": [2], "layers": ["linear"]},
        "arch_no_input_shape": {"layers": [lin(2, 4)]},
        "arch_input_shape_string": {"input_shape": "2", "layers": [lin(2, 4)]},
        "arch_input_shape_negative": {"input_shape": [-2], "layers": [lin(2, 4)]},
        "arch_input_shape_5d": {"input_shape": [1, 1, 1, 1, 2], "layers": [{"type": "flatten"}]},
        "arch_layers_do_not_fit": {"input_shape": [2], "layers": [lin(5, 4)]},
        "arch_output_3d": {"input_shape": [1, 4, 4], "layers": [{"type": "conv2d", "in_channels": 1, "out_channels": 2, "kernel_size": 3}]},
        "arch_eps_negative": {"input_shape": [2], "layers": [lin(2, 4), {"type": "batchnorm1d", "num_features": 4, "eps": -1}]},
        "arch_residual_empty": {"input_shape": [2], "layers": [{"type": "residual", "body": []}]},
        "arch_residual_bad_body": {"input_shape": [2], "layers": [{"type": "residual", "body": "x"}]},
        "arch_deep_residual": {"input_shape": [2], "layers": [json.loads('{"type": "residual", "body": [' * 60 + '{"type": "relu"}' + "]}" * 60)]},
        "arch_not_object": [1, 2, 3],
        "arch_wrong_format": {**SPEC, "format": "something-else/9"},
        "arch_long_name": {**SPEC, "name": "n" * 100_000},
        "arch_ansi_name": {**SPEC, "name": "\x1b]0;pwned\x07"},
    }
    for n, spec in specs.items():
        b.arch_case(n, json.dumps(spec))
    b.arch_case("arch_nan_slope", '{"input_shape": [2], "layers": [{"type": "leaky_relu", "negative_slope": NaN}]}')
    b.arch_case("arch_infinity", '{"input_shape": [2], "layers": [{"type": "linear", "in_features": Infinity, "out_features": 4}]}')
    b.arch_case("arch_deep_nesting", "[" * 100_000 + "]" * 100_000)
    b.arch_case("arch_deep_nesting_objects", '{"a":' * 50_000 + "1" + "}" * 50_000)
    b.arch_case("arch_invalid_json", "{not json")
    b.arch_case("arch_duplicate_keys", '{"input_shape": [2], "input_shape": "x", "layers": []}')
    d = b.folder("arch_non_utf8")
    torch.save(good, d / "model.pt")
    (d / "architecture.json").write_bytes(b'{"input_shape": [2], "name": "\xff\xfe"}')
    b.file_case("arch_non_utf8", d / "model.pt")
    d = b.folder("arch_too_large")
    torch.save(good, d / "model.pt")
    (d / "architecture.json").write_text('{"input_shape": [2], "layers": [' + '{"type": "relu"},' * 600_000 + '{"type": "relu"}]}')
    b.file_case("arch_too_large", d / "model.pt")
    for n, make in (
        ("arch_fifo", lambda p: os.mkfifo(p)),
        ("arch_dev_zero", lambda p: os.symlink("/dev/zero", p)),
        ("arch_dir", lambda p: p.mkdir()),
        ("arch_symlink_passwd", lambda p: os.symlink("/etc/passwd", p)),
        ("arch_symlink_loop", lambda p: os.symlink(p, p)),
        ("arch_dangling_symlink", lambda p: os.symlink("/nonexistent/x", p)),
    ):
        d = b.folder(n)
        torch.save(good, d / "model.pt")
        make(d / "architecture.json")
        b.file_case(n, d / "model.pt")
    d = b.folder("arch_socket")
    torch.save(good, d / "model.pt")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(d / "architecture.json"))
    sock.close()
    b.file_case("arch_socket", d / "model.pt")

    # -- the checkpoint itself is a special file ---------------------------------------------------------
    d = b.folder("ckpt_special")
    os.mkfifo(d / "fifo.pt")
    os.symlink("/dev/zero", d / "zero.pt")
    os.symlink("/dev/urandom", d / "urandom.pt")
    os.symlink("/etc/passwd", d / "passwd.pt")
    (d / "dir.pt").mkdir()
    for n in ("fifo", "zero", "urandom", "passwd", "dir"):
        b.file_case(f"ckpt_{n}", d / f"{n}.pt")
    big = b.folder("ckpt_over_size_limit")
    with open(big / "model.pt", "wb") as fh:  # sparse: 5 GB apparent size, no disk used
        fh.truncate(5 * 2**30)
    b.file_case("ckpt_over_size_limit", big / "model.pt")

    # -- run.json -----------------------------------------------------------------------------------------
    ck = lambda **kw: [{"path": "epoch_0000.pt", "epoch": 0, **kw}]  # noqa: E731
    manifests = {
        "run_path_dotdot": b.manifest(checkpoints=[{"path": "../../../../../../etc/passwd", "epoch": 0}]),
        "run_path_absolute": b.manifest(checkpoints=[{"path": "/etc/passwd", "epoch": 0}]),
        "run_path_absolute_ckpt_elsewhere": b.manifest(checkpoints=[{"path": str(root / "pickle_system" / "model.pt"), "epoch": 0}]),
        "run_path_nul": b.manifest(checkpoints=[{"path": "epoch\x00.pt", "epoch": 0}]),
        "run_path_not_string": b.manifest(checkpoints=[{"path": 7, "epoch": 0}]),
        "run_path_empty": b.manifest(checkpoints=[{"path": "", "epoch": 0}]),
        "run_path_long": b.manifest(checkpoints=[{"path": "a" * 5000, "epoch": 0}]),
        "run_epoch_string": b.manifest(checkpoints=ck(epoch="0")),
        "run_epoch_float": b.manifest(checkpoints=ck(epoch=1.5)),
        "run_epoch_negative": b.manifest(checkpoints=ck(epoch=-1)),
        "run_epoch_huge": b.manifest(checkpoints=ck(epoch=10**30)),
        "run_epoch_bool": b.manifest(checkpoints=ck(epoch=True)),
        "run_duplicate_epochs": b.manifest(checkpoints=ck() + ck()),
        "run_checkpoints_not_list": b.manifest(checkpoints={"path": "epoch_0000.pt"}),
        "run_checkpoint_not_object": b.manifest(checkpoints=["epoch_0000.pt"]),
        "run_checkpoint_no_path": b.manifest(checkpoints=[{"epoch": 0}]),
        "run_no_checkpoints": b.manifest(checkpoints=[]),
        "run_too_many_checkpoints": b.manifest(checkpoints=[{"path": "epoch_0000.pt", "epoch": i} for i in range(100_001)]),
        "run_name_ansi": b.manifest(name="\x1b[2J\x1b[1;31mPWNED\x1b[0m"),
        "run_name_long": b.manifest(name="n" * 200_000),
        "run_name_not_string": b.manifest(name={"a": 1}),
        "run_class_names_too_many": b.manifest(class_names=["c"] * 200_000),
        "run_class_names_ansi": b.manifest(class_names=["\x1b[31ma", "b", "c"]),
        "run_wrong_format": b.manifest(format="other/2"),
        "run_arch_dotdot": b.manifest(architecture="../../../etc/passwd"),
        "run_arch_absolute": b.manifest(architecture="/etc/passwd"),
        "run_arch_number": b.manifest(architecture=5),
        "run_arch_num_classes_1e9": b.manifest(architecture={**SPEC, "num_classes": 10**9}),
        "run_dataset_builtin_huge_n": b.manifest(dataset={"builtin": "spirals", "n": 10**12}),
        "run_dataset_builtin_huge_arms": b.manifest(dataset={"builtin": "spirals", "arms": 10**9}),
        "run_dataset_builtin_unknown": b.manifest(dataset={"builtin": "imagenet"}),
        "run_dataset_builtin_n_string": b.manifest(dataset={"builtin": "moons", "n": "1000"}),
        "run_dataset_npz_dotdot": b.manifest(dataset={"npz": "../../../../etc/passwd"}),
        "run_dataset_npz_absolute": b.manifest(dataset={"npz": "/etc/passwd"}),
        "run_dataset_not_object": b.manifest(dataset="spirals"),
        "run_dataset_extra_key": b.manifest(dataset={"builtin": "moons", "exec": "rm -rf /"}),
        "run_not_object": [1, 2],
    }
    for n, man in manifests.items():
        b.run_json(n, man)
    b.run_json("run_epoch_nan", None, raw=json.dumps(b.manifest()).replace('"epoch": 0', '"epoch": NaN'))
    b.run_json("run_epoch_infinity", None, raw=json.dumps(b.manifest()).replace('"epoch": 0', '"epoch": Infinity'))
    b.run_json("run_invalid_json", None, raw="{")
    b.run_json("run_deep_nesting", None, raw="[" * 200_000 + "]" * 200_000)
    b.run_json("run_non_utf8", None, raw="x", checkpoint=True)
    (root / "run_non_utf8" / "run.json").write_bytes(b'{"name": "\xff", "checkpoints": []}')
    d = b.run_json("run_ckpt_symlink_zero", b.manifest())
    (d / "epoch_0000.pt").unlink()
    os.symlink("/dev/zero", d / "epoch_0000.pt")
    d = b.run_json("run_ckpt_fifo", b.manifest())
    (d / "epoch_0000.pt").unlink()
    os.mkfifo(d / "epoch_0000.pt")
    d = b.run_json("run_ckpt_symlink_outside", b.manifest())
    (d / "epoch_0000.pt").unlink()
    os.symlink(root / "pickle_system" / "model.pt", d / "epoch_0000.pt")
    d = b.run_json("run_arch_fifo", b.manifest(architecture="arch.json"))
    os.mkfifo(d / "arch.json")
    d = b.folder("run_json_is_fifo")
    torch.save(good, d / "epoch_0000.pt")
    os.mkfifo(d / "run.json")
    b.file_case("run_json_is_fifo", d)

    # -- run folders --------------------------------------------------------------------------------------
    d = b.folder("folder_fifo_checkpoints")
    b.spec_beside(d)
    os.mkfifo(d / "epoch_0000.pt")
    b.file_case("folder_fifo_checkpoints", d)
    d = b.folder("folder_symlink_outside")
    b.spec_beside(d)
    os.symlink(root / "pickle_system" / "model.pt", d / "epoch_0000.pt")
    b.file_case("folder_symlink_outside", d)
    d = b.folder("folder_arch_symlink_outside")
    torch.save(good, d / "epoch_0000.pt")
    os.symlink(root / "arch_num_classes_1e9" / "architecture.json", d / "architecture.json")
    b.file_case("folder_arch_symlink_outside", d)
    d = b.folder("folder_mixed_pickle")
    b.spec_beside(d)
    torch.save(good, d / "epoch_0000.pt")
    torch.save({"state_dict": good, "x": _System(_touch(m, "folder_mixed"))}, d / "epoch_0001.pt")
    torch.save(good, d / "epoch_0002.pt")
    b.file_case("folder_mixed_pickle", d)
    d = Path(os.fsdecode(bytes(root) + b"/folder_\xff\xfe_not_utf8"))
    d.mkdir()
    torch.save({"state_dict": {k: torch.full_like(v, float("nan")) for k, v in good.items()}, "arch": SPEC}, d / "epoch_0000.pt")
    b.file_case("folder_not_utf8_name", d)
    d = b.folder("folder_empty")
    b.file_case("folder_empty", d)
    d = b.folder("folder_ansi_\x1b[31m_name")
    b.spec_beside(d)
    torch.save({k: torch.full_like(v, float("nan")) for k, v in good.items()}, d / "epoch_0000.pt")
    b.file_case("folder_ansi_name", d)

    # -- datasets -----------------------------------------------------------------------------------------
    X = np.random.default_rng(0).normal(size=(20, 2)).astype(np.float32)
    y = np.arange(20) % 3
    b.npz_run("npz_float_targets", {"X": X, "y": np.linspace(0, 1, 20)})
    b.npz_run("npz_labels_2d", {"X": X, "y": np.stack([y, y], 1)})
    b.npz_run("npz_labels_negative", {"X": X, "y": y - 5})
    b.npz_run("npz_labels_huge", {"X": X, "y": y + 10**9})
    b.npz_run("npz_labels_too_many_classes", {"X": X, "y": y + 7})
    b.npz_run("npz_string_X", {"X": np.array([["a", "b"]] * 20), "y": y})
    b.npz_run("npz_string_y", {"X": X, "y": np.array(["a"] * 20)})
    b.npz_run("npz_object_X", {"X": np.array([object()] * 20, dtype=object), "y": y})
    b.npz_run("npz_zero_rows", {"X": np.zeros((0, 2), np.float32), "y": np.zeros(0, np.int64)})
    b.npz_run("npz_row_mismatch", {"X": X, "y": y[:5]})
    b.npz_run("npz_nan_X", {"X": np.full((20, 2), np.nan), "y": y})
    b.npz_run("npz_wrong_features", {"X": np.zeros((20, 5), np.float32), "y": y})
    b.npz_run("npz_X_1d", {"X": np.zeros(20, np.float32), "y": y})
    b.npz_run("npz_missing_y", {"X": X})
    b.npz_run("npz_bad_image_shape", {"X": X, "y": y, "image_shape": np.array([7, 7])})
    b.npz_run("npz_class_names_numbers", {"X": X, "y": y, "class_names": np.arange(3)})
    b.npz_run("npz_header_bomb", raw=_npy_header_bomb())
    b.npz_run("npz_zip_bomb", raw=_zip_with_declared_sizes({"X.npy": b"\x00" * 100, "y.npy": b"\x00" * 100}, 0xF0000000))
    b.npz_run("npz_not_a_zip", raw=b"not a zip at all")
    b.npz_run(
        "npz_pickle_payload",
        raw=_zip_with_declared_sizes(
            {
                "X.npy": b"\x93NUMPY\x01\x00v\x00{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"
                + b" " * 55
                + b"\n"
                + pickle.dumps(_System(_touch(m, "npz_pickle")), protocol=2),
                "y.npy": b"",
            },
            0,
        ),
    )

    # -- session files ------------------------------------------------------------------------------------
    base = {
        "format": "splineatlas-session",
        "version": 1,
        "run": str(valid_run),
        "epoch_index": 0,
        "depth": 1,
        "slice": {"origin": [0.0, 0.0], "basis": [[1.0, 0.0], [0.0, 1.0]], "anchors": [], "description": "input"},
        "slice_choice": {"kind": "input", "indices": [], "seed": 0},
        "home_window": [-1, 1, -1, 1],
        "window": [-1, 1, -1, 1],
        "color_mode": "class",
        "pick_mode": "inspect",
        "inspected": None,
        "paths": [],
        "settings": {},
    }
    path = {"id": 1, "kind": "horizontal", "start": [0.0, 0.0], "end": [0.5, 0.5], "epoch_index": 0}
    sessions = {
        "session_3000_paths": {**base, "paths": [{**path, "id": i} for i in range(3000)]},
        "session_steps_huge": {**base, "paths": [{**path, "steps": 10**9}]},
        "session_max_regions_huge": {**base, "settings": {"max_regions": 10**15}},
        "session_fps_nan_string": {**base, "settings": {"play_fps": "fast"}},
        "session_window_inverted": {**base, "window": [1, -1, 1, -1]},
        "session_window_short": {**base, "window": [0, 1]},
        "session_window_strings": {**base, "window": ["a", "b", "c", "d"]},
        "session_color_mode_bad": {**base, "color_mode": "\x1b[31mred"},
        "session_pick_mode_bad": {**base, "pick_mode": "exec"},
        "session_depth_negative": {**base, "depth": -3},
        "session_epoch_string": {**base, "epoch_index": "last"},
        "session_path_kind_bad": {**base, "paths": [{**path, "kind": "teleport"}]},
        "session_path_start_nan_string": {**base, "paths": [{**path, "start": ["nan", 0]}]},
        "session_slice_mismatch": {**base, "slice": {"origin": [0.0] * 5, "basis": [[1.0, 0.0]], "anchors": []}},
        "session_slice_basis_4d": {**base, "slice": {"origin": [0.0, 0.0], "basis": [[1, 0, 0, 0], [0, 1, 0, 0]]}},
        "session_version_future": {**base, "version": 99},
        "session_version_string": {**base, "version": "1"},
        "session_settings_bool_string": {**base, "settings": {"show_points": "yes"}},
        "session_choice_indices_huge": {**base, "slice_choice": {"kind": "points", "indices": list(range(1000))}},
        "session_inspected_bad": {**base, "inspected": [1, 2, 3]},
        "session_run_not_string": {**base, "run": 5},
    }
    for n, s in sessions.items():
        b.session(n, s)
    b.session("session_nan_window", None, raw=json.dumps(base).replace('"window": [-1, 1, -1, 1]', '"window": [NaN, 1, -1, 1]'))
    b.session("session_deep_nesting", None, raw='{"format": "splineatlas-session", "x": ' + "[" * 100_000 + "]" * 100_000 + "}")
    b.session("session_invalid_json", None, raw='{"format": "splineatlas-session",')

    # -- CLI arguments ---------------------------------------------------------------------------------------
    v = str(valid_run)
    out = root / "cli_out"
    out.mkdir(exist_ok=True)
    (out / "origin_bomb.npz").write_bytes(_npy_header_bomb("origin", "directions"))
    for n, (argv, expect) in {
        "cli_epochs_step_zero": (["export-video", v, "--sweep", "epochs", "--epochs", "0:10:0", "--out", str(out / "v.gif")], "--epochs"),
        "cli_points_1e10": (["dynamics", v, "--points", "10000000000", "--out", str(out / "dyn")], "--points 10,000,000,000"),
        "cli_size_huge": (["export-figure", v, "--size", "100000", "100000", "--out", str(out / "f.png")], "--size 100,000"),
        "cli_size_negative": (["export-figure", v, "--size", "-5", "10", "--out", str(out / "f.png")], "--size -5"),
        "cli_dpi_huge": (["export-figure", v, "--dpi", "1000000", "--out", str(out / "f.png")], "--dpi"),
        "cli_steps_huge": (["path", v, "--kind", "horizontal", "--from", "0", "--to", "1", "--steps", "1000000000", "--out", str(out / "p")], "--steps"),
        "cli_steps_negative": (["path", v, "--kind", "normal", "--from", "0", "--steps", "-1", "--out", str(out / "p")], "--steps -1"),
        "cli_depth_huge": (["tessellate", v, "--depth", "1000000000"], "--depth"),
        "cli_max_regions_negative": (["tessellate", v, "--max-regions", "-1"], "--max-regions -1"),
        "cli_domain_nan": (["tessellate", v, "--domain", "nan", "1", "0", "1"], "finite"),
        "cli_domain_inf": (["tessellate", v, "--domain", "0", "inf", "0", "1"], "finite"),
        "cli_domain_inverted": (["tessellate", v, "--domain", "1", "0", "0", "1"], "empty"),
        "cli_epoch_missing": (["tessellate", v, "--epoch", "123456789"], "no checkpoint at epoch"),
        "cli_epoch_not_int": (["tessellate", v, "--epoch", "five"], "invalid int"),
        "cli_unknown_option": (["tessellate", v, "--frobnicate"], "unrecognized"),
        "cli_resolution_huge": (["dual", v, "--resolution", "1000000", "--out", str(out / "d")], "--resolution"),
        "cli_n_huge": (["region-stats", v, "--n", "1000000000", "--out", str(out / "r")], "--n 1,000,000,000"),
        "cli_fps_zero": (["export-video", v, "--sweep", "epochs", "--fps", "0", "--out", str(out / "v.gif")], "--fps"),
        "cli_train_epochs_huge": (["train", "--dataset", "moons", "--arch", "2-4-2", "--epochs", "10000000000", "--out", str(out / "t")], "--epochs"),
        "cli_train_samples_huge": (["train", "--dataset", "moons", "--arch", "2-4-2", "--samples", "10000000000", "--out", str(out / "t")], "--samples"),
        "cli_train_arch_huge": (["train", "--dataset", "moons", "--arch", "2-100000-100000-2", "--out", str(out / "t")], "parameters"),
        "cli_train_arch_negative": (["train", "--dataset", "moons", "--arch", "2--4-2", "--out", str(out / "t")], "--arch"),
        "cli_deepfool_points_bad": (["deepfool", v, "--points", "0,x"], "--points"),
        "cli_deepfool_points_out_of_range": (["deepfool", v, "--points", "999999999"], "out of range"),
        "cli_through_bad": (["tessellate", v, "--through", "a,b,c"], "--through"),
        "cli_origin_dirs_fifo": (["tessellate", v, "--origin-and-directions", str(root / "ckpt_special" / "fifo.pt")], "FIFO"),
        "cli_origin_dirs_bomb": (["tessellate", v, "--origin-and-directions", str(out / "origin_bomb.npz")], "claims"),
        "cli_points_file_zero": (["deepfool", v, "--points-file", str(root / "ckpt_special" / "zero.pt")], "character device"),
        "cli_max_checkpoint_mb_negative": (["info", v, "--max-checkpoint-mb", "-1"], "--max-checkpoint-mb"),
        "cli_json_out_is_dir": (["tessellate", v, "--json", str(out)], "not a regular file"),
        "cli_session_show_fifo": (["session", "show", str(root / "ckpt_special" / "fifo.pt")], "FIFO"),
    }.items():
        b.cli(n, argv, expect)
    return b.cases
