"""A checked ``.npz`` cache of the four split arrays, built on first use.

:func:`cached` returns the arrays of ``<folder>/<name>.npz``, building and
writing them (atomically, via a rename) when the file is absent. Every file
holds, beside ``train_x/train_y/test_x/test_y``, a ``digest`` entry: the
SHA-256 of the four arrays (:func:`split_digest`), so any corruption is
found on reading, whatever the loader. Loaded arrays are read-only and
memoised per file until the file changes.
"""

import hashlib
import os
import tempfile
import zipfile
import zlib

import numpy as np

from jcl.core.errors import DataError
from jcl.datasets._common import SPLIT_KEYS, corrupt_cache, write_npz_atomic

_MEMO = {}  # (path, memo key) -> (file stamp, read-only arrays)


def split_digest(arrays):
    """SHA-256 over the four arrays' names, dtypes, shapes and bytes."""
    digest = hashlib.sha256()
    for key in SPLIT_KEYS:
        array = np.ascontiguousarray(arrays[key])
        digest.update(f"{key}:{array.dtype.str}:{array.shape};".encode())
        digest.update(array.data)
    return digest.hexdigest()


def cached(path, build, check, *, what, memo_key=()):
    """Read ``path`` if it exists, else ``build()`` it; check either way.

    Args:
        path: the ``.npz`` file (a ``Path``).
        build: called with no argument when the file is absent; returns the
            dict of four arrays (already checked) to write.
        check: called with ``(arrays, source)`` on arrays read back from the
            file; raises :class:`DataError` when they are not the expected
            ones.
        what: the data set's name in messages, e.g. ``"Animal-MNIST"``.
        memo_key: anything hashable that changes what ``check`` accepts.

    Returns:
        A new dict of read-only arrays.

    Raises:
        DataError: the folder cannot be written, or the file is corrupt or
            fails ``check``.
    """
    key = (str(path), memo_key)
    stamp = _stamp(path, what)
    hit = _MEMO.get(key)
    if hit is not None and stamp is not None and hit[0] == stamp:
        return dict(hit[1])
    if stamp is None:
        _ensure_writable(path.parent, what)
        arrays = {k: np.ascontiguousarray(v) for k, v in build().items()}
        _write_atomic(path, arrays, what)
        stamp = _stamp(path, what)
    else:
        arrays = _read(path, what)
        try:
            check(arrays, path)
        except DataError as exc:
            raise _corrupt(path, what, str(exc)) from exc
    for array in arrays.values():
        array.flags.writeable = False
    _MEMO[key] = (stamp, arrays)
    return dict(arrays)


def _stamp(path, what):
    """Size, mtime and inode of the file, or None if it is absent."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise DataError(
            f"{path}: cannot inspect the {what} cache: {exc}"
        ) from exc
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def _corrupt(path, what, reason):
    return corrupt_cache(path, what, reason)


def _read(path, what):
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in SPLIT_KEYS}
            stored = str(npz["digest"])
    except (
        OSError,
        ValueError,
        KeyError,
        EOFError,
        zipfile.BadZipFile,
        zlib.error,
    ) as exc:
        raise _corrupt(path, what, f"{type(exc).__name__}: {exc}") from exc
    actual = split_digest(arrays)
    if actual != stored:
        raise _corrupt(
            path,
            what,
            f"its arrays hash to {actual[:12]}..., it records "
            f"{stored[:12]}...",
        )
    return arrays


def _ensure_writable(folder, what):
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise DataError(
            f"cannot write the {what} cache folder {folder}: "
            f"{exc.strerror or exc}; pass another cache folder or set "
            "JCL_DATA_DIR"
        ) from exc


def _write_atomic(path, arrays, what):
    write_npz_atomic(path, {"digest": np.array(split_digest(arrays)),
                            **arrays}, what)
