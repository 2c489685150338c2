"""A restricted unpickler that only rebuilds numpy arrays and plain data.

The MNIST and CIFAR files we read are pickles, and a pickle can name any
importable callable. :func:`safe_load` only resolves the handful of names
that numpy array pickles (protocol 2, written by Python 2 or 3) ask for;
anything else is refused before it can run.
"""

import pickle
import zlib

import numpy as np

from jcl.core.errors import DataError

try:
    from numpy._core.multiarray import _reconstruct
except ImportError:  # numpy < 2
    from numpy.core.multiarray import _reconstruct


def _latin1_encode(text, encoding):
    """Stand in for ``_codecs.encode`` in protocol-2 pickles of ``bytes``.

    Python 3 pickles a non-empty ``bytes`` object at protocol 2 as
    ``_codecs.encode(text, 'latin1')``; only that exact use is allowed.
    """
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(
            "_codecs.encode is only allowed to rebuild bytes from latin-1"
        )
    return text.encode("latin1")


_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
    ("builtins", "bytes"): bytes,
    ("__builtin__", "bytes"): bytes,
    ("builtins", "bytearray"): bytearray,
    ("__builtin__", "bytearray"): bytearray,
}

_CORRUPT = (
    pickle.UnpicklingError,
    EOFError,
    OSError,
    ValueError,
    TypeError,
    AttributeError,
    IndexError,
    KeyError,
    OverflowError,
    MemoryError,
    RecursionError,
    zlib.error,
)


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler whose global lookups go through a fixed allow-list."""

    def __init__(self, fileobj, name):
        super().__init__(fileobj, encoding="latin1")
        self._name = name

    def find_class(self, module, name):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise DataError(
                f"{self._name}: refusing to unpickle: the file asks for "
                f"{module}.{name}, which is not part of a numpy array"
            ) from None

    def persistent_load(self, pid):
        raise DataError(
            f"{self._name}: refusing to unpickle: the file uses persistent ids"
        )


def safe_load(fileobj, *, name):
    """Unpickle numpy arrays and plain containers, and nothing else.

    Args:
        fileobj: a binary file object positioned at the start of a pickle.
        name: how to name the file in error messages (usually its path).

    Returns:
        The unpickled object: numpy arrays, dicts, lists, tuples, ``str``,
        ``bytes``, numbers. Python 2 ``str`` values come back as ``str``
        decoded as latin-1 (array payloads are handled by numpy).

    Raises:
        DataError: the pickle names any other global, or is corrupt or
            truncated.
    """
    try:
        return _RestrictedUnpickler(fileobj, name).load()
    except DataError:
        raise
    except _CORRUPT as exc:
        raise DataError(
            f"{name}: not a readable pickle ({type(exc).__name__}: {exc})"
        ) from exc
