"""Checkpoint loading: every format and every kind of bad input."""

import json

import numpy as np
import os

import pytest
import torch
from torch import nn

from geometry.networks.checkpoints import load_checkpoint, read_checkpoint, save_checkpoint
from geometry.errors import ArchitectureError, InputFileError, NonFiniteWeightsError, UnsafePickleError
from geometry.networks.network import Network
from geometry.networks.spec import mlp_spec


@pytest.fixture
def net():
    torch.manual_seed(0)
    return Network(mlp_spec([2, 6, 3]))


def _same(a: Network, b: Network) -> bool:
    x = torch.randn(10, a.input_dim)
    with torch.no_grad():
        return torch.allclose(a(x), b(x))


def test_own_format_pt_and_safetensors_are_self_describing(tmp_path, net):
    for name in ("a.pt", "a.safetensors"):
        save_checkpoint(tmp_path / name, net, epoch=3)
        assert _same(load_checkpoint(tmp_path / name), net)
    assert read_checkpoint(tmp_path / "a.pt").meta["epoch"] == 3


def test_plain_state_dict_with_architecture_beside(tmp_path, net):
    torch.save(net.layers.state_dict(), tmp_path / "w.pth")
    with pytest.raises(ArchitectureError, match="no architecture"):
        load_checkpoint(tmp_path / "w.pth")
    (tmp_path / "architecture.json").write_text(json.dumps(net.spec))
    assert _same(load_checkpoint(tmp_path / "w.pth"), net)


@pytest.mark.parametrize("wrap", ["state_dict", "model", "model_state_dict"])
def test_trainer_formats_nested_and_prefixed(tmp_path, net, wrap):
    sd = {f"module.{k}": v for k, v in net.layers.state_dict().items()}
    torch.save({wrap: sd, "epoch": 7, "optimizer": {"lr": 0.1}}, tmp_path / "c.pt")
    assert _same(load_checkpoint(tmp_path / "c.pt", spec=net.spec), net)


def test_torchscript_is_code_its_weights_are_read_safely_with_a_sidecar(tmp_path):
    torch.manual_seed(2)
    m = nn.Sequential(nn.Linear(2, 5), nn.ReLU(), nn.Linear(5, 3)).eval()
    torch.jit.script(m).save(str(tmp_path / "m.pt"))
    with pytest.raises(UnsafePickleError, match="TorchScript.*--trust-code"):
        load_checkpoint(tmp_path / "m.pt")
    x = torch.randn(4, 2)
    trusted = load_checkpoint(tmp_path / "m.pt", trust_code=True)
    spec = {
        "input_shape": [2],
        "layers": [{"type": "linear", "in_features": 2, "out_features": 5}, {"type": "relu"}, {"type": "linear", "in_features": 5, "out_features": 3}],
    }
    (tmp_path / "architecture.json").write_text(json.dumps(spec))
    safe = load_checkpoint(tmp_path / "m.pt")  # no code ran: weights by the restricted unpickler
    with torch.no_grad():
        assert torch.allclose(trusted(x), m(x))
        assert torch.equal(safe(x), trusted(x))


def test_torchscript_cnn_takes_its_input_shape_from_architecture_json_beside(tmp_path):
    torch.manual_seed(3)
    m = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 6 * 6, 4)).eval()
    torch.jit.script(m).save(str(tmp_path / "cnn.pt"))
    with pytest.raises(ArchitectureError, match="input_shape"):
        load_checkpoint(tmp_path / "cnn.pt", trust_code=True)
    (tmp_path / "architecture.json").write_text(json.dumps({"input_shape": [1, 8, 8], "layers": [{"type": "identity"}]}))
    loaded = load_checkpoint(tmp_path / "cnn.pt", trust_code=True)
    assert loaded.spec["input_shape"] == [1, 8, 8]
    x = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(loaded(x.reshape(3, -1)).reshape(3, -1), m(x), atol=1e-6)


class _Payload:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    payload = _Payload()
    payload.marker = marker
    torch.save({"state_dict": {}, "evil": payload}, tmp_path / "evil.pt")
    assert not marker.exists()
    with pytest.raises(UnsafePickleError, match="posix.system.*--trust-code"):
        load_checkpoint(tmp_path / "evil.pt")
    assert not marker.exists(), "the pickle payload ran"


def test_full_pickled_model_needs_opt_in(tmp_path):
    m = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 2))
    torch.save(m, tmp_path / "full.pt")
    with pytest.raises(UnsafePickleError):
        load_checkpoint(tmp_path / "full.pt")
    assert load_checkpoint(tmp_path / "full.pt", trust_code=True).input_dim == 2


def test_missing_empty_truncated_and_not_a_checkpoint(tmp_path, net):
    with pytest.raises(InputFileError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(InputFileError, match="empty"):
        load_checkpoint(tmp_path / "empty.pt")
    save_checkpoint(tmp_path / "full.pt", net)
    data = (tmp_path / "full.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputFileError, match="truncated"):
        load_checkpoint(tmp_path / "cut.pt")
    (tmp_path / "text.pt").write_text("hello, I am not a checkpoint")
    with pytest.raises(InputFileError):
        load_checkpoint(tmp_path / "text.pt")
    save_checkpoint(tmp_path / "s.safetensors", net)
    raw = (tmp_path / "s.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(raw[:40])
    with pytest.raises(InputFileError, match="safetensors"):
        load_checkpoint(tmp_path / "cut.safetensors")


def test_wrong_architecture_and_nan(tmp_path, net):
    save_checkpoint(tmp_path / "a.pt", net)
    with pytest.raises(ArchitectureError, match="mis-shaped"):
        load_checkpoint(tmp_path / "a.pt", spec=mlp_spec([2, 7, 3]))
    sd = {k: v.clone() for k, v in net.layers.state_dict().items()}
    sd["0.weight"][0, 0] = float("inf")
    torch.save(sd, tmp_path / "inf.pt")
    with pytest.raises(NonFiniteWeightsError, match="diverged"):
        load_checkpoint(tmp_path / "inf.pt", spec=net.spec)


@pytest.mark.parametrize("how", ["trace", "script"])
def test_torchscript_layer_settings_are_read_not_guessed(tmp_path, how):
    """A traced archive keeps a layer's settings only in its graph: LeakyReLU(0.2) was read as 0.01 and a
    BatchNorm's eps as 1e-5 -- a different network that still tessellated. They are read now (from the
    attributes of a scripted module, from the graph's constants of a traced one)."""
    torch.manual_seed(4)
    m = nn.Sequential(
        nn.Conv2d(1, 3, 3, stride=2, padding=1),
        nn.BatchNorm2d(3, eps=1e-2),
        nn.LeakyReLU(0.2),
        nn.MaxPool2d(2, stride=1),
        nn.Flatten(),
        nn.Linear(3 * 3 * 3, 4),
    ).eval()
    with torch.no_grad():  # BatchNorm statistics far from the defaults, so a wrong eps shows
        m[1].running_var.uniform_(0.001, 0.02)
        m[1].running_mean.normal_()
    x = torch.randn(16, 1, 8, 8)
    arch = torch.jit.trace(m, x[:1]) if how == "trace" else torch.jit.script(m)
    arch.save(str(tmp_path / "cnn.pt"))
    (tmp_path / "architecture.json").write_text(json.dumps({"input_shape": [1, 8, 8], "layers": [{"type": "identity"}]}))
    loaded = load_checkpoint(tmp_path / "cnn.pt", trust_code=True)
    lrelu = next(e for e in loaded.spec["layers"] if e["type"] == "leaky_relu")
    bn = next(e for e in loaded.spec["layers"] if e["type"] == "batchnorm2d")
    assert lrelu["negative_slope"] == pytest.approx(0.2) and bn["eps"] == pytest.approx(1e-2)
    with torch.no_grad():
        np.testing.assert_allclose(loaded(x.reshape(16, -1)).numpy(), m(x).numpy(), atol=1e-5)


def test_a_torchscript_layer_setting_that_cannot_be_read_is_refused(tmp_path):
    from geometry.networks.spec import _rebuild_scripted

    class Bare(nn.Module):  # a TorchScript-like layer that records nothing
        original_name = "LeakyReLU"

    with pytest.raises(ArchitectureError, match="records no negative_slope"):
        _rebuild_scripted(nn.LeakyReLU, Bare())
