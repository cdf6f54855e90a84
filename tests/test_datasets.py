"""Datasets: built-ins are deterministic and well-formed; .npz problems get clear errors."""

import numpy as np
import pytest

from geometry.networks.datasets import BUILTIN, REGRESSION_BUILTIN, builtin_dataset, dataset_from_reference, load_npz
from geometry.errors import DatasetError


@pytest.mark.parametrize("name", [n for n in BUILTIN if n not in REGRESSION_BUILTIN])
def test_builtins_are_deterministic_and_labelled(name):
    a, b = builtin_dataset(name, seed=3), builtin_dataset(name, seed=3)
    assert np.array_equal(a.X_train, b.X_train) and np.array_equal(a.y_test, b.y_test)
    assert a.X_train.dtype == np.float32 and a.y_train.dtype == np.int64
    assert set(np.unique(a.y_train)) == set(range(a.num_classes))
    assert np.array_equal(dataset_from_reference(a.reference).X_train, a.X_train)


@pytest.mark.parametrize("name", REGRESSION_BUILTIN)
def test_regression_builtins_are_deterministic_float_targets(name):
    a, b = builtin_dataset(name, seed=3), builtin_dataset(name, seed=3)
    assert a.task == "regress" and a.class_names == [] and a.y_train.dtype == np.float32
    assert np.array_equal(a.y_train, b.y_train) and len(np.unique(a.y_train)) == len(a.y_train)
    assert np.array_equal(dataset_from_reference(a.reference, task="regress").y_train, a.y_train)
    with pytest.raises(DatasetError, match="regress"):
        dataset_from_reference(a.reference)  # a classifier run naming a regression set


def test_spirals_arms_and_digits_shape():
    assert builtin_dataset("spirals", arms=5).num_classes == 5
    d = builtin_dataset("digits")
    assert d.image_shape == (1, 8, 8) and d.dim == 64 and 0 <= d.X_train.min() and d.X_train.max() <= 1


def test_npz_roundtrip_and_errors(tmp_path):
    X = np.random.default_rng(0).normal(size=(30, 1, 4, 4))
    np.savez(tmp_path / "ok.npz", X=X, y=np.arange(30) % 3, class_names=np.array(["a", "b", "c"]))
    d = load_npz(tmp_path / "ok.npz")
    assert d.image_shape == (1, 4, 4) and d.dim == 16 and d.class_names == ["a", "b", "c"]
    np.savez(tmp_path / "noy.npz", X=X)
    with pytest.raises(DatasetError, match="needs arrays 'X' and 'y'"):
        load_npz(tmp_path / "noy.npz")
    np.savez(tmp_path / "mismatch.npz", X=X, y=np.zeros(5))
    with pytest.raises(DatasetError, match="must match"):
        load_npz(tmp_path / "mismatch.npz")
    (tmp_path / "bad.npz").write_bytes(b"garbage")
    with pytest.raises(DatasetError, match="damaged archive"):
        load_npz(tmp_path / "bad.npz")
    Xn = X.copy()
    Xn[0, 0, 0, 0] = np.nan
    np.savez(tmp_path / "nan.npz", X=Xn, y=np.zeros(30))
    with pytest.raises(DatasetError, match="NaN"):
        load_npz(tmp_path / "nan.npz")
    with pytest.raises(DatasetError, match="does not exist"):
        load_npz(tmp_path / "missing.npz")


def test_dataset_network_mismatch_message():
    with pytest.raises(DatasetError, match="has 64 features per sample but the network takes 2"):
        builtin_dataset("digits").check_fits(2)
