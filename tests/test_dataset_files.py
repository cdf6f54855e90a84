"""Datasets researchers have (#16): a CSV table, an X.npy/y.npy pair and an ImageFolder tree open as
datasets, train a run that keeps them inside its folder, and bad files get one line."""

from __future__ import annotations

import json

import numpy as np
import pytest

from geometry.errors import DatasetError
from geometry.networks.dataset_files import load_csv, load_dataset_file, load_image_folder, load_npy_pair


def test_csv_with_named_classes(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 3))
    names = np.where(X[:, 0] > 0, "cat", "dog")
    lines = ["a,b,species,c"] + [f"{x[0]:.6f},{x[1]:.6f},{n},{x[2]:.6f}" for x, n in zip(X, names)]
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match=r"only the label column \('c'\)"):  # no column named label: the last is
        load_csv(tmp_path / "t.csv")
    (tmp_path / "t.csv").write_text("\n".join(lines).replace("species", "label") + "\n")
    ds = load_csv(tmp_path / "t.csv")
    assert ds.dim == 3 and ds.class_names == ["cat", "dog"]
    allX = np.concatenate([ds.X_train, ds.X_test])
    ally = np.concatenate([ds.y_train, ds.y_test])
    for x, y in zip(allX, ally):  # the rows, split: every row keeps its own label
        i = int(np.argmin(np.abs(X[:, [0, 1, 2]] - x).sum(1)))
        assert ds.class_names[y] == names[i]
    (tmp_path / "bad.csv").write_text("a,label\n1,0\nx,1\n")
    with pytest.raises(DatasetError, match="not numeric"):
        load_csv(tmp_path / "bad.csv")
    (tmp_path / "float.csv").write_text("a,label\n1,0.5\n2,1\n")
    with pytest.raises(DatasetError, match="non-integer"):
        load_csv(tmp_path / "float.csv")


def test_npy_pair_keeps_the_image_shape(tmp_path):
    rng = np.random.default_rng(1)
    np.save(tmp_path / "X.npy", rng.uniform(size=(40, 1, 4, 4)).astype(np.float32))
    np.save(tmp_path / "y.npy", rng.integers(0, 3, 40))
    ds = load_npy_pair(tmp_path / "X.npy")
    assert ds.dim == 16 and ds.image_shape == (1, 4, 4) and len(ds.X_train) + len(ds.X_test) == 40
    np.save(tmp_path / "y.npy", np.array([{"a": 1}] * 40, dtype=object), allow_pickle=True)
    with pytest.raises(DatasetError, match="not a plain .npy"):
        load_npy_pair(tmp_path / "X.npy")


def test_image_folder_trains_a_self_contained_run(tmp_path):
    import imageio.v3 as iio

    from geometry.networks.runs import open_run
    from geometry.networks.spec import mlp_spec
    from geometry.networks.training import train_run

    rng = np.random.default_rng(2)
    for c, level in (("dark", 40), ("light", 200)):
        (tmp_path / "imgs" / c).mkdir(parents=True)
        for i in range(12):
            iio.imwrite(tmp_path / "imgs" / c / f"{i}.png", np.clip(rng.normal(level, 20, (6, 6)), 0, 255).astype(np.uint8))
    ds = load_dataset_file(tmp_path / "imgs")
    assert ds.class_names == ["dark", "light"] and ds.image_shape == (1, 6, 6) and 0 <= ds.X_train.min() and ds.X_train.max() <= 1
    run = train_run(ds, mlp_spec([36, 8, 2]), tmp_path / "run", epochs=2, save_epochs=[2], lr=0.05, seed=0)
    manifest = json.loads(run.read_text())
    assert manifest["dataset"]["npz"] == "dataset.npz" and (tmp_path / "run" / "dataset.npz").exists()
    r = open_run(run)
    np.testing.assert_array_equal(r.dataset.X_test, ds.X_test)
    assert r.dataset.class_names == ["dark", "light"] and r.dataset.image_shape == (1, 6, 6)
    (tmp_path / "imgs" / "light" / "odd.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(DatasetError, match="odd.png is not a readable image"):
        load_image_folder(tmp_path / "imgs")
