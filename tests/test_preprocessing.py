"""Preprocessing (resize, per-channel mean/std): slices live in the network's normalised input space, the
files hold raw pixels, run.json records the preprocessing once, and pictures are de-normalised."""

from __future__ import annotations

import json

import numpy as np
import pytest

from app.cli.main import main
from app.render.images import display_images
from geometry.errors import DatasetError
from geometry.networks.dataset_files import load_image_folder
from geometry.networks.preprocessing import Preprocessing, parse_preprocessing
from geometry.networks.runs import open_run
from geometry.networks.training import scores

MEAN, STD = [0.2, 0.5, 0.7], [0.1, 0.25, 0.4]


def _rgb_folder(root, sizes=((10, 12), (12, 12))):
    """Two classes of RGB images (red-ish vs blue-ish), in mixed sizes."""
    import imageio.v3 as iio

    rng = np.random.default_rng(4)
    for c, tint in (("red", (200, 40, 40)), ("blue", (40, 40, 200))):
        (root / c).mkdir(parents=True)
        for i in range(10):
            h, w = sizes[i % len(sizes)]
            img = np.clip(rng.normal(tint, 25, (h, w, 3)), 0, 255).astype(np.uint8)
            iio.imwrite(root / c / f"{i}.png", img)
    return root


@pytest.mark.parametrize(
    "text, match",
    [
        ("{not json", "not JSON"),
        ('{"std": [0.0]}', "field std"),
        ('{"mean": [0.5], "scale": 2}', "field scale"),
        ('{"resize": [32]}', "field resize"),
        ('{"mean": [1, 2], "std": [1, 2, 3]}', "std has 3 values but mean has 2"),
    ],
)
def test_a_bad_preprocessing_spec_is_one_line_naming_the_field(text, match):
    with pytest.raises(DatasetError, match=match):
        parse_preprocessing(text)


def test_normalising_and_de_normalising_are_inverse_per_channel():
    prep = Preprocessing(tuple(MEAN), tuple(STD))
    raw = np.random.default_rng(0).uniform(0, 1, (5, 3 * 4 * 4)).astype(np.float32)
    z = prep.to_network(raw, (3, 4, 4))
    np.testing.assert_allclose(z.reshape(5, 3, 16)[:, 1], (raw.reshape(5, 3, 16)[:, 1] - 0.5) / 0.25, rtol=1e-6)
    np.testing.assert_allclose(prep.to_pixels(z, (3, 4, 4)), raw, atol=1e-6)
    with pytest.raises(DatasetError, match="mean has 3 values but the data has 1 channel"):
        prep.to_network(raw[:, :16], (1, 4, 4))


def test_mixed_size_images_need_resize_and_say_so(tmp_path):
    folder = _rgb_folder(tmp_path / "imgs")
    with pytest.raises(DatasetError, match=r"resize them to one size \(--preprocess"):
        load_image_folder(folder)
    ds = load_image_folder(folder, resize=(8, 8))
    assert ds.image_shape == (3, 8, 8) and 0 <= ds.X_train.min() and ds.X_train.max() <= 1


def test_a_run_trained_with_preprocessing_reopens_in_the_same_input_space(tmp_path, capsys):
    folder = _rgb_folder(tmp_path / "imgs")
    spec = json.dumps({"mean": MEAN, "std": STD, "resize": [8, 8]})
    out = tmp_path / "run"
    assert main(["train", "--dataset", str(folder), "--arch", "192-16-2", "--epochs", "3", "--out", str(out), "--preprocess", spec]) == 0
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["preprocessing"] == {"mean": MEAN, "std": STD, "resize": [8, 8]}
    stored = np.load(out / "dataset.npz")
    assert 0 <= stored["X"].min() and stored["X"].max() <= 1  # the file holds pixels, not normalised values
    run = open_run(out)
    ds = run.dataset
    raw = load_image_folder(folder, resize=(8, 8))
    expect = (raw.X_train.reshape(-1, 3, 64) - np.array(MEAN)[:, None]) / np.array(STD)[:, None]
    np.testing.assert_allclose(ds.X_train.reshape(-1, 3, 64), expect, atol=1e-5)  # normalised once, not twice
    # the accuracy recorded while training (on normalised inputs) is what the reopened run measures
    got = scores(run.network(len(run) - 1, at_level=False), ds)
    assert got["test_accuracy"] == pytest.approx(manifest["checkpoints"][-1]["test_accuracy"], abs=1e-6)
    # pictures show the pixels that were read: de-normalised, channels last
    shown = display_images(ds.X_train[:4], ds.image_shape, ds.preprocessing)
    assert shown.rgb and shown.images.shape == (4, 8, 8, 3)
    np.testing.assert_allclose(shown.images, np.moveaxis(raw.X_train[:4].reshape(4, 3, 8, 8), 1, -1), atol=1e-5)
    capsys.readouterr()
    assert main(["info", str(out), "--no-accuracy"]) == 0
    assert main(["info", str(out), "--dataset", str(folder)]) == 0
    text = capsys.readouterr().out
    assert '"resize": [8, 8]' in text and "test acc" in text


def test_a_bad_preprocessing_in_run_json_names_the_file_and_field(tmp_path):
    folder = _rgb_folder(tmp_path / "imgs", sizes=((8, 8),))
    out = tmp_path / "run"
    assert main(["train", "--dataset", str(folder), "--arch", "192-4-2", "--epochs", "1", "--out", str(out)]) == 0
    manifest = json.loads((out / "run.json").read_text())
    manifest["preprocessing"] = {"mean": [0.5], "std": [-1.0]}
    (out / "run.json").write_text(json.dumps(manifest))
    with pytest.raises(Exception, match=r"run\.json.*preprocessing\.std"):
        open_run(out)
