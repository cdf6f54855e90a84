"""torchvision's own resnet18 and vgg11 (random weights, nothing downloaded) open with
``--model torchvision:NAME``: the imported network computes what torchvision's module computes, and a
small 2D slice tessellates with every tile's pattern equal to the forward pass. Skipped where
torchvision does not import (the reference machine's local torchvision wheels are built for CUDA torch
and do not load on its CPU torch 2.13.0)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from app.cli.main import main
from geometry.networks.checkpoints import load_checkpoint
from geometry.networks.user_model import parse_model_ref, using_model
from geometry.slices import Slice
from geometry.tessellation import tessellate
from tests.zoo_models import assert_tiles_match_the_forward_pass

try:  # a torchvision built for another torch raises RuntimeError (its operators do not register), not ImportError
    import torchvision.models as tvm
except Exception as exc:  # noqa: BLE001 - any failure to import means: no torchvision here
    pytest.skip(f"torchvision does not import here ({type(exc).__name__}: {exc})", allow_module_level=True)

CASES = {"resnet18": (3, 32, 32), "vgg11": (3, 32, 32)}


def _randomised(m: torch.nn.Module) -> torch.nn.Module:
    """Batch-norm statistics that are not the identity, so eval-mode folding is really tested."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.copy_(torch.randn(mod.num_features, generator=g) * 0.2)
                mod.running_var.copy_(torch.rand(mod.num_features, generator=g) + 0.5)
    return m.eval()


@pytest.mark.parametrize("arch", list(CASES))
def test_torchvision_models_open_by_name_and_compute_what_torchvision_computes(tmp_path, arch):
    torch.manual_seed(0)
    m = _randomised(tvm.get_model(arch, weights=None, num_classes=10))
    path = tmp_path / f"{arch}.pt"
    torch.save(m.state_dict(), path)
    ref = parse_model_ref(f"torchvision:{arch}", '{"num_classes": 10}', list(CASES[arch]))
    with using_model(ref):
        net = load_checkpoint(path)
    x = torch.randn(4, *CASES[arch])
    with torch.no_grad():
        got, want = net(x.reshape(4, -1)), m(x)
    np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-5, rtol=1e-5)
    assert net.is_piecewise_affine
    if arch == "resnet18":  # the tessellation check: one net is enough (vgg11 at 32x32 is the same layers)
        rng = np.random.default_rng(0)
        sl = Slice.from_directions(rng.uniform(0, 1, net.input_dim), rng.normal(size=(2, net.input_dim)))
        t = tessellate(net, sl, 0.005 * np.array([-1.0, 1.0, -1.0, 1.0]))
        assert t.num_regions > 3
        assert_tiles_match_the_forward_pass(net, sl, t)


def test_info_on_a_torchvision_state_dict_shows_the_graph(tmp_path, capsys):
    torch.manual_seed(0)
    path = tmp_path / "r18.pt"
    torch.save(tvm.resnet18(weights=None, num_classes=10).state_dict(), path)
    code = main(["info", str(path), "--model", "torchvision:resnet18", "--model-kwargs", '{"num_classes": 10}', "--input-shape", "3", "32", "32"])
    out = capsys.readouterr().out
    assert code == 0
    assert "piecewise-affine: yes" in out and "residual" in out and "11,181,642" in out  # resnet18's parameter count at 10 classes
