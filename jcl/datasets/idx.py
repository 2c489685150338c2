"""Reader for the IDX format used by MNIST and Fashion-MNIST.

An IDX file starts with two zero bytes, a type code, the number of
dimensions, then each dimension as a big-endian uint32, then the values in
C order, big-endian. Files may be gzipped.
"""

import gzip
import struct
import zlib

import numpy as np

from jcl.core.errors import DataError

_TYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path):
    """Read an IDX file, plain or gzipped, into a numpy array.

    Args:
        path: the file; gzip is recognised by its magic bytes, not its name.

    Returns:
        A writable array in native byte order, shaped as the header says.

    Raises:
        DataError: the file cannot be read, its magic number or type code
            is wrong, or its size does not match its header.
    """
    data = _read_bytes(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DataError(f"{path}: not an IDX file (bad magic number)")
    code, ndim = data[2], data[3]
    if code not in _TYPES:
        raise DataError(f"{path}: unknown IDX type code 0x{code:02x}")
    if ndim == 0:
        raise DataError(f"{path}: IDX header declares no dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated IDX header")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    dtype = _TYPES[code]
    want = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    have = len(data) - header
    if have != want:
        raise DataError(
            f"{path}: IDX header says {list(dims)} ({want} bytes of data) "
            f"but the file holds {have} bytes"
            + (" (truncated)" if have < want else "")
        )
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)
    return array.astype(dtype.newbyteorder("="))


def _read_bytes(path):
    try:
        with open(path, "rb") as f:
            data = f.read()
        if data[:2] == _GZIP_MAGIC:
            data = gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: cannot read: {exc}") from exc
    return data
