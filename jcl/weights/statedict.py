"""Read named weight tensors from PyTorch, safetensors and ``.npz`` files.

:func:`load_state_dict` returns a state dict (``'layer1.0.conv1.weight'``,
``'bn1.running_mean'``, ...) as plain numpy arrays, without torch and without
running pickled code. It tells the format by the file's first bytes:

- a PyTorch zip archive (``torch.save`` since PyTorch 1.6): its ``data.pkl``
  is unpickled with an allow-list that only rebuilds tensors, storages,
  parameters and ``OrderedDict``; every other global is refused. Storage
  bytes come from the archive's ``data/<key>`` records and each tensor's
  offset, shape and strides are applied to them.
- a safetensors file: an 8-byte little-endian header length, a JSON header
  naming each tensor's dtype, shape and byte range, then the bytes.
- an ``.npz`` archive, read with ``allow_pickle=False``.

Arrays keep their stored dtype; bfloat16 and float8 values come back as the
``ml_dtypes`` types jax uses (``.astype(np.float32)`` widens them).

>>> import os, tempfile
>>> import numpy as np
>>> with tempfile.TemporaryDirectory() as folder:
...     path = os.path.join(folder, "net.npz")
...     np.savez(path, **{"module.fc.weight": np.ones((2, 3), np.float32),
...                       "module.fc.bias": np.zeros(2, np.float32)})
...     weights = load_state_dict(path)
>>> list(weights), weights["fc.weight"].shape, weights["fc.weight"].dtype
(['fc.weight', 'fc.bias'], (2, 3), dtype('float32'))
"""

import collections
import io
import os
import pickle
import struct
import zipfile

import numpy as np

from jcl.core.errors import DataError
from jcl.datasets._pickle import _CORRUPT
from jcl.weights.safetensors_read import DTYPES as _DTYPES
from jcl.weights.safetensors_read import is_index as _is_index
from jcl.weights.safetensors_read import read_safetensors as _read_safetensors

__all__ = ["load_state_dict"]

# The typed storage classes that torch pickles (``torch.FloatStorage``, ...).
_STORAGE_DTYPES = {
    "DoubleStorage": "float64", "FloatStorage": "float32",
    "HalfStorage": "float16", "BFloat16Storage": "bfloat16",
    "ComplexFloatStorage": "complex64", "ComplexDoubleStorage": "complex128",
    "LongStorage": "int64", "IntStorage": "int32", "ShortStorage": "int16",
    "CharStorage": "int8", "ByteStorage": "uint8", "BoolStorage": "bool",
}
# Keys under which training checkpoints usually keep the state dict.
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net", "network")
# pickle.dumps(0x1950a86a20f9469cfc6c, 2): the first record of legacy files.
_LEGACY_TORCH_MAGIC = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19."
_RESAVE = "re-save it with a recent torch: torch.save(torch.load(f), f2)"


class _StandIn:
    """Base of the objects a pickle receives; BUILD cannot change them."""

    __slots__ = ()

    def __setstate__(self, state):
        raise pickle.UnpicklingError("data.pkl tries to change a stand-in")


class _TorchType(_StandIn):
    """``torch.float32``, ``torch.FloatStorage``...; None dtype: untyped."""

    __slots__ = ("dtype",)

    def __init__(self, dtype):
        self.dtype = dtype


class _Storage(_StandIn):
    """The raw bytes of one ``data/<key>`` record and their element type."""

    __slots__ = ("key", "raw", "dtype")

    def __init__(self, key, raw, dtype):
        self.key, self.raw, self.dtype = key, raw, dtype


class _TorchUnpickler(pickle.Unpickler):
    """Rebuilds the tensors of one torch zip archive as numpy arrays."""

    def __init__(self, archive, prefix, path):
        super().__init__(io.BytesIO(archive.read(prefix + "data.pkl")))
        self._archive, self._prefix, self._path = archive, prefix, path
        self._storages = {}

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch._utils" and name in (
                "_rebuild_tensor", "_rebuild_tensor_v2"):
            return self._rebuild_tensor_v2
        if (module, name) == ("torch._utils", "_rebuild_tensor_v3"):
            return self._rebuild_tensor_v3
        if (module, name) in (("torch._utils", "_rebuild_parameter"),
                              ("torch._utils", "_rebuild_parameter_with_state"),
                              ("torch.nn.parameter", "Parameter")):
            return self._parameter_data
        if module == "torch" and name in _STORAGE_DTYPES:
            return _TorchType(_DTYPES[_STORAGE_DTYPES[name]])
        if (module, name) == ("torch.storage", "UntypedStorage"):
            return _TorchType(None)
        if module == "torch" and name in _DTYPES:
            return _TorchType(_DTYPES[name])
        raise DataError(
            f"{self._path}: refusing to load: data.pkl asks for "
            f"{module}.{name}, which is not part of a tensor state dict")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5
                and pid[0] == "storage" and isinstance(pid[1], _TorchType)
                and isinstance(pid[2], str) and _is_index(pid[4])):
            raise DataError(f"{self._path}: data.pkl refers to an unknown "
                            f"kind of record: {str(pid)[:80]}")
        _, torch_type, key, _location, numel = pid
        if key not in self._storages:
            record = f"{self._prefix}data/{key}"
            try:
                raw = self._archive.read(record)
            except KeyError:
                raise DataError(f"{self._path}: data.pkl refers to {record}, "
                                "which the archive lacks") from None
            nbytes = numel * (torch_type.dtype or np.dtype("u1")).itemsize
            if len(raw) < nbytes:
                raise DataError(f"{self._path}: {record} has {len(raw)} "
                                f"bytes, fewer than the {nbytes} declared")
            self._storages[key] = _Storage(key, raw[:nbytes], torch_type.dtype)
        return self._storages[key]

    def _parameter_data(self, data, *_requires_grad_and_hooks):
        """Stands in for ``Parameter`` and ``_rebuild_parameter``."""
        if not isinstance(data, np.ndarray):
            raise pickle.UnpicklingError("a parameter must wrap a tensor")
        return data

    def _rebuild_tensor_v2(self, storage, offset, size, stride, *_unused):
        dtype = storage.dtype if isinstance(storage, _Storage) else None
        return self._tensor(storage, dtype, offset, size, stride)

    def _rebuild_tensor_v3(self, storage, offset, size, stride, _requires_grad,
                           _hooks, torch_type, *_unused):
        dtype = torch_type.dtype if isinstance(torch_type, _TorchType) else None
        return self._tensor(storage, dtype, offset, size, stride)

    def _tensor(self, storage, dtype, offset, shape, strides):
        """Apply a tensor's offset, shape and strides to its storage."""
        shape, strides = tuple(shape), tuple(strides)
        if not (isinstance(storage, _Storage) and isinstance(dtype, np.dtype)
                and (storage.dtype is None or storage.dtype == dtype)
                and _is_index(offset) and len(shape) == len(strides)
                and all(map(_is_index, shape + strides))):
            raise DataError(f"{self._path}: data.pkl describes a tensor "
                            "this reader does not understand")
        if 0 in shape:
            return np.zeros(shape, dtype)
        count = len(storage.raw) // dtype.itemsize
        needed = offset + 1 + sum((n - 1) * s for n, s in zip(shape, strides))
        if needed > count:
            raise DataError(
                f"{self._path}: a {dtype} tensor of shape {shape} needs "
                f"{needed} values of storage {storage.key}, which has {count}")
        values = np.frombuffer(storage.raw, dtype, needed - offset,
                               offset * dtype.itemsize)
        byte_strides = tuple(s * dtype.itemsize for s in strides)
        return np.lib.stride_tricks.as_strided(
            values, shape, byte_strides, writeable=False).copy()


def _read_zip(path):
    """A torch zip archive (one ``<name>/data.pkl``) or an ``.npz``."""
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        if not (names and all(name.endswith(".npy") for name in names)):
            pickles = [name for name in names
                       if name.endswith("data.pkl") and name.count("/") <= 1]
            if len(pickles) != 1:
                raise DataError(f"{path}: a zip archive without one data.pkl:"
                                " neither a torch file nor an .npz")
            prefix = pickles[0][: -len("data.pkl")]
            if (prefix + "byteorder" in names and archive.read(
                    prefix + "byteorder").strip() != b"little"):
                raise DataError(f"{path}: written on a big-endian machine")
            return _TorchUnpickler(archive, prefix, path).load()
    with np.load(path, allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


def _reader_for(path, head):
    """The function that reads this kind of file, told by its first bytes."""
    if head.startswith(b"PK"):
        return _read_zip
    if head.startswith(_LEGACY_TORCH_MAGIC):
        raise DataError(f"{path}: a legacy PyTorch file (saved before "
                        "PyTorch 1.6 or with _use_new_zipfile_serialization="
                        f"False), which jcl does not read; {_RESAVE}")
    if len(head) > 8 and head[8:9] == b"{":
        return _read_safetensors
    raise DataError(f"{path}: not a PyTorch zip archive, safetensors or "
                    ".npz file")


def _is_flat(mapping):
    return isinstance(mapping, dict) and all(
        isinstance(name, str) and isinstance(value, np.ndarray)
        for name, value in mapping.items())


def _unwrap(content, path, key):
    """The state dict itself, or the one a training checkpoint wraps."""
    if key is not None:
        if not (isinstance(content, dict) and key in content):
            raise DataError(f"{path}: has no top-level entry {key!r}")
        content = content[key]
    elif isinstance(content, dict) and not _is_flat(content):
        named = [content[name] for name in _WRAPPER_KEYS
                 if _is_flat(content.get(name))]
        others = [value for value in content.values()
                  if _is_flat(value) and value]
        if named or len(others) == 1:
            content = (named or others)[0]
    if not _is_flat(content):
        where = f"{path}: entry {key!r}" if key is not None else path
        keys = f" (keys: {list(content)[:10]})" if isinstance(
            content, dict) else ""
        raise DataError(
            f"{where} holds a {type(content).__name__}{keys}, not a mapping of"
            " names to tensors; name the entry that holds one with key=")
    return dict(content)


def load_state_dict(path, *, key=None, strip_prefix="module."):
    """Read a file of named weight tensors as numpy arrays.

    Args:
        path: a PyTorch ``.pth``/``.pt`` file written by ``torch.save``
            (PyTorch 1.6 or later), a ``.safetensors`` file or an ``.npz``.
        key: the top-level entry that holds the state dict (e.g.
            ``'state_dict'``). By default the top level is used if it maps
            names to tensors, else the entry ``'state_dict'``,
            ``'model_state_dict'``, ``'model'``, ``'net'`` or ``'network'``,
            else the only entry that maps names to tensors.
        strip_prefix: removed from every name when all names start with it
            (``'module.'`` of ``DataParallel`` by default); None keeps names.

    Returns:
        dict from name to numpy array, in the file's order, with the stored
        dtype and shape (views are materialised as contiguous copies).

    Raises:
        DataError: the file is missing, truncated, corrupt, a legacy or
            unknown format, holds no state dict, or its pickle names a
            global other than the tensor-rebuilding ones.
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as file:
            head = file.read(len(_LEGACY_TORCH_MAGIC))
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    reader = _reader_for(path, head)
    try:
        content = reader(path)
    except DataError:
        raise
    except (*_CORRUPT, zipfile.BadZipFile, NotImplementedError,
            struct.error) as exc:
        raise DataError(f"{path}: corrupt or truncated weight file "
                        f"({type(exc).__name__}: {exc})") from exc
    state = _unwrap(content, path, key)
    if strip_prefix and state and all(
            name.startswith(strip_prefix) for name in state):
        state = {name[len(strip_prefix):]: value
                 for name, value in state.items()}
    return state
