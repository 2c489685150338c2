"""scikit-learn's 8x8 digits, read out of its wheel (no scikit-learn needed).

scikit-learn bundles ``sklearn/datasets/data/digits.csv.gz``: 1,797 rows of
64 pixel counts (0..16, an 8x8 image; each is the number of set pixels in
a 4x4 block of a 32x32 bitmap) and the label 0-9. It is a copy of the test
part of the UCI "Optical Recognition of Handwritten Digits" data set
(E. Alpaydin, C. Kaynak, 1998; the wheel is BSD-3-Clause). We download the
``scikit-learn==1.9.1`` wheel with ``pip download --no-deps`` for one fixed
target (CPython 3.11, ``manylinux_2_28_x86_64``, whatever the machine), so
the same file arrives everywhere and its SHA-256 is checked; a wheel passed
in by hand (any platform or version) is not checked itself, only the
digits array read from it, which is the same in every wheel.

Pixels become uint8 by ``(v * 255 + 8) // 16``, i.e. ``round(v * 255 /
16)`` with halves rounded up (0 -> 0, 8 -> 128, 16 -> 255). The fixed test
split is, per class, the 36 images (360 in all) first in
:func:`jcl.datasets._split.hashed_split`'s order with the salt
``b"jcl sklearn-digits split 0"``; the other 1,437 are for training (138 to
147 per class). The rows' writers are not recorded, so the split cannot be
writer-disjoint. The result is cached as ``<cache>/sklearn_digits.npz``.

Example:
    >>> from jcl.datasets import load_sklearn_digits
    >>> d = load_sklearn_digits()
    >>> d["train_x"].shape, d["test_x"].shape, int(d["train_x"].max())
    ((1437, 8, 8), (360, 8, 8), 255)
"""

import os
import tempfile
from pathlib import Path

import numpy as np

from jcl.core.errors import DataError
from jcl.datasets._common import (
    check_arrays,
    file_sha256,
    resolve_dir,
    sha256_mismatches,
)
from jcl.datasets._npz_cache import cached
from jcl.datasets._split import hashed_split
from jcl.datasets._wheel import pip_download, read_member

__all__ = ["load_sklearn_digits"]

WHEEL_REQUIREMENT = "scikit-learn==1.9.1"
WHEEL_TARGET = (
    "--platform", "manylinux_2_28_x86_64", "--python-version", "3.11",
    "--implementation", "cp", "--abi", "cp311",
)
WHEEL_SHA256 = (
    "52a0703bbc07ad27f560fa63fa68e4c54dd735bfbbf65b4dd3c225dc7547b6df"
)
MEMBER = "sklearn/datasets/data/digits.csv.gz"
# digest of the csv as a uint8 [1797, 65] array (64 pixels 0..16, label)
RAW_SHA256 = {
    "table": (
        "68aea062d35a127749050fa0e52dca09d6569ac08092c925610e0954e172dde2"
    ),
}
ARRAY_SHA256 = {
    "train_x": (
        "0da4a9f707d2e88a4b732da4f2067bb5df2decd5a2b3bc094467ab7914b70acb"
    ),
    "train_y": (
        "c23fd60adff058551d55a0e505270950e51eec7be8d145ffed15520f479398a6"
    ),
    "test_x": (
        "129e5e5d00984adad0eee2a709f45a790d2fc1a57c90842c5bb05443050fd196"
    ),
    "test_y": (
        "0b5931423fcf2d1188fc4e8249ef4e0086b0f5ddab7bfcec243157575ed08646"
    ),
}
CACHE_NAME = "sklearn_digits.npz"
DEFAULT_CACHE_DIR = "~/.cache/jcl"
TEST_PER_CLASS = 36
SPLIT_SALT = b"jcl sklearn-digits split 0"


def load_sklearn_digits(cache_dir=None, *, wheel=None):
    """Load the 8x8 digits as uint8 arrays, building the cache on first use.

    Args:
        cache_dir: folder for ``sklearn_digits.npz``; defaults to
            ``$JCL_DATA_DIR``, else ``~/.cache/jcl``.
        wheel: path of a local scikit-learn wheel (any version or
            platform that has the file) to read instead of downloading
            one; defaults to ``$JCL_SKLEARN_WHEEL``.

    Returns:
        A new dict with read-only uint8 arrays ``train_x [1437, 8, 8]``
        (0..255), ``train_y [1437]``, ``test_x [360, 8, 8]``,
        ``test_y [360]``.

    Raises:
        DataError: the wheel cannot be had or fails a checksum, the cache
            folder cannot be written, or the cache file is corrupt.
    """
    path = resolve_dir(cache_dir, "JCL_DATA_DIR", DEFAULT_CACHE_DIR)
    return cached(
        path / CACHE_NAME, lambda: _build(wheel), _check,
        what="scikit-learn digits",
    )


def _check(arrays, source):
    check_arrays(arrays, source, image_shape=(8, 8), num_classes=10,
                 expected=ARRAY_SHA256)


def parse_table(text, source):
    """The csv as a uint8 ``[rows, 65]`` array, its values checked."""
    try:
        rows = [
            [int(v) for v in line.split(",")]
            for line in text.splitlines()
            if line.strip()
        ]
        table = np.array(rows, dtype=np.int64)
    except ValueError as exc:
        raise DataError(f"{source}: not a csv of integers: {exc}") from exc
    if table.ndim != 2 or table.shape[1] != 65:
        raise DataError(f"{source}: expected rows of 65 integers")
    if table[:, :64].min() < 0 or table[:, :64].max() > 16:
        raise DataError(f"{source}: pixel values outside 0..16")
    if table[:, 64].min() < 0 or table[:, 64].max() > 9:
        raise DataError(f"{source}: labels outside 0..9")
    return table.astype(np.uint8)


def _build(wheel):
    with tempfile.TemporaryDirectory(prefix="jcl-sklearn-") as tmp:
        wheel = wheel or os.environ.get("JCL_SKLEARN_WHEEL") or None
        if wheel is None:
            wheel = pip_download(
                WHEEL_REQUIREMENT, tmp, pattern="scikit_learn-*.whl",
                extra=WHEEL_TARGET,
                hint="Pass a local scikit-learn wheel (wheel= or "
                "JCL_SKLEARN_WHEEL), or set JCL_DATA_DIR to a folder that "
                f"holds {CACHE_NAME}",
            )
            actual = file_sha256(wheel, "scikit-learn wheel")
            if actual != WHEEL_SHA256:
                raise DataError(
                    f"{wheel}: sha256 {actual} is not that of "
                    f"{WHEEL_REQUIREMENT} for {' '.join(WHEEL_TARGET)} "
                    f"({WHEEL_SHA256})"
                )
        wheel = Path(wheel)
        data = read_member(wheel, MEMBER, gunzip=True)
    source = f"{wheel}!{MEMBER}"
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as exc:
        raise DataError(f"{source}: not an ASCII csv") from exc
    table = parse_table(text, source)
    bad = sha256_mismatches({"table": table}, RAW_SHA256)
    if bad:
        raise DataError(f"{source}: checksum mismatch: " + ", ".join(bad))
    pixels = table[:, :64].astype(np.uint16)
    x = ((pixels * 255 + 8) // 16).astype(np.uint8).reshape(-1, 8, 8)
    y = table[:, 64]
    train, test = hashed_split(x, y, TEST_PER_CLASS, SPLIT_SALT, source=source)
    arrays = {
        "train_x": x[train], "train_y": y[train],
        "test_x": x[test], "test_y": y[test],
    }
    _check(arrays, source)
    return arrays
