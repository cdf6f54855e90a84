"""Sums of two branches (#16): ResNet projection shortcuts ``shortcut(x) + body(x)`` and adaptive average
pooling, from a torchvision-style class with BasicBlocks. The imported network computes what the class
computes, its slice tessellates with every tile's pattern equal to the forward pass's, and a shortcut
written as an identity branch gives exactly the chain's results."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from geometry.errors import ArchitectureError
from geometry.networks.network import Network
from geometry.networks.spec import spec_from_module, validate_spec
from geometry.slices import Slice
from geometry.tessellation import tessellate
from tests.zoo_models import BasicBlock, assert_tiles_match_the_forward_pass


class TinyResNet(nn.Module):  # ResNet-18's shape for 3x32x32 inputs, narrow and short
    def __init__(self, width=4, num_classes=5):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.layer1 = nn.Sequential(BasicBlock(width, width), BasicBlock(width, width))
        self.layer2 = nn.Sequential(BasicBlock(width, 2 * width, stride=2), BasicBlock(2 * width, 2 * width))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(2 * width, num_classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer2(self.layer1(x))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


def _randomised(m):
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.normal_(0, 0.3)
                mod.running_var.uniform_(0.5, 2.0)
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.normal_(0, 0.2)
    return m.eval()


def test_a_resnet_with_projection_shortcuts_imports_and_tessellates_exactly():
    torch.manual_seed(0)
    m = _randomised(TinyResNet())
    spec, state = spec_from_module(m, [3, 32, 32])
    shortcuts = [e for e in _walk(spec["layers"]) if e.get("type") == "residual" and e.get("shortcut")]
    assert len(shortcuts) == 1 and [s["type"] for s in shortcuts[0]["shortcut"]] == ["conv2d", "batchnorm2d"]
    net = Network(spec)
    net.layers.load_state_dict(state)
    x = torch.rand(8, 3, 32, 32)
    with torch.no_grad():
        np.testing.assert_allclose(net(x.reshape(8, -1)).numpy(), m(x).numpy(), atol=1e-5)
    rng = np.random.default_rng(1)
    sl = Slice.from_directions(rng.uniform(0, 1, 3 * 32 * 32), rng.normal(size=(2, 3 * 32 * 32)))  # orthonormalised: the domain sets the scale
    t = tessellate(net, sl, np.array([-0.3, 0.3, -0.3, 0.3]))
    assert t.num_regions > 10
    assert_tiles_match_the_forward_pass(net, sl, t)


def _walk(layers):
    for e in layers:
        yield e
        if e.get("type") == "residual":
            yield from _walk(e["body"])


def test_an_identity_shortcut_gives_exactly_the_chains_results():
    body = [{"type": "linear", "in_features": 2, "out_features": 2}, {"type": "relu"}, {"type": "linear", "in_features": 2, "out_features": 2}]
    head = [{"type": "linear", "in_features": 2, "out_features": 2}, {"type": "relu"}]
    tail = [{"type": "relu"}, {"type": "linear", "in_features": 2, "out_features": 3}]
    chain = Network(validate_spec({"input_shape": [2], "layers": [*head, {"type": "residual", "body": body}, *tail]}))
    dag = Network(validate_spec({"input_shape": [2], "layers": [*head, {"type": "residual", "body": body, "shortcut": [{"type": "identity"}]}, *tail]}))
    dag.layers.load_state_dict(chain.layers.state_dict())
    dom = np.array([-2.0, 2.0, -2.0, 2.0])
    a, b = tessellate(chain, Slice.input_plane(2), dom), tessellate(dag, Slice.input_plane(2), dom)
    assert a.num_regions == b.num_regions
    np.testing.assert_array_equal(a.vertices, b.vertices)
    assert all(np.array_equal(x, y) for x, y in zip(a.codes, b.codes))
    np.testing.assert_array_equal(a.boundary_segments, b.boundary_segments)


def test_a_nonlinear_shortcut_is_refused_by_name():
    layers = [{"type": "residual", "body": [{"type": "linear", "in_features": 2, "out_features": 2}], "shortcut": [{"type": "relu"}]}]
    with pytest.raises(ArchitectureError, match=r"shortcut\[0\] is relu"):
        validate_spec({"input_shape": [2], "layers": [*layers, {"type": "linear", "in_features": 2, "out_features": 2}]})


def _concat_and_chain():
    """cat([W1 x + b1, W2 x + b2]) -> ReLU as a DAG, and the same as one stacked Linear in a chain."""
    head = [{"type": "linear", "in_features": 2, "out_features": 6}, {"type": "relu"}]
    tail = [{"type": "relu"}, {"type": "linear", "in_features": 7, "out_features": 3}]
    branches = [[{"type": "linear", "in_features": 6, "out_features": 3}], [{"type": "linear", "in_features": 6, "out_features": 4}]]
    dag = Network(validate_spec({"input_shape": [2], "layers": [*head, {"type": "concat", "branches": branches}, *tail]}))
    chain = Network(validate_spec({"input_shape": [2], "layers": [*head, {"type": "linear", "in_features": 6, "out_features": 7}, *tail]}))
    torch.manual_seed(3)
    for p in dag.layers.parameters():
        torch.nn.init.normal_(p, 0, 0.8)
    d, c = dag.layers.state_dict(), {}
    for k, v in d.items():
        if k.startswith("2."):  # the concat: its two branch Linears stacked into one
            continue
        c[k] = v
    c["2.weight"] = torch.cat([d["2.branches.0.0.weight"], d["2.branches.1.0.weight"]])
    c["2.bias"] = torch.cat([d["2.branches.0.0.bias"], d["2.branches.1.0.bias"]])
    chain.layers.load_state_dict(c)
    return dag, chain


def test_a_concatenation_gives_the_chains_results_in_every_tool():
    from geometry.boundary.deepfool import deepfool
    from geometry.foliation.local_data_matrix import local_data_matrix

    dag, chain = _concat_and_chain()
    x = torch.randn(64, 2, dtype=torch.float64)
    with torch.no_grad():
        np.testing.assert_allclose(dag.to_dtype_device(torch.float64)(x), chain.to_dtype_device(torch.float64)(x), atol=1e-12)
    dom = np.array([-2.0, 2.0, -2.0, 2.0])
    a, b = tessellate(chain, Slice.input_plane(2), dom), tessellate(dag, Slice.input_plane(2), dom)
    assert a.num_regions == b.num_regions > 10
    np.testing.assert_allclose(np.sort(a.centroids(), 0), np.sort(b.centroids(), 0), atol=1e-9)
    np.testing.assert_allclose(np.sort(a.areas()), np.sort(b.areas()), atol=1e-9)
    fa, fb = deepfool(chain, x.numpy()), deepfool(dag, x.numpy())
    np.testing.assert_allclose(fa.perturbation, fb.perturbation, atol=1e-9)
    np.testing.assert_array_equal(fa.iterations, fb.iterations)
    la, lb = local_data_matrix(chain, x.numpy()[:8]), local_data_matrix(dag, x.numpy()[:8])
    np.testing.assert_allclose(la.trace, lb.trace, atol=1e-9)
    np.testing.assert_allclose(la.eigenvalues, lb.eigenvalues, atol=1e-9)
