"""Researchers' own nn.Module classes open with --model FILE.py:CLASS (#16): the class gives the
architecture and its parameter names, the checkpoint the weights."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
import torch

from geometry.errors import ArchitectureError
from geometry.networks.checkpoints import load_checkpoint
from geometry.networks.user_model import parse_model_ref, using_model

MODELS = textwrap.dedent(
    """
    import torch
    import torch.nn as nn
    import torch.nn.functional as F


    class LeNet5(nn.Module):
        def __init__(self, num_classes=10):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
            self.conv2 = nn.Conv2d(6, 16, 5)
            self.fc1 = nn.Linear(16 * 5 * 5, 120)
            self.fc2 = nn.Linear(120, 84)
            self.fc3 = nn.Linear(84, num_classes)

        def forward(self, x):
            x = F.max_pool2d(F.relu(self.conv1(x)), 2)
            x = F.max_pool2d(F.relu(self.conv2(x)), 2)
            x = x.view(x.size(0), -1)
            x = F.relu(self.fc1(x))
            x = F.relu(self.fc2(x))
            return self.fc3(x)


    class SmallVGG(nn.Module):
        def __init__(self, width=8, num_classes=4):
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
            )
            self.classifier = nn.Sequential(nn.Linear(2 * width * 4 * 4, 32), nn.LeakyReLU(0.1), nn.Dropout(0.5), nn.Linear(32, num_classes))

        def forward(self, x):
            x = self.features(x)
            x = torch.flatten(x, 1)
            return self.classifier(x)
    """
)


@pytest.fixture
def models(tmp_path):
    f = tmp_path / "models.py"
    f.write_text(MODELS)
    import importlib.util

    spec = importlib.util.spec_from_file_location("test_user_models_src", f)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return f, mod


def test_lenet5_state_dict_opens_and_computes_what_the_class_computes(models, tmp_path):
    f, mod = models
    torch.manual_seed(1)
    m = mod.LeNet5(num_classes=7).eval()
    torch.save(m.state_dict(), tmp_path / "lenet.pt")
    torch.save({"epoch": 3, "model_state_dict": {"module." + k: v for k, v in m.state_dict().items()}}, tmp_path / "trainer.pt")
    from safetensors.torch import save_file

    save_file(m.state_dict(), str(tmp_path / "lenet.safetensors"))
    ref = parse_model_ref(f"{f}:LeNet5", '{"num_classes": 7}', [1, 28, 28])
    x = torch.rand(32, 1, 28, 28)
    with torch.no_grad():
        want = m(x).numpy()
    for name in ("lenet.pt", "trainer.pt", "lenet.safetensors"):
        with using_model(ref):
            net = load_checkpoint(tmp_path / name)
        with torch.no_grad():
            np.testing.assert_allclose(net(x.reshape(32, -1)).numpy(), want, atol=1e-5)
    assert net.is_piecewise_affine and net.spec["input_shape"] == [1, 28, 28]


def test_a_slice_through_the_users_cnn_tessellates_with_patterns_of_the_forward_pass(models, tmp_path):
    from geometry.slices import Slice
    from geometry.tessellation import pack_pattern, tessellate

    f, mod = models
    torch.manual_seed(2)
    m = mod.SmallVGG().eval()
    with torch.no_grad():
        m.features[1].running_mean.normal_(0, 0.2)
        m.features[1].running_var.uniform_(0.5, 2.0)
    torch.save(m.state_dict(), tmp_path / "vgg.pt")
    with using_model(parse_model_ref(f"{f}:SmallVGG", None, [3, 16, 16])):
        net = load_checkpoint(tmp_path / "vgg.pt")
    x = torch.rand(8, 3, 16, 16)
    with torch.no_grad():
        np.testing.assert_allclose(net(x.reshape(8, -1)).numpy(), m(x).numpy(), atol=1e-5)
    rng = np.random.default_rng(0)
    sl = Slice.from_directions(rng.uniform(0, 1, 768), rng.normal(size=(2, 768)))  # orthonormalised: the domain sets the scale
    t = tessellate(net, sl, np.array([-0.2, 0.2, -0.2, 0.2]))
    assert t.num_regions > 20
    cent = torch.as_tensor(sl.to_input(t.centroids()), dtype=torch.float64)
    with torch.no_grad():
        tr = net.to_dtype_device(torch.float64).trace(cent)
    for j, (p, info) in enumerate(zip(tr.patterns, net.layer_infos)):
        assert np.array_equal(pack_pattern(p.numpy(), info.kind), t.codes[j]), f"layer {j}"


def test_a_state_dict_that_does_not_fit_names_the_keys(models, tmp_path):
    f, mod = models
    torch.save(mod.LeNet5(num_classes=7).state_dict(), tmp_path / "lenet.pt")
    with using_model(parse_model_ref(f"{f}:LeNet5", None, [1, 28, 28])), pytest.raises(ArchitectureError, match=r"mis-shaped: fc3\.weight \(7, 84\)"):
        load_checkpoint(tmp_path / "lenet.pt")
    sd = mod.LeNet5().state_dict()
    sd["extra.weight"] = sd.pop("fc2.weight")
    torch.save(sd, tmp_path / "bad.pt")
    with (
        using_model(parse_model_ref(f"{f}:LeNet5", None, [1, 28, 28])),
        pytest.raises(ArchitectureError, match=r"missing: fc2\.weight; unexpected: extra\.weight"),
    ):
        load_checkpoint(tmp_path / "bad.pt")


def test_the_cli_takes_model_and_says_it_imports_the_file(models, tmp_path, capsys):
    from app.cli.main import main

    f, mod = models
    torch.save(mod.LeNet5().state_dict(), tmp_path / "lenet.pt")
    assert main(["info", str(tmp_path / "lenet.pt"), "--model", f"{f}:LeNet5", "--input-shape", "1", "28", "28"]) == 0
    out = capsys.readouterr()
    assert "its code runs" in out.err and "conv2d 1->6" in out.out
    for extra, says in (
        (["--model", f"{f}:LeNet"], "has no class LeNet; it defines LeNet5, SmallVGG"),
        (["--model", f"{f}:LeNet5"], "--input-shape C H W"),
        (["--model", f"{f}:LeNet5", "--model-kwargs", "{num_classes: 3}"], "--model-kwargs is not JSON"),
        (["--model", "models.py"], "write FILE.py:CLASS"),
        (["--input-shape", "1", "28", "28"], "go with --model"),
    ):
        assert main(["info", str(tmp_path / "lenet.pt"), *extra]) == 2
        err = capsys.readouterr().err
        assert says in err and "Traceback" not in err, err


def test_a_run_folder_and_a_run_json_model_entry(models, tmp_path):
    """A folder of epoch_*.pt state dicts opens with --model; run.json can name the class itself, which
    imports code and so needs trust."""
    import json

    from geometry.errors import UnsafePickleError
    from geometry.networks.runs import open_run

    f, mod = models
    run = tmp_path / "run"
    run.mkdir()
    nets = []
    for e in (0, 1, 2):
        torch.manual_seed(e)
        nets.append(mod.LeNet5(num_classes=3).eval())
        torch.save(nets[-1].state_dict(), run / f"epoch_{e:04d}.pt")
    x = torch.rand(4, 1, 28, 28)
    with using_model(parse_model_ref(f"{f}:LeNet5", '{"num_classes": 3}', [1, 28, 28])):
        r = open_run(run)
    assert r.epochs == [0, 1, 2]
    with torch.no_grad():  # read later, outside the context: the run keeps its class
        np.testing.assert_allclose(r.network(2)(x.reshape(4, -1)).numpy(), nets[2](x).numpy(), atol=1e-5)
    (run / "models.py").write_text(f.read_text())
    manifest = {
        "format": "splineatlas-run/1",
        "model": {"file": "models.py", "class": "LeNet5", "kwargs": {"num_classes": 3}, "input_shape": [1, 28, 28]},
        "checkpoints": [{"path": f"epoch_{e:04d}.pt", "epoch": e} for e in (0, 1, 2)],
    }
    (run / "run.json").write_text(json.dumps(manifest))
    with pytest.raises(UnsafePickleError, match="importing it runs its code"):
        open_run(run)
    r = open_run(run, trust_code=True)
    with torch.no_grad():
        np.testing.assert_allclose(r.network(1)(x.reshape(4, -1)).numpy(), nets[1](x).numpy(), atol=1e-5)
    manifest["model"]["file"] = "../models.py"
    (run / "run.json").write_text(json.dumps(manifest))
    with pytest.raises(Exception, match=r"\.\."):
        open_run(run, trust_code=True)
