"""Tests for the IDX reader and the Fashion-MNIST loader."""

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from jcl.core.errors import DataError
from jcl.datasets import fashion as fashion_mod
from jcl.datasets import load_fashion_mnist, read_idx
from jcl.datasets._common import array_sha256

_CODES = {
    np.dtype(np.uint8): 0x08,
    np.dtype(np.int8): 0x09,
    np.dtype(np.int16): 0x0B,
    np.dtype(np.int32): 0x0C,
    np.dtype(np.float32): 0x0D,
    np.dtype(np.float64): 0x0E,
}


def _idx_bytes(array):
    header = bytes([0, 0, _CODES[array.dtype], array.ndim])
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def _write(path, array, *, gz):
    data = _idx_bytes(array)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize(
    "dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]
)
def test_round_trip(tmp_path, gz, dtype):
    rng = np.random.default_rng(1)
    array = (rng.normal(size=(3, 4, 5)) * 50).astype(dtype)
    out = read_idx(_write(tmp_path / "a.idx", array, gz=gz))
    assert out.dtype == np.dtype(dtype)
    assert out.shape == (3, 4, 5)
    assert out.flags.writeable
    np.testing.assert_array_equal(out, array)


def test_bad_magic(tmp_path):
    data = bytearray(_idx_bytes(np.zeros((2, 2), np.uint8)))
    data[0] = 1
    path = tmp_path / "bad-magic"
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match="magic") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_bad_type_code(tmp_path):
    data = bytearray(_idx_bytes(np.zeros((2, 2), np.uint8)))
    data[2] = 0x42
    path = tmp_path / "bad-type"
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match="type code"):
        read_idx(path)


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_truncated(tmp_path, gz):
    data = _idx_bytes(np.arange(100, dtype=np.uint8).reshape(10, 10))
    path = tmp_path / "short"
    cut = data[:-7]
    path.write_bytes(gzip.compress(cut) if gz else cut)
    with pytest.raises(DataError, match="truncated") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_truncated_gzip_stream(tmp_path):
    data = gzip.compress(_idx_bytes(np.arange(1000, dtype=np.uint8)))
    path = tmp_path / "short.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="short.gz"):
        read_idx(path)


def test_trailing_bytes(tmp_path):
    data = _idx_bytes(np.zeros(4, np.uint8)) + b"\0"
    path = tmp_path / "long"
    path.write_bytes(data)
    with pytest.raises(DataError, match="holds 5 bytes"):
        read_idx(path)


def test_header_shorter_than_dims(tmp_path):
    path = tmp_path / "stub"
    path.write_bytes(bytes([0, 0, 8, 3, 0, 0]))
    with pytest.raises(DataError, match="header"):
        read_idx(path)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="nope"):
        read_idx(tmp_path / "nope")


def _small_fashion(folder, *, gz=True, n=(7, 3)):
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(2)
    arrays = {}
    for split, count in zip(("train", "test"), n, strict=True):
        arrays[f"{split}_x"] = rng.integers(
            0, 256, size=(count, 28, 28), dtype=np.uint8
        )
        arrays[f"{split}_y"] = rng.integers(0, 10, size=count, dtype=np.uint8)
    for key, stem in fashion_mod.FILES.items():
        name = stem + ".gz" if gz else stem
        _write(folder / name, arrays[key], gz=gz)
    return arrays


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_fashion_small_files(tmp_path, gz):
    arrays = _small_fashion(tmp_path / "f", gz=gz)
    out = load_fashion_mnist(tmp_path / "f", verify=False)
    for key, want in arrays.items():
        assert out[key].dtype == np.uint8
        np.testing.assert_array_equal(out[key], want)
    # Verification is on by default and these are not the real files.
    with pytest.raises(DataError, match="checksum"):
        load_fashion_mnist(tmp_path / "f")


def test_fashion_env_var(tmp_path, monkeypatch):
    arrays = _small_fashion(tmp_path / "f")
    monkeypatch.setenv("JCL_FASHION_DIR", str(tmp_path / "f"))
    out = load_fashion_mnist(verify=False)
    np.testing.assert_array_equal(out["test_y"], arrays["test_y"])


def test_fashion_missing_dir(tmp_path):
    with pytest.raises(DataError) as info:
        load_fashion_mnist(tmp_path / "absent")
    msg = str(info.value)
    assert str(tmp_path / "absent") in msg
    assert "apt-get install dataset-fashion-mnist" in msg
    assert "--data-dir" in msg


def test_fashion_missing_file(tmp_path):
    _small_fashion(tmp_path / "f")
    (tmp_path / "f" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError) as info:
        load_fashion_mnist(tmp_path / "f", verify=False)
    assert "t10k-labels-idx1-ubyte" in str(info.value)
    assert "apt-get install dataset-fashion-mnist" in str(info.value)


def test_fashion_label_count_mismatch(tmp_path):
    _small_fashion(tmp_path / "f")
    _write(
        tmp_path / "f" / "train-labels-idx1-ubyte.gz",
        np.zeros(6, np.uint8),
        gz=True,
    )
    with pytest.raises(DataError, match="labels have shape"):
        load_fashion_mnist(tmp_path / "f", verify=False)


def test_real_fashion_mnist():
    """The Debian package's files load and match their checksums."""
    folder = Path(fashion_mod.DEFAULT_DIR)
    assert folder.is_dir(), (
        f"{folder} is missing: apt-get install dataset-fashion-mnist"
    )
    out = load_fashion_mnist(folder)
    assert out["train_x"].shape == (60000, 28, 28)
    assert out["train_y"].shape == (60000,)
    assert out["test_x"].shape == (10000, 28, 28)
    assert out["test_y"].shape == (10000,)
    assert np.bincount(out["train_y"]).tolist() == [6000] * 10
    assert np.bincount(out["test_y"]).tolist() == [1000] * 10
    for key, digest in fashion_mod.ARRAY_SHA256.items():
        assert array_sha256(out[key]) == digest
