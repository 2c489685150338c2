"""Tests for the CIFAR loader on tiny stand-in files, and its tfds guard."""

import pickle
import sys
import time
import types

import numpy as np
import pytest

from jcl.core.errors import ConfigError, DataError
from jcl.datasets import load_cifar


def _images(rng, n):
    """n HWC images; image 0 is pure red (R=200, G=B=0)."""
    x = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    x[0] = 0
    x[0, :, :, 0] = 200
    return x


def _as_rows(x):
    """HWC images -> the official [N, 3072] rows (R plane, G, B)."""
    return x.transpose(0, 3, 1, 2).reshape(len(x), 3072)


def _dump(path, data, label_key, labels):
    batch = {
        b"batch_label": b"stand-in",
        b"data": data,
        label_key: labels,
        b"filenames": [b"img%d.png" % i for i in range(len(labels))],
    }
    path.write_bytes(pickle.dumps(batch, protocol=2))


def _make_cifar10(root, n=4):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    xs, ys = [], []
    for i in range(1, 6):
        x, y = _images(rng, n), rng.integers(0, 10, size=n).tolist()
        _dump(folder / f"data_batch_{i}", _as_rows(x), b"labels", y)
        xs.append(x)
        ys += y
    tx, ty = _images(rng, n), rng.integers(0, 10, size=n).tolist()
    _dump(folder / "test_batch", _as_rows(tx), b"labels", ty)
    return folder, np.concatenate(xs), np.array(ys), tx, np.array(ty)


def _make_cifar100(root, n=(10, 6)):
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    out = []
    for name, count in zip(("train", "test"), n, strict=True):
        x = _images(rng, count)
        fine = rng.integers(0, 100, size=count)
        fine[-1] = 99
        batch = {
            b"data": _as_rows(x),
            b"fine_labels": fine.tolist(),
            b"coarse_labels": (fine // 5).tolist(),
        }
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
        out += [x, fine]
    return folder, *out


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    monkeypatch.delenv("JCL_CIFAR_DIR", raising=False)


@pytest.mark.parametrize("point_at", ["parent", "folder"])
def test_cifar10_local(tmp_path, point_at):
    folder, x, y, tx, ty = _make_cifar10(tmp_path)
    out = load_cifar("cifar10", tmp_path if point_at == "parent" else folder)
    assert out["train_x"].shape == (20, 32, 32, 3)
    assert out["test_x"].shape == (4, 32, 32, 3)
    assert out["train_x"].dtype == np.uint8
    np.testing.assert_array_equal(out["train_x"], x)
    np.testing.assert_array_equal(out["train_y"], y)
    np.testing.assert_array_equal(out["test_x"], tx)
    np.testing.assert_array_equal(out["test_y"], ty)
    # Channel layout: the red image is red in the last axis, not smeared.
    first = out["train_x"][0]
    assert (first[..., 0] == 200).all()
    assert (first[..., 1:] == 0).all()
    assert out["train_x"].flags.c_contiguous


def test_cifar100_local_fine_labels(tmp_path, monkeypatch):
    _, x, y, tx, ty = _make_cifar100(tmp_path)
    monkeypatch.setenv("JCL_CIFAR_DIR", str(tmp_path))
    out = load_cifar("cifar100")
    assert out["train_x"].shape == (10, 32, 32, 3)
    assert out["test_x"].shape == (6, 32, 32, 3)
    np.testing.assert_array_equal(out["train_x"], x)
    np.testing.assert_array_equal(out["train_y"], y)
    np.testing.assert_array_equal(out["test_x"], tx)
    np.testing.assert_array_equal(out["test_y"], ty)
    assert out["test_y"].max() == 99
    assert (out["test_x"][0][..., 0] == 200).all()


def test_str_keys_from_python2_files(tmp_path):
    # Real python-version files are Python 2 pickles: with latin-1
    # decoding their keys come back as str, not bytes.
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    rng = np.random.default_rng(3)
    for name in ("train", "test"):
        x = _images(rng, 3)
        batch = {"data": _as_rows(x), "fine_labels": [1, 2, 3]}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    out = load_cifar("cifar100", tmp_path)
    assert out["train_y"].tolist() == [1, 2, 3]


def test_missing_dir(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_cifar("cifar10", tmp_path / "absent")


def test_missing_batch_file(tmp_path):
    folder, *_ = _make_cifar10(tmp_path)
    (folder / "data_batch_4").unlink()
    with pytest.raises(DataError, match="data_batch_4"):
        load_cifar("cifar10", tmp_path)


def test_wrong_folder_contents(tmp_path):
    _make_cifar10(tmp_path)
    with pytest.raises(DataError, match="train"):
        load_cifar("cifar100", tmp_path)


def test_label_out_of_range(tmp_path):
    folder, *_ = _make_cifar10(tmp_path)
    rows = np.zeros((4, 3072), np.uint8)
    _dump(folder / "test_batch", rows, b"labels", [0, 1, 10, 2])
    with pytest.raises(DataError, match="labels range"):
        load_cifar("cifar10", tmp_path)


def test_bad_data_shape(tmp_path):
    folder, *_ = _make_cifar10(tmp_path)
    _dump(
        folder / "data_batch_2",
        np.zeros((4, 3000), np.uint8),
        b"labels",
        [0, 1, 2, 3],
    )
    with pytest.raises(DataError, match="data_batch_2"):
        load_cifar("cifar10", tmp_path)


def test_label_count_mismatch(tmp_path):
    folder, *_ = _make_cifar10(tmp_path)
    _dump(
        folder / "data_batch_1",
        np.zeros((4, 3072), np.uint8),
        b"labels",
        [0, 1, 2],
    )
    with pytest.raises(DataError, match="4 images but 3 labels"):
        load_cifar("cifar10", tmp_path)


def test_unknown_name():
    with pytest.raises(ConfigError, match="cifar"):
        load_cifar("cifar20", "/nonexistent")


def test_no_source_without_tfds():
    with pytest.raises(DataError) as info:
        load_cifar("cifar10", use_tfds=False)
    msg = str(info.value)
    assert "cannot be downloaded" in msg and "--data-dir" in msg


def test_tfds_not_installed_fails_fast(monkeypatch):
    # None in sys.modules makes the import fail, as when not installed.
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)
    start = time.monotonic()
    with pytest.raises(DataError) as info:
        load_cifar("cifar10")
    assert time.monotonic() - start < 5
    msg = str(info.value)
    assert "tensorflow_datasets is not installed" in msg
    assert "cannot be downloaded" in msg
    assert "--data-dir" in msg and "tfds" in msg


def _fake_tfds(calls, arrays=None):
    mod = types.ModuleType("tensorflow_datasets")

    def load(name, **kwargs):
        calls.append((name, kwargs))
        if arrays is None:
            raise AssertionError("tfds.load must not be called")
        return arrays

    mod.load = load
    mod.as_numpy = lambda tree: tree
    return mod


def test_tfds_not_prepared_never_calls_load(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", _fake_tfds(calls))
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    start = time.monotonic()
    with pytest.raises(DataError, match="no prepared copy"):
        load_cifar("cifar100")
    assert time.monotonic() - start < 5
    assert calls == []


def test_tfds_prepared_copy_is_used(tmp_path, monkeypatch):
    rng = np.random.default_rng(4)
    split = [
        {
            "image": rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8),
            "label": rng.integers(0, 10, n).astype(np.int64),
        }
        for n in (5, 2)
    ]
    calls = []
    monkeypatch.setitem(
        sys.modules, "tensorflow_datasets", _fake_tfds(calls, split)
    )
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
    info = tmp_path / "cifar10" / "3.0.2" / "dataset_info.json"
    info.parent.mkdir(parents=True)
    info.write_text("{}")
    out = load_cifar("cifar10")
    np.testing.assert_array_equal(out["train_x"], split[0]["image"])
    np.testing.assert_array_equal(out["test_y"], split[1]["label"])
    ((name, kwargs),) = calls
    assert name == "cifar10"
    assert kwargs["download"] is False
    assert kwargs["batch_size"] == -1
    assert kwargs["data_dir"] == str(tmp_path)
