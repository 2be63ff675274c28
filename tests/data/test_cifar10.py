"""CIFAR-10 loader: the offline copy's counts, layout and pixel order; clear errors otherwise.

The data tests need ``$FEDKIT_DATA`` (a folder holding ``cifar-10-batches-py/``) and are
skipped without it; nothing here downloads.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from fedkit.data import DatasetNotFoundError, default_data_dir, load_cifar10


@pytest.fixture(scope="module")
def cifar(cifar10_dir):
    return load_cifar10(cifar10_dir, download=False)


def test_counts_shapes_and_dtypes(cifar):
    train, test = cifar
    assert train.x.shape == (50_000, 3, 32, 32) and test.x.shape == (10_000, 3, 32, 32)
    assert train.x.dtype == test.x.dtype == torch.uint8
    assert train.y.dtype == test.y.dtype == torch.int64
    assert train.num_classes == test.num_classes == 10
    assert train.input_shape == (3, 32, 32)
    np.testing.assert_array_equal(torch.bincount(train.y, minlength=10).numpy(), 5_000)
    np.testing.assert_array_equal(torch.bincount(test.y, minlength=10).numpy(), 1_000)
    assert int(train.y.min()) == 0 and int(train.y.max()) == 9


def test_channels_are_r_g_b_planes(cifar):
    # known per-channel train means (Krizhevsky's data: 0.4914, 0.4822, 0.4465; the JPEG copy
    # 0.4913, 0.4821, 0.4465): a wrong reshape (e.g. HWC) would mix the three
    pixels = cifar[0].x.numpy()
    means = [pixels[:, c].mean(dtype=np.float64) / 255 for c in range(3)]
    np.testing.assert_allclose(means, [0.4914, 0.4822, 0.4465], atol=0.002)


def test_features_normalise_to_minus_one_one(cifar):
    train = cifar[0]
    index = torch.tensor([0, 17, 49_999])
    features = train.features(index)
    assert features.dtype == torch.float32 and features.shape == (3, 3, 32, 32)
    expected = (train.x[index].to(torch.float64) / 255 - 0.5) / 0.5
    torch.testing.assert_close(features.to(torch.float64), expected, rtol=0, atol=1e-6)
    assert features.min() >= -1 and features.max() <= 1


def test_loaded_once_per_folder(cifar10_dir, cifar):
    again = load_cifar10(str(cifar10_dir), download=False)
    assert again[0] is cifar[0] and again[1] is cifar[1]


def test_missing_folder_names_where_it_looked_and_how_to_fix(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        load_cifar10(tmp_path / "nowhere", download=False)
    message = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    assert str(tmp_path / "nowhere" / "cifar-10-batches-py") in message
    for hint in ("is missing", "download=False", "data_batch_1..data_batch_5, test_batch",
                 "FEDKIT_DATA", "--data-dir", "make test",
                 "python ../shared/data/cifar10/build.py OUT_ROOT"):
        assert hint in message


def test_incomplete_folder_lists_the_missing_files(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "data_batch_1").write_bytes(b"")
    with pytest.raises(DatasetNotFoundError, match="lacks data_batch_2, .*, test_batch"):
        load_cifar10(tmp_path, download=False)


def test_malformed_batch_is_rejected(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    bad = {"data": np.zeros((2, 100), dtype=np.uint8), "labels": [0, 1]}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with (folder / name).open("wb") as f:
            pickle.dump(bad, f)
    with pytest.raises(ValueError, match=r"data_batch_1: 'data' has dtype uint8 and shape "
                                         r"\(2, 100\), expected uint8 N x 3072"):
        load_cifar10(tmp_path, download=False)


def test_default_data_dir_order(monkeypatch, tmp_path):
    monkeypatch.setenv("FEDKIT_DATA", str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_data_dir() == tmp_path / "explicit"
    monkeypatch.setenv("FEDKIT_DATA", "")
    assert default_data_dir() == tmp_path / "xdg" / "fedkit"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_data_dir() == Path(tmp_path / "home" / ".cache" / "fedkit")
