"""Canonical network form: specs, module canonicalisation, traces, piecewise-affine checks."""

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from geometry.errors import ArchitectureError, NonFiniteWeightsError, NotPiecewiseAffineError
from geometry.networks.network import Network
from geometry.networks.spec import Abs, Residual, digits_cnn_spec, mlp_spec, spec_from_module, validate_spec


def test_trace_patterns_match_manual_forward():
    torch.manual_seed(0)
    net = Network(mlp_spec([2, 8, 5, 3]))
    x = torch.randn(50, 2)
    tr = net.trace(x)
    lin = [m for m in net.layers if isinstance(m, nn.Linear)]
    h1 = lin[0](x)
    h2 = lin[1](h1.relu())
    assert torch.equal(tr.patterns[0], h1 > 0) and torch.equal(tr.patterns[1], h2 > 0)
    assert torch.allclose(tr.logits, lin[2](h2.relu())) and torch.allclose(tr.logits, net(x))
    assert [li.width for li in net.layer_infos] == [8, 5] and net.is_piecewise_affine


def test_cnn_takes_flat_inputs_and_reports_all_layers():
    net = Network(digits_cnn_spec())
    tr = net.trace(torch.rand(3, 64))
    assert [p.shape[1] for p in tr.patterns] == [8 * 64, 16 * 16, 32]
    assert tr.logits.shape == (3, 10)
    with pytest.raises(ArchitectureError, match=r"\(N, 64\)"):
        net(torch.rand(3, 8, 8))


def test_smooth_layer_is_named():
    spec = validate_spec(
        {
            "input_shape": [3],
            "layers": [
                {"type": "linear", "in_features": 3, "out_features": 4},
                {"type": "relu"},
                {"type": "linear", "in_features": 4, "out_features": 4},
                {"type": "gelu"},
                {"type": "linear", "in_features": 4, "out_features": 2},
            ],
        }
    )
    net = Network(spec)
    assert not net.is_piecewise_affine and net.first_smooth_layer.path == "3"
    with pytest.raises(NotPiecewiseAffineError, match="layer 3 is gelu"):
        net.require_piecewise_affine()


def test_residual_leaky_abs_maxpool_trace():
    spec = validate_spec(
        {
            "input_shape": [1, 4, 4],
            "layers": [
                {"type": "conv2d", "in_channels": 1, "out_channels": 2, "kernel_size": 3, "padding": 1},
                {"type": "leaky_relu", "negative_slope": 0.1},
                {"type": "residual", "body": [{"type": "conv2d", "in_channels": 2, "out_channels": 2, "kernel_size": 1}, {"type": "abs"}]},
                {"type": "maxpool2d", "kernel_size": 2},
                {"type": "flatten"},
                {"type": "linear", "in_features": 8, "out_features": 3},
            ],
        }
    )
    net = Network(spec)
    assert [li.kind for li in net.layer_infos] == ["leaky_relu", "abs", "maxpool2d"]
    assert net.layer_infos[1].path == "2.body.1"
    x = torch.randn(5, 16)
    tr = net.trace(x)
    assert tr.patterns[2].dtype == torch.int64 and tr.patterns[2].shape == (5, 8)
    assert torch.allclose(tr.logits, net(x))


def test_spec_from_module_roundtrip_nested_and_trailing_softmax():
    torch.manual_seed(1)
    m = nn.Sequential(
        nn.Linear(3, 6),
        nn.ReLU(),
        nn.Sequential(nn.Linear(6, 4), nn.LeakyReLU(0.2)),
        Residual(nn.Sequential(nn.Linear(4, 4), Abs())),
        nn.Linear(4, 2),
        nn.Softmax(-1),
    ).eval()
    spec, state = spec_from_module(m)
    net = Network(spec)
    net.load_weights(state)
    x = torch.randn(9, 3)
    assert spec["dropped_output_transform"] == "softmax"
    assert torch.allclose(net(x).softmax(-1), m(x), atol=1e-6)


def test_unsupported_module_is_refused_by_name():
    class Weird(nn.Module):
        def forward(self, x):
            return torch.sin(x)  # (x * 2, a scaling, is part of the canonical form)

    with pytest.raises(ArchitectureError, match="layer 1 of type Weird.*uses sin"):
        spec_from_module(nn.Sequential(nn.Linear(2, 2), Weird()))


def test_load_weights_names_missing_unexpected_misshaped_and_nan():
    net = Network(mlp_spec([2, 4, 3]))
    good = {k: v.clone() for k, v in net.layers.state_dict().items()}
    bad = dict(good)
    bad.pop("0.bias")
    bad["9.weight"] = torch.zeros(1)
    bad["2.weight"] = torch.zeros(5, 4)
    with pytest.raises(ArchitectureError) as e:
        net.load_weights(bad)
    msg = str(e.value)
    assert "missing 0.bias" in msg and "unexpected 9.weight" in msg and "2.weight (5, 4) vs (3, 4)" in msg
    nan = dict(good)
    nan["0.weight"] = torch.full_like(good["0.weight"], float("nan"))
    with pytest.raises(NonFiniteWeightsError, match="0.weight"):
        net.load_weights(nan)


@pytest.mark.parametrize(
    "layers, match",
    [
        ([{"type": "linear", "in_features": 3, "out_features": 2}], "do not fit"),
        ([{"type": "bogus"}], r"layers\[0\].*tag 'bogus'"),
        ([{"type": "linear", "in_features": 2}], r"layers\[0\]\.out_features: Field required"),
        ([{"type": "linear", "in_features": "2", "out_features": 2}], r"in_features: Input should be a valid integer"),
        ([{"type": "linear", "in_features": True, "out_features": 2}], r"in_features: Input should be a valid integer"),
        ([{"type": "leaky_relu", "negative_slope": float("nan")}], r"negative_slope.*finite"),
        ([{"type": "linear", "in_features": 2, "out_features": 2, "bias": True, "extra": 1}], r"extra: Extra inputs"),
    ],
)
def test_bad_specs(layers, match):
    with pytest.raises(ArchitectureError, match=match):
        validate_spec({"input_shape": [2], "layers": layers})


def test_absurd_input_shape_refused():
    with pytest.raises(ArchitectureError, match="absurdly large"):
        validate_spec({"input_shape": [100000, 100000], "layers": [{"type": "flatten"}]})


def test_content_hash_changes_with_weights():
    net = Network(mlp_spec([2, 4, 3]))
    h = net.content_hash()
    with torch.no_grad():
        net.layers[0].weight[0, 0] += 1e-3
    assert net.content_hash() != h and len(h) == 64


def test_float64_copy_is_independent():
    net = Network(mlp_spec([2, 4, 3]))
    n64 = net.to_dtype_device(torch.float64)
    x = torch.randn(4, 2, dtype=torch.float64)
    with torch.no_grad():
        assert np.allclose(n64(x).numpy(), net(x.float()).numpy(), atol=1e-5)
    assert next(net.parameters()).dtype == torch.float32


def test_float64_copy_of_float64_network_keeps_precision():
    n64 = Network(mlp_spec([2, 4, 3])).to_dtype_device(torch.float64)
    with torch.no_grad():
        n64.layers[0].weight[0, 0] = 1 / 3
    again = n64.to_dtype_device(torch.float64)
    assert again.layers[0].weight[0, 0].item() == 1 / 3


class _OutOfOrderMLP(nn.Module):
    """Registered out of forward order, functional activations: only tracing gets the order right."""

    def __init__(self):
        super().__init__()
        self.out = nn.Linear(5, 3)
        self.hidden = nn.Linear(4, 5)
        self.inp = nn.Linear(2, 4)

    def forward(self, x):
        x = torch.relu(self.inp(x))
        x = F.leaky_relu(self.hidden(x), 0.2)
        return self.out(x)


class _ResidualNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(2, 6)
        self.fc1 = nn.Linear(6, 6)
        self.fc2 = nn.Linear(6, 6)
        self.head = nn.Linear(6, 3)

    def forward(self, x):
        x = F.relu(self.inp(x))
        x = x + self.fc2(F.relu(self.fc1(x)))
        return self.head(x.abs())


class _SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3)
        self.fc = nn.Linear(3 * 3 * 3, 4)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv(x)), 2)
        return self.fc(x.view(x.size(0), -1))


@pytest.mark.parametrize(
    "make, shape, types",
    [
        (_OutOfOrderMLP, None, ["linear", "relu", "linear", "leaky_relu", "linear"]),
        (_ResidualNet, None, ["linear", "relu", "residual", "abs", "linear"]),
        (_SmallCNN, [1, 8, 8], ["conv2d", "relu", "maxpool2d", "flatten", "linear"]),
    ],
)
def test_custom_modules_are_canonicalised_by_tracing(make, shape, types):
    torch.manual_seed(5)
    m = make().eval()
    spec, state = spec_from_module(m, input_shape=shape)
    assert [e["type"] for e in spec["layers"]] == types
    net = Network(spec)
    net.load_weights(state)
    x = torch.randn(16, *(shape or [2]))
    with torch.no_grad():
        assert torch.allclose(net(x.reshape(16, -1)), m(x), atol=1e-6)
    assert net.is_piecewise_affine


def test_custom_module_with_an_unsupported_op_is_refused_naming_it():
    class Gated(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(2, 3), nn.Linear(2, 3)

        def forward(self, x):
            return self.a(x) * torch.sigmoid(self.b(x))

    # the operation is named (a gating product), not the branch that feeds it (#16: it said "calls b")
    with pytest.raises(ArchitectureError, match="type Gated: its forward uses mul"):
        spec_from_module(Gated())

    class Cat(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(2, 3)

        def forward(self, x):
            return torch.cat([self.a(x), self.a(x)], dim=0)

    # a concatenation of branches along the channel axis is canonical (DenseNet, U-net); along the batch it is not
    with pytest.raises(ArchitectureError, match="concatenates along dim 0"):
        spec_from_module(Cat())


def test_absurd_or_malformed_layer_sizes_are_refused_before_allocating():
    """A spec whose weights would not fit in memory is refused from its counted parameters (nothing is
    allocated: 10^10 float32 weights would be 40 GB); negative sizes are an ArchitectureError too."""
    from geometry.networks.spec import MAX_PARAMETERS, count_parameters

    huge = [
        {"type": "linear", "in_features": 2, "out_features": 100_000},
        {"type": "relu"},
        {"type": "linear", "in_features": 100_000, "out_features": 100_000},
    ]
    assert count_parameters(huge) == 2 * 100_000 + 100_000 + 100_000**2 + 100_000 > MAX_PARAMETERS
    with pytest.raises(ArchitectureError, match="10,000,400,000 parameters"):
        validate_spec({"input_shape": [2], "layers": huge})
    with pytest.raises(ArchitectureError, match=r"out_features: Input should be greater than or equal to 1 \(got -5\)"):
        validate_spec({"input_shape": [2], "layers": [{"type": "linear", "in_features": 2, "out_features": -5}]})
    wide = [{"type": "conv2d", "in_channels": 3, "out_channels": 100, "kernel_size": 3, "padding": 1}]
    with pytest.raises(ArchitectureError, match="100,000,000 activations per sample"):  # shapes on the meta device
        validate_spec({"input_shape": [3, 1000, 1000], "layers": wide})
    with pytest.raises(ArchitectureError, match="num_classes is 7 but the network has 2 outputs"):
        validate_spec({"input_shape": [2], "num_classes": 7, "layers": [{"type": "linear", "in_features": 2, "out_features": 2}]})
    cnn = digits_cnn_spec()
    assert count_parameters(cnn["layers"]) == Network(cnn).num_parameters()
    res = [
        {"type": "linear", "in_features": 3, "out_features": 4},
        {"type": "residual", "body": [{"type": "linear", "in_features": 4, "out_features": 4}, {"type": "relu"}]},
        {"type": "batchnorm1d", "num_features": 4},
    ]
    net = Network({"input_shape": [3], "layers": res})
    assert count_parameters(res) == net.num_parameters() + 2 * 4  # + batch norm's running mean and variance
