"""safetensors files read with numpy alone (no new dependency).

The format: an 8-byte little-endian header length, a JSON header naming
each tensor's dtype, shape and byte range in the data buffer, then the
bytes. Every range is checked against the buffer, and the ranges must
tile it exactly. Used by :func:`jcl.weights.statedict.load_state_dict`.
"""

import json
import math
import struct

import ml_dtypes
import numpy as np

from jcl.core.errors import DataError

# torch dtype names (``torch.<name>``) and their little-endian numpy dtypes.
DTYPES = {
    name: np.dtype(getattr(ml_dtypes, name)) if name.startswith(
        ("bfloat", "float8")) else np.dtype(name).newbyteorder("<")
    for name in (
        "float64 float32 float16 bfloat16 complex64 complex128 int64 int32 "
        "int16 int8 uint64 uint32 uint16 uint8 bool float8_e4m3fn "
        "float8_e5m2 float8_e4m3fnuz float8_e5m2fnuz").split()}
_SAFETENSORS_DTYPES = {
    "F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
    "C64": "complex64", "I64": "int64", "I32": "int32", "I16": "int16",
    "I8": "int8", "U64": "uint64", "U32": "uint32", "U16": "uint16",
    "U8": "uint8", "BOOL": "bool", "F8_E4M3": "float8_e4m3fn",
    "F8_E5M2": "float8_e5m2",
}

def is_index(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0



def read_safetensors(path):
    """Header length, JSON header, bytes; every tensor's range is checked."""
    with open(path, "rb") as file:
        blob = file.read()
    (header_size,) = struct.unpack_from("<Q", blob)
    if header_size > len(blob) - 8:
        raise DataError(f"{path}: safetensors header says {header_size} "
                        f"bytes, the file has {len(blob) - 8} after it")
    header = json.loads(blob[8: 8 + header_size])  # "{" was checked
    header.pop("__metadata__", None)
    data = memoryview(blob)[8 + header_size:]
    tensors, ranges = {}, []
    for name, entry in header.items():
        try:
            kind, shape = entry["dtype"], tuple(entry["shape"])
            begin, end = entry["data_offsets"]
        except (TypeError, KeyError, ValueError):
            raise DataError(f"{path}: safetensors entry {name!r} lacks a "
                            "dtype, shape or data_offsets pair") from None
        if kind not in _SAFETENSORS_DTYPES:
            raise DataError(f"{path}: tensor {name!r} has dtype {kind!r}; "
                            f"known: {', '.join(_SAFETENSORS_DTYPES)}")
        dtype = DTYPES[_SAFETENSORS_DTYPES[kind]]
        if not all(map(is_index, shape + (begin, end))):
            raise DataError(f"{path}: tensor {name!r} has a bad shape "
                            f"{list(shape)} or data_offsets {[begin, end]}")
        size = math.prod(shape) * dtype.itemsize
        if end - begin != size or end > len(data):
            raise DataError(
                f"{path}: tensor {name!r}: data_offsets [{begin}, {end}] do "
                f"not hold {kind} {list(shape)} ({size} bytes) within the "
                f"{len(data)}-byte data buffer")
        tensors[name] = np.frombuffer(data[begin:end], dtype).reshape(shape)
        ranges.append((begin, end))
    starts = [begin for begin, _ in sorted(ranges)]
    ends = [end for _, end in sorted(ranges)]
    if starts + [len(data)] != [0] + ends:
        raise DataError(f"{path}: the tensors' data_offsets overlap or leave "
                        f"bytes of the {len(data)}-byte data buffer unused")
    return {name: array.copy() for name, array in tensors.items()}


