"""ONNX models open (#16): read as a protobuf with the onnx package (no code runs), their initializers as
the weights; the network computes what torch computed before export, residual blocks with projection
shortcuts included, and an unsupported node is refused naming its op type."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from geometry.errors import ArchitectureError, InputFileError
from geometry.networks.checkpoints import load_checkpoint

pytest.importorskip("onnx")


def _export(m, shape, path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(m, (torch.randn(1, *shape),), str(path), dynamo=False)


class LeNet5(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 6, 5, padding=2), nn.Conv2d(6, 16, 5)
        self.fc1, self.fc2, self.fc3 = nn.Linear(400, 120), nn.Linear(120, 84), nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = x.view(x.size(0), -1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


def _models():
    from test_dag_networks import TinyResNet, _randomised

    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 16), nn.LeakyReLU(0.2), nn.Linear(16, 3), nn.Softmax(dim=1))
    torch.manual_seed(1)
    lenet = LeNet5()
    torch.manual_seed(2)
    resnet = _randomised(TinyResNet())
    return [("mlp", mlp.eval(), (2,)), ("lenet", lenet.eval(), (1, 28, 28)), ("resnet", resnet, (3, 32, 32))]


@pytest.mark.parametrize("which", ["mlp", "lenet", "resnet"])
def test_exported_models_compute_what_torch_computed(tmp_path, which):
    name, m, shape = next(t for t in _models() if t[0] == which)
    _export(m, shape, tmp_path / f"{name}.onnx")
    net = load_checkpoint(tmp_path / f"{name}.onnx")
    assert list(net.input_shape) == list(shape) and net.is_piecewise_affine
    x = torch.rand(16, *shape)
    with torch.no_grad():
        want = m[:-1](x) if name == "mlp" else m(x)  # the trailing softmax is dropped: logits
        np.testing.assert_allclose(net(x.reshape(16, -1)).numpy(), want.numpy(), atol=1e-4)


def test_an_unsupported_node_is_named_and_a_damaged_file_is_one_line(tmp_path):
    class Wavy(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(2, 3)

        def forward(self, x):
            return torch.sin(self.a(x))

    _export(Wavy(), (2,), tmp_path / "cat.onnx")
    with pytest.raises(ArchitectureError, match="Sin"):
        load_checkpoint(tmp_path / "cat.onnx")
    good = (tmp_path / "cat.onnx").read_bytes()
    (tmp_path / "bad.onnx").write_bytes(good[: len(good) // 3])
    with pytest.raises((InputFileError, ArchitectureError)):
        load_checkpoint(tmp_path / "bad.onnx")
