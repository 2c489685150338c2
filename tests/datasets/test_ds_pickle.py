"""Tests for the restricted unpickler."""

import io
import os
import pickle

import numpy as np
import pytest

from jcl.core.errors import DataError
from jcl.datasets import safe_load


def _load(data, name="test.pkl"):
    return safe_load(io.BytesIO(data), name=name)


def test_loads_protocol2_numpy_arrays():
    arrays = (
        np.arange(12, dtype=np.float32).reshape(3, 4) / 256,
        np.array([3, 1, 4], dtype=np.int64),
        np.array([1.5, -2.0], dtype=">f8"),
    )
    out = _load(pickle.dumps(arrays, protocol=2))
    assert isinstance(out, tuple) and len(out) == 3
    for got, want in zip(out, arrays, strict=True):
        assert got.dtype == want.dtype.newbyteorder("=")
        np.testing.assert_array_equal(got, want)


def test_loads_cifar_style_dict_with_bytes_keys():
    batch = {
        b"data": np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3072),
        b"labels": [7, 2],
        b"batch_label": b"training batch 1 of 5",
        b"empty": b"",
        b"filenames": [b"a.png", b"b.png"],
        "meta": ("x", 1.5, None, True),
    }
    out = _load(pickle.dumps(batch, protocol=2))
    assert set(out) == set(batch)
    np.testing.assert_array_equal(out[b"data"], batch[b"data"])
    assert out[b"labels"] == [7, 2]
    assert out[b"batch_label"] == b"training batch 1 of 5"
    assert out[b"empty"] == b""
    assert out["meta"] == ("x", 1.5, None, True)


def test_accepts_numpy1_module_name():
    # Pickles written by numpy < 2 (like the MNIST file) name
    # numpy.core.multiarray; protocol 2 spells globals out as text.
    data = pickle.dumps(np.arange(5, dtype=np.uint8), protocol=2)
    if b"numpy._core.multiarray" in data:
        data = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"cnumpy.core.multiarray\n_reconstruct\n" in data
    np.testing.assert_array_equal(_load(data), np.arange(5, dtype=np.uint8))


class _RunsShell:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_refuses_os_system_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    data = pickle.dumps(_RunsShell(f"touch {marker}"), protocol=2)
    with pytest.raises(DataError) as info:
        _load(data, name="evil.pkl")
    assert "evil.pkl" in str(info.value)
    assert "system" in str(info.value)
    assert not marker.exists()
    # The payload is live: an ordinary unpickler does run it.
    pickle.loads(data)
    assert marker.exists()


@pytest.mark.parametrize(
    "payload",
    [eval, getattr, np.load, pickle.loads, os.remove],
    ids=lambda f: f.__name__,
)
def test_refuses_other_globals(payload):
    with pytest.raises(DataError, match="refusing to unpickle"):
        _load(pickle.dumps(payload, protocol=2), name="x.pkl")


def test_refuses_codecs_encode_with_other_codec():
    import codecs

    class Rot13:
        def __reduce__(self):
            return (codecs.encode, ("abc", "rot13"))

    with pytest.raises(DataError, match="x.pkl"):
        _load(pickle.dumps(Rot13(), protocol=2), name="x.pkl")


def test_truncated_pickle_is_data_error():
    data = pickle.dumps(np.zeros(100, dtype=np.uint8), protocol=2)
    with pytest.raises(DataError, match="short.pkl"):
        _load(data[: len(data) // 2], name="short.pkl")
