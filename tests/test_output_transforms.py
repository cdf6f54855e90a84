"""A trailing Softmax or LogSoftmax is dropped the same way wherever the architecture comes from (#16): it
used to be dropped from a converted module but kept from architecture.json (and then refused by the exact
tools), and LogSoftmax was refused everywhere."""

from __future__ import annotations


import numpy as np
import pytest
import torch
from torch import nn

from geometry.networks.network import Network
from geometry.networks.spec import spec_from_module, validate_spec

LAYERS = [{"type": "linear", "in_features": 2, "out_features": 8}, {"type": "relu"}, {"type": "linear", "in_features": 8, "out_features": 3}]


@pytest.mark.parametrize("tail", ["softmax", "log_softmax"])
def test_architecture_json_drops_a_trailing_output_transform(tail):
    spec = validate_spec({"input_shape": [2], "layers": [*LAYERS, {"type": tail}]})
    assert [e["type"] for e in spec["layers"]] == ["linear", "relu", "linear"] and spec["dropped_output_transform"] == tail
    net = Network(spec)
    assert net.is_piecewise_affine


@pytest.mark.parametrize("tail", [nn.Softmax(dim=1), nn.LogSoftmax(dim=1), nn.LogSoftmax(dim=-1)])
def test_a_module_drops_it_too_and_keeps_the_logits(tail):
    torch.manual_seed(0)
    body = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 3))
    spec, state = spec_from_module(nn.Sequential(*body, tail))
    assert spec["dropped_output_transform"] == type(tail).__name__.lower().replace("logsoftmax", "log_softmax")
    net = Network(spec)
    net.layers.load_state_dict(state)
    x = torch.randn(64, 2)
    with torch.no_grad():
        np.testing.assert_allclose(net(x).numpy(), body(x).numpy(), atol=1e-6)
        assert torch.equal(net(x).argmax(1), nn.Sequential(*body, tail)(x).argmax(1))


def test_an_inner_log_softmax_is_a_smooth_layer_the_exact_tools_name():
    from geometry.errors import SplineAtlasError
    from geometry.slices import Slice
    from geometry.tessellation import tessellate

    spec = validate_spec({"input_shape": [2], "layers": [LAYERS[0], {"type": "log_softmax"}, LAYERS[2]]})
    net = Network(spec)
    assert not net.is_piecewise_affine and "dropped_output_transform" not in spec
    with pytest.raises(SplineAtlasError, match="log_softmax"):
        tessellate(net, Slice.input_plane(2), np.array([-1.0, 1.0, -1.0, 1.0]))
