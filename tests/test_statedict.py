"""Tests for jcl.weights.statedict: torch zip archives, safetensors and
.npz files.

The ``.pth`` fixtures were written by torch 2.13 with
``tests/fixtures/make_statedict_fixtures.py`` (run by hand); the expected
values beside them come from torch's own ``.numpy()``. Torch is not needed
here: the broken and hostile files are built byte by byte below.
"""

import json
import os
import pickle
import struct
import zipfile

import ml_dtypes
import numpy as np
import pytest

from jcl.core.errors import DataError
from jcl.weights.statedict import load_state_dict

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")


def fixture(name):
    return os.path.join(FIXTURES, name)


def assert_matches_expected(got, expected_npz):
    """Same names in the same order, same shapes and values as torch's."""
    with np.load(fixture(expected_npz)) as expected:
        assert list(got) == list(expected.files)
        for name in expected.files:
            want, have = expected[name], got[name]
            assert isinstance(have, np.ndarray), name
            assert have.shape == want.shape, name
            if have.dtype == ml_dtypes.bfloat16:
                have = have.astype(np.float32)
            assert have.dtype == want.dtype, name
            np.testing.assert_array_equal(have, want, err_msg=name)


# --- files torch wrote ------------------------------------------------------

def test_torch_state_dict_matches_torch_values():
    got = load_state_dict(fixture("statedict_tensors.pth"))
    assert type(got) is dict  # the OrderedDict's _metadata is dropped
    assert_matches_expected(got, "statedict_tensors_expected.zip")
    assert got["bfloat16.weight"].dtype == ml_dtypes.bfloat16
    assert got["half.weight"].dtype == np.float16
    assert got["uint16.codes"].dtype == np.uint16  # _rebuild_tensor_v3
    assert got["bn1.num_batches_tracked"].dtype == np.int64
    assert got["bn1.num_batches_tracked"].shape == ()
    assert int(got["bn1.num_batches_tracked"]) == 7


def test_views_sharing_one_storage_honour_offset_and_strides():
    got = load_state_dict(fixture("statedict_tensors.pth"))
    weight = np.arange(12, dtype=np.float32).reshape(3, 4) / 8
    np.testing.assert_array_equal(got["fc.weight"], weight)
    np.testing.assert_array_equal(got["fc.weight_transposed"], weight.T)
    np.testing.assert_array_equal(got["fc.weight_slice"], weight[1:, 1:3])
    np.testing.assert_array_equal(got["fc.bias_expanded"],
                                  np.broadcast_to(weight[0], (2, 4)))
    # views come back as independent, writeable, contiguous arrays
    for name in ("fc.weight_transposed", "fc.weight_slice"):
        assert got[name].flags.c_contiguous and got[name].flags.writeable
    got["fc.weight_transposed"][:] = -1
    np.testing.assert_array_equal(got["fc.weight"], weight)


def test_module_state_dict():
    got = load_state_dict(fixture("statedict_module.pth"))
    assert list(got) == [
        "conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean",
        "bn1.running_var", "bn1.num_batches_tracked", "fc.weight", "fc.bias"]
    assert got["conv1.weight"].shape == (4, 3, 3, 3)
    assert_matches_expected(got, "statedict_module_expected.zip")


def test_checkpoint_wrapping_a_data_parallel_state_dict():
    got = load_state_dict(fixture("statedict_wrapped.pth"))
    assert_matches_expected(got, "statedict_wrapped_expected.zip")
    kept = load_state_dict(fixture("statedict_wrapped.pth"),
                           key="state_dict", strip_prefix=None)
    assert all(name.startswith("module.") for name in kept)
    assert kept["module.fc.bias"].tolist() == got["fc.bias"].tolist()


@pytest.mark.parametrize("key", ["optimizer", "epoch", "no_such_entry"])
def test_checkpoint_entry_that_is_not_a_state_dict(key):
    with pytest.raises(DataError, match="statedict_wrapped.pth"):
        load_state_dict(fixture("statedict_wrapped.pth"), key=key)


def test_safetensors_written_by_the_official_library():
    got = load_state_dict(fixture("statedict_module.safetensors"))
    with np.load(fixture("statedict_module_expected.zip")) as expected:
        names = expected.files  # the official writer orders them its own way
    assert sorted(got) == sorted(names)
    assert_matches_expected({name: got[name] for name in names},
                            "statedict_module_expected.zip")


def test_legacy_torch_file_is_refused_with_advice():
    with pytest.raises(DataError, match=r"legacy PyTorch.*torch\.save\("):
        load_state_dict(fixture("statedict_legacy.pth"))


# --- torch archives built by hand -------------------------------------------

def plain(value):
    """The protocol-2 opcodes that push a plain value (no PROTO, no STOP)."""
    return pickle.dumps(value, protocol=2)[2:-1]


def global_(module, name):
    return b"c" + f"{module}\n{name}\n".encode()


def tensor_pickle(storage_type, key, numel, offset, shape, stride):
    """``{'w': tensor}`` as torch 2.x pickles it into data.pkl."""
    storage = (b"(" + plain("storage") + global_("torch", storage_type)
               + plain(key) + plain("cpu") + plain(numel) + b"tQ")
    args = (b"(" + storage + plain(offset) + plain(shape) + plain(stride)
            + b"\x89" + global_("collections", "OrderedDict") + b")Rt")
    return (b"\x80\x02}" + plain("w")
            + global_("torch._utils", "_rebuild_tensor_v2") + args + b"Rs.")


def write_torch_zip(path, data_pkl, storages):
    """Lay out records as torch.save does: ``archive/data.pkl``, ...."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", data_pkl)
        archive.writestr("archive/byteorder", "little")
        for key, raw in storages.items():
            archive.writestr(f"archive/data/{key}", raw)
        archive.writestr("archive/version", "3\n")
    return str(path)


def test_hand_built_archive_with_offset_and_strides(tmp_path):
    values = np.arange(10, dtype=np.float32)
    path = write_torch_zip(tmp_path / "w.pth",
                           tensor_pickle("FloatStorage", "0", 10, 1, (3, 2),
                                         (1, 4)), {"0": values.tobytes()})
    np.testing.assert_array_equal(load_state_dict(path)["w"],
                                  [[1, 5], [2, 6], [3, 7]])


@pytest.mark.parametrize("module, name", [
    ("os", "system"), ("builtins", "eval"), ("posix", "system"),
    ("torch.nn.modules.conv", "Conv2d"), ("torch", "load")])
def test_forbidden_global_is_refused_and_not_run(tmp_path, module, name):
    marker = tmp_path / "ran"
    command = (f"touch {marker}" if name == "system"
               else f"open({str(marker)!r}, 'w')")
    data_pkl = b"\x80\x02" + global_(module, name) + plain((command,)) + b"R."
    path = write_torch_zip(tmp_path / "evil.pth", data_pkl, {})
    with pytest.raises(DataError, match=rf"evil\.pth.*{module}\.{name}"):
        load_state_dict(path)
    assert not marker.exists()


def test_forbidden_storage_type_is_refused(tmp_path):
    path = write_torch_zip(tmp_path / "q.pth", tensor_pickle(
        "QInt8Storage", "0", 4, 0, (4,), (1,)), {"0": bytes(4)})
    with pytest.raises(DataError, match=r"q\.pth.*torch\.QInt8Storage"):
        load_state_dict(path)


@pytest.mark.parametrize("storages, numel, shape, stride, message", [
    ({"0": bytes(20)}, 6, (6,), (1,), "fewer than the 24 declared"),
    ({"0": bytes(24)}, 6, (3, 3), (3, 1), "needs 9 values"),
    ({}, 6, (6,), (1,), "lacks"),
    ({"0": bytes(24)}, 6, (2, 3), (-3, 1), "does not understand"),
    ({"0": bytes(24)}, 6, (2, 3), (3,), "does not understand"),
])
def test_storage_that_does_not_hold_the_tensor(tmp_path, storages, numel,
                                               shape, stride, message):
    path = write_torch_zip(tmp_path / "short.pth", tensor_pickle(
        "FloatStorage", "0", numel, 0, shape, stride), storages)
    with pytest.raises(DataError, match=rf"short\.pth.*{message}"):
        load_state_dict(path)


def test_archive_that_holds_no_state_dict(tmp_path):
    path = write_torch_zip(tmp_path / "list.pth",
                           pickle.dumps([1, 2], protocol=2), {})
    with pytest.raises(DataError, match=r"list\.pth holds a list"):
        load_state_dict(path)


@pytest.mark.parametrize("cut", [0.1, 0.5, 0.9, -1])
def test_truncated_torch_file(tmp_path, cut):
    data = open(fixture("statedict_module.pth"), "rb").read()
    path = tmp_path / "cut.pth"
    path.write_bytes(data[:int(len(data) * cut)] if cut > 0 else data[:-1])
    with pytest.raises(DataError, match=r"cut\.pth"):
        load_state_dict(path)


def test_corrupt_storage_bytes_fail_the_checksum(tmp_path):
    data = bytearray(open(fixture("statedict_module.pth"), "rb").read())
    with zipfile.ZipFile(fixture("statedict_module.pth")) as archive:
        info = archive.getinfo("statedict_module/data/0")
    # the local header: 30 bytes, then the name and torch's alignment padding
    name_size, extra_size = struct.unpack_from("<HH", data,
                                               info.header_offset + 26)
    data[info.header_offset + 30 + name_size + extra_size] ^= 0xFF
    path = tmp_path / "flipped.pth"
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"flipped\.pth.*corrupt"):
        load_state_dict(path)


def test_truncated_data_pkl(tmp_path):
    data_pkl = tensor_pickle("FloatStorage", "0", 2, 0, (2,), (1,))
    path = write_torch_zip(tmp_path / "half.pth", data_pkl[:30],
                           {"0": bytes(8)})
    with pytest.raises(DataError, match=r"half\.pth.*corrupt"):
        load_state_dict(path)


def test_zip_without_data_pkl(tmp_path):
    path = tmp_path / "other.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(DataError, match="without one data.pkl"):
        load_state_dict(path)


@pytest.mark.parametrize("content", [b"", b"hello", b"not weights at all",
                                     pickle.dumps({"a": 1}, protocol=2)])
def test_unknown_format(tmp_path, content):
    path = tmp_path / "mystery.bin"
    path.write_bytes(content)
    with pytest.raises(DataError, match=r"mystery\.bin: not a PyTorch"):
        load_state_dict(path)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"absent\.pth: cannot read"):
        load_state_dict(tmp_path / "absent.pth")


# --- safetensors and npz ------------------------------------------------------

SAFETENSORS_CODES = {
    np.dtype(np.float32): "F32", np.dtype(np.float16): "F16",
    np.dtype(ml_dtypes.bfloat16): "BF16", np.dtype(np.float64): "F64",
    np.dtype(np.int64): "I64", np.dtype(np.int32): "I32",
    np.dtype(np.uint8): "U8", np.dtype(np.bool_): "BOOL"}


def safetensors_bytes(arrays, edit=None):
    """A safetensors file: header length, JSON header, tensor bytes."""
    header, chunks, offset = {"__metadata__": {"format": "np"}}, [], 0
    for name, array in arrays.items():
        raw = np.ascontiguousarray(array).tobytes()
        header[name] = {"dtype": SAFETENSORS_CODES[array.dtype],
                        "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    if edit:
        edit(header)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)  # the official writer pads to 8 bytes
    return struct.pack("<Q", len(text)) + text + b"".join(chunks)


ARRAYS = {
    "conv.weight": np.linspace(-1, 1, 54, dtype=np.float32).reshape(2, 3, 3, 3),
    "half": np.array([0.5, -2, 65504], np.float16),
    "brain": np.array([1, -2.5, 3.140625], ml_dtypes.bfloat16),
    "double": np.array([[1 / 3]], np.float64),
    "bn.num_batches_tracked": np.array(7, np.int64),
    "int32": np.array([-5, 2**31 - 1], np.int32),
    "bytes": np.arange(5, dtype=np.uint8),
    "mask": np.array([True, False]),
    "empty": np.zeros((0, 3), np.float32),
}


def test_safetensors_built_from_the_format(tmp_path):
    path = tmp_path / "w.safetensors"
    path.write_bytes(safetensors_bytes(ARRAYS))
    got = load_state_dict(path)
    assert list(got) == list(ARRAYS)
    for name, want in ARRAYS.items():
        assert got[name].dtype == want.dtype and got[name].shape == want.shape
        np.testing.assert_array_equal(got[name], want)


def set_entry(name, field, value):
    def edit(header):
        header[name][field] = value
    return edit


@pytest.mark.parametrize("edit, message", [
    (set_entry("half", "data_offsets", [216, 224]), "do not hold"),
    (set_entry("mask", "data_offsets", [258, 260]), "do not hold"),
    (set_entry("half", "dtype", "F4"), "dtype 'F4'"),
    (set_entry("half", "shape", [-3]), "bad shape"),
    (set_entry("half", "shape", "3"), "bad shape"),
    (set_entry("half", "data_offsets", [216]), "lacks"),
    (set_entry("half", "shape", [2]), "do not hold"),
    (lambda header: header.pop("double"), "overlap or leave"),
    (lambda header: header.update(extra={"dtype": "U8", "shape": [2],
                                         "data_offsets": [0, 2]}),
     "overlap or leave"),
    (lambda header: header.update(bad=[1, 2]), "lacks"),
])
def test_safetensors_header_that_lies(tmp_path, edit, message):
    path = tmp_path / "lies.safetensors"
    path.write_bytes(safetensors_bytes(ARRAYS, edit))
    with pytest.raises(DataError, match=rf"lies\.safetensors.*{message}"):
        load_state_dict(path)


@pytest.mark.parametrize("content, message", [
    (struct.pack("<Q", 1000) + b"{}", "header says 1000 bytes"),
    (struct.pack("<Q", 4) + b"{ab}", "corrupt"),
    (struct.pack("<Q", 8) + b'{"a": 1}', "lacks a dtype"),
    (safetensors_bytes(ARRAYS)[:-3], "overlap or leave|do not hold"),
    (safetensors_bytes(ARRAYS) + b"\0", "unused"),
])
def test_broken_safetensors_file(tmp_path, content, message):
    path = tmp_path / "broken.safetensors"
    path.write_bytes(content)
    with pytest.raises(DataError, match=rf"broken\.safetensors.*{message}"):
        load_state_dict(path)


def test_npz_round_trip_and_prefix(tmp_path):
    path = tmp_path / "w.npz"
    np.savez(path, **{"module.a": np.ones(2), "module.b.c": np.eye(2)})
    assert list(load_state_dict(path)) == ["a", "b.c"]
    assert list(load_state_dict(path, strip_prefix=None)) == [
        "module.a", "module.b.c"]
    np.savez(path, **{"module.a": np.ones(2), "b": np.eye(2)})
    assert list(load_state_dict(path)) == ["module.a", "b"]


def test_npz_with_object_arrays_is_refused(tmp_path):
    path = tmp_path / "objects.npz"
    np.savez(path, a=np.array([{"x": 1}], dtype=object))
    with pytest.raises(DataError, match=r"objects\.npz.*corrupt"):
        load_state_dict(path)
