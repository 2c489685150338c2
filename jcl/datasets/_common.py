"""Helpers shared by the data set loaders: folders, checksums, layouts."""

import hashlib
import os
from pathlib import Path

import numpy as np

from jcl.core.errors import DataError

SPLIT_KEYS = ("train_x", "train_y", "test_x", "test_y")


def resolve_dir(value, env_var, default):
    """Pick a folder: the argument, else an environment variable, else one.

    Args:
        value: the folder given by the caller, or None.
        env_var: name of the environment variable consulted next.
        default: the folder used when neither is set.

    Returns:
        The folder as a ``Path`` with ``~`` expanded.
    """
    if value is None or value == "":
        value = os.environ.get(env_var) or default
    return Path(value).expanduser()


def file_sha256(path, what='file') -> str:
    """The SHA-256 of a file, read in 1 MiB blocks; a :class:`DataError`
    naming ``what`` if it cannot be read."""
    digest = hashlib.sha256()
    try:
        with open(path, 'rb') as f:
            for block in iter(lambda: f.read(1 << 20), b''):
                digest.update(block)
    except OSError as e:
        raise DataError(f'{path}: cannot read the {what}: '
                        f'{e.strerror or e}') from None
    return digest.hexdigest()


def array_sha256(array):
    """SHA-256 of an array's raw bytes in C order.

    Args:
        array: a numpy array.

    Returns:
        The hex digest of ``np.ascontiguousarray(array)``'s buffer.
    """
    return hashlib.sha256(np.ascontiguousarray(array).data).hexdigest()


def sha256_mismatches(arrays, expected):
    """Names of the arrays whose SHA-256 differs from the expected one.

    Args:
        arrays: mapping from name to numpy array.
        expected: mapping from name to hex digest.

    Returns:
        A list of ``"name (expected X, got Y)"`` strings, empty if all match.
    """
    bad = []
    for key, digest in expected.items():
        got = array_sha256(arrays[key])
        if got != digest:
            bad.append(f"{key} (expected {digest[:12]}..., got {got[:12]}...)")
    return bad


def check_split(x, y, *, image_shape, num_classes, source, split):
    """Check one split's images and labels, then return labels as uint8.

    Args:
        x: images, expected uint8 of shape ``[N, *image_shape]``.
        y: labels, expected a 1-D integer array of length N.
        image_shape: the shape of one image.
        num_classes: labels must lie in ``[0, num_classes)``.
        source: the file (or files) named in error messages.
        split: ``"train"`` or ``"test"``, named in error messages.

    Returns:
        ``(x, y)`` with ``y`` cast to uint8.

    Raises:
        DataError: on a wrong dtype, shape, length or label value.
    """
    want = "[N, " + ", ".join(str(d) for d in image_shape) + "]"
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8:
        raise DataError(f"{source}: {split} images are not a uint8 array")
    if x.ndim != 1 + len(image_shape) or x.shape[1:] != tuple(image_shape):
        raise DataError(
            f"{source}: {split} images have shape {list(x.shape)}, "
            f"expected {want}"
        )
    if not isinstance(y, np.ndarray) or not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{source}: {split} labels are not integers")
    if y.shape != (x.shape[0],):
        raise DataError(
            f"{source}: {split} labels have shape {list(y.shape)}, expected "
            f"[{x.shape[0]}] to match the images"
        )
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise DataError(
            f"{source}: {split} labels range over [{y.min()}, {y.max()}], "
            f"expected [0, {num_classes - 1}]"
        )
    return x, y.astype(np.uint8)


def write_npz_atomic(path, arrays, what):
    """Writes ``arrays`` to the ``.npz`` ``path`` through a temporary file
    in the same folder and a rename, so a reader never sees half a file;
    an ``OSError`` becomes one :class:`DataError` naming the ``what``
    cache, and the temporary file is removed on any failure."""
    import tempfile
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".npz.part",
                               dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise DataError(
                f"{path}: cannot write the {what} cache: {exc}") from exc
        raise


def check_arrays(arrays, source, *, image_shape, num_classes, expected):
    """Both splits' layout (:func:`check_split`) and the arrays' SHA-256
    against ``expected``; one :class:`DataError` naming what is wrong."""
    for split in ("train", "test"):
        check_split(arrays[f"{split}_x"], arrays[f"{split}_y"],
                    image_shape=image_shape, num_classes=num_classes,
                    source=source, split=split)
    bad = sha256_mismatches(arrays, expected)
    if bad:
        raise DataError(f"{source}: checksum mismatch: " + ", ".join(bad))


def corrupt_cache(path, what, reason):
    """The error of an unreadable or altered cache file."""
    return DataError(f"{path}: {what} cache file is corrupt ({reason}); "
                     "delete it and run again to rebuild it")
