"""The zoo of #16 opens in every form researchers save it in, and what opens is exactly the network:
LeNet-5, a VGG-style net, a ResNet-18-style net (torchvision's stem with a padded max-pool, projection
shortcuts, adaptive pooling), a DenseNet block (concatenation), a U-net (ConvTranspose2d, skip
concatenations) and an MLP with BatchNorm1d, Dropout, LeakyReLU and a scaling. Each is saved as a
state dict, safetensors and a Lightning checkpoint (all with --model), ONNX and a torch.export archive.

Truths: torch's own forward pass of the class (and ONNX Runtime's of the .onnx file), and the forward
pass's activation pattern at every tile of a tessellated 2D slice."""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from geometry.networks.checkpoints import load_checkpoint
from geometry.networks.runs import open_run
from geometry.networks.user_model import parse_model_ref, using_model
from geometry.slices import Slice
from geometry.tessellation import tessellate
from tests.zoo_models import ZOO, assert_tiles_match_the_forward_pass, build

MODELS = Path(__file__).with_name("zoo_models.py")
FORMS = ("state_dict", "safetensors", "lightning", "onnx", "pt2")


def _ref(cls: str):
    shape, kwargs = ZOO[cls]
    return parse_model_ref(f"{MODELS}:{cls}", json.dumps(kwargs), shape)


def _save(m, cls: str, form: str, folder: Path) -> tuple[Path, bool]:
    """The file of ``m`` in ``form`` and whether opening it needs --model (weights without architecture)."""
    shape = ZOO[cls][0]
    state = m.state_dict()
    if form == "state_dict":
        torch.save(state, folder / "model.pt")
        return folder / "model.pt", True
    if form == "safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, folder / "model.safetensors")
        return folder / "model.safetensors", True
    if form == "lightning":  # a trainer checkpoint: nested state dict with a prefix, hyper-parameters as a Namespace
        ckpt = {"epoch": 3, "global_step": 120, "state_dict": {f"model.{k}": v for k, v in state.items()}, "hyper_parameters": argparse.Namespace(lr=0.1)}
        torch.save(ckpt, folder / "epoch=3-step=120.ckpt")
        return folder / "epoch=3-step=120.ckpt", True
    x = torch.randn(2, *shape)
    if form == "onnx":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(m, (x,), str(folder / "model.onnx"), dynamo=False)
        return folder / "model.onnx", False
    torch.export.save(torch.export.export(m, (x,)), folder / "model.pt2")
    return folder / "model.pt2", False


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("cls", list(ZOO))
def test_every_zoo_model_opens_in_every_form_and_computes_what_torch_computes(tmp_path, cls, form):
    if form == "onnx":
        pytest.importorskip("onnx")
    m = build(cls)
    path, needs_model = _save(m, cls, form, tmp_path)
    with using_model(_ref(cls) if needs_model else None):
        net = load_checkpoint(path)
    x = torch.randn(16, *ZOO[cls][0])
    with torch.no_grad():
        want = m(x)
        got = net(x.reshape(16, -1))
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-5 * float(want.abs().max()))
    if form == "onnx":
        ort = pytest.importorskip("onnxruntime")
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        x2 = x[:2].numpy()  # exported with a batch of 2
        (theirs,) = session.run(None, {session.get_inputs()[0].name: x2})
        with torch.no_grad():
            ours = net(torch.as_tensor(x2).reshape(2, -1)).numpy()
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5 * float(np.abs(theirs).max()))


# half-width of the square domain in input units (the slice basis is orthonormal): wide enough for well over 10 tiles,
# small enough that a CNN with thousands of units per layer stays a quick test
DOMAIN_HALF_WIDTH = {"LeNet5": 0.05, "SmallVGG": 0.25, "ResNet18ish": 0.25, "DenseNetish": 0.25, "UNetish": 0.25, "MLP": 1.0}


@pytest.mark.parametrize("cls", list(ZOO))
def test_every_zoo_model_tessellates_with_every_tiles_pattern_equal_to_the_forward_pass(tmp_path, cls):
    m = build(cls)
    path, _ = _save(m, cls, "state_dict", tmp_path)
    with using_model(_ref(cls)):
        net = load_checkpoint(path)
    d = net.input_dim
    rng = np.random.default_rng(3)
    origin = rng.uniform(0, 1, d) if len(ZOO[cls][0]) > 1 else np.zeros(d)
    sl = Slice.from_directions(origin, rng.normal(size=(2, d)))
    t = tessellate(net, sl, DOMAIN_HALF_WIDTH[cls] * np.array([-1.0, 1.0, -1.0, 1.0]))
    assert 10 < t.num_regions < 50_000, t.num_regions
    assert_tiles_match_the_forward_pass(net, sl, t)


def test_a_hugging_face_style_folder_and_trainer_output_dir_open_with_model(tmp_path):
    """``save_pretrained`` writes model.safetensors + config.json (the constructor's settings); a Trainer
    writes checkpoint-500/, checkpoint-1000/: a run over steps."""
    from safetensors.torch import save_file

    out = tmp_path / "output_dir"
    nets = {}
    for step in (500, 1000):
        m = build("MLP", seed=step)
        folder = out / f"checkpoint-{step}"
        folder.mkdir(parents=True)
        save_file(m.state_dict(), folder / "model.safetensors")
        (folder / "config.json").write_text(json.dumps({"num_classes": 3, "architectures": ["MLP"], "model_type": "mlp"}))
        nets[step] = m
    bare = parse_model_ref(f"{MODELS}:MLP")  # no --model-kwargs: config.json gives them
    with using_model(bare):
        run = open_run(out)
        single = open_run(out / "checkpoint-1000")
    assert run.epochs == [500, 1000] and single.name == "checkpoint-1000"
    x = torch.randn(8, 2)
    with torch.no_grad():
        np.testing.assert_allclose(run.network(1)(x).numpy(), nets[1000](x).numpy(), atol=1e-6)
        np.testing.assert_allclose(single.network(0)(x).numpy(), nets[1000](x).numpy(), atol=1e-6)


@pytest.mark.gui
def test_the_apps_open_with_model_dialog_opens_a_state_dict_with_the_users_class(qtbot, make_window, tmp_path):
    """File > Open with your model class…: the app's twin of --model, parsed by the CLI's own parser."""
    pytest.importorskip("pytestqt")
    from app.qt.dialogs import OpenWithModelDialog

    m = build("SmallVGG")
    path, _ = _save(m, "SmallVGG", "state_dict", tmp_path)
    win = make_window(str(tmp_path / "missing.json"))  # nothing open: the dialog is the way in
    qtbot.waitUntil(lambda: not win.work.busy(), timeout=30_000)
    dlg = OpenWithModelDialog(win, str(tmp_path))
    dlg.path.setText(str(path))
    dlg.model_file.setText(str(MODELS))
    dlg.cls.setText("SmallVGG")
    dlg.shape.setText("3, 16, 16")
    dlg.kwargs.setText("{num_classes: 5}")  # not JSON: the CLI's message, and nothing is opened
    with pytest.raises(Exception, match="--model-kwargs is not JSON"):
        dlg.model_ref()
    dlg.kwargs.setText(json.dumps(ZOO["SmallVGG"][1]))
    win.controller.open_path(dlg.path.text(), model=dlg.model_ref())
    qtbot.waitUntil(lambda: win.bundle is not None and win.tess is not None and not win.work.busy(), timeout=60_000)
    net = win.bundle.network(0)
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        np.testing.assert_allclose(net(x.reshape(4, -1)).numpy(), m(x).numpy(), atol=1e-5)


def test_a_torch_export_archive_under_another_suffix_is_read_as_one(tmp_path):
    m = build("MLP")
    path, _ = _save(m, "MLP", "pt2", tmp_path)
    renamed = path.rename(tmp_path / "model.pt")  # the bytes decide, not the suffix
    net = load_checkpoint(renamed)
    assert net.spec is not None
    x = torch.randn(8, *ZOO["MLP"][0])
    with torch.no_grad():
        np.testing.assert_allclose(net(x.reshape(8, -1)).numpy(), m(x).numpy(), atol=1e-5)
