"""CIFAR-10 and CIFAR-100 from the python-version files, or prepared tfds.

CIFAR cannot be downloaded here, so the data must already be on disk:
either the official python-version archives unpacked in a folder, or a
copy that ``tensorflow_datasets`` has already prepared.
"""

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jcl.core.errors import ConfigError, DataError
from jcl.datasets._common import check_split
from jcl.datasets._pickle import safe_load


@dataclass(frozen=True)
class _Layout:
    folder: str
    train: tuple
    test: tuple
    label_key: str
    num_classes: int


_LAYOUTS = {
    "cifar10": _Layout(
        folder="cifar-10-batches-py",
        train=tuple(f"data_batch_{i}" for i in range(1, 6)),
        test=("test_batch",),
        label_key="labels",
        num_classes=10,
    ),
    "cifar100": _Layout(
        folder="cifar-100-python",
        train=("train",),
        test=("test",),
        label_key="fine_labels",
        num_classes=100,
    ),
}
_IMAGE_SHAPE = (32, 32, 3)


def load_cifar(name, data_dir=None, *, use_tfds=True):
    """Load CIFAR-10 or CIFAR-100 (fine labels) as uint8 arrays.

    Args:
        name: ``"cifar10"`` or ``"cifar100"``.
        data_dir: folder holding ``cifar-10-batches-py/`` or
            ``cifar-100-python/`` (or that folder itself); defaults to
            ``$JCL_CIFAR_DIR``. Without one, tfds is tried.
        use_tfds: when no folder is given, read a copy already prepared by
            ``tensorflow_datasets`` (never downloads).

    Returns:
        A dict with ``train_x`` uint8 ``[50000, 32, 32, 3]`` (HWC, RGB),
        ``train_y`` uint8 ``[50000]``, ``test_x`` ``[10000, 32, 32, 3]``
        and ``test_y`` ``[10000]``.

    Raises:
        ConfigError: ``name`` is not a CIFAR name.
        DataError: the files are missing or malformed, or no data source
            is available.
    """
    if name not in _LAYOUTS:
        raise ConfigError(
            f"unknown CIFAR data set {name!r}; expected one of "
            + ", ".join(sorted(_LAYOUTS))
        )
    if data_dir is None or data_dir == "":
        data_dir = os.environ.get("JCL_CIFAR_DIR") or None
    if data_dir is not None:
        return _load_local(name, Path(data_dir).expanduser())
    if not use_tfds:
        raise _unavailable(name, "no data folder was given")
    return _load_tfds(name)


def _unavailable(name, reason):
    return DataError(
        f"{name} is not available ({reason}). CIFAR cannot be downloaded in "
        "this environment: give --data-dir (or set JCL_CIFAR_DIR) a folder "
        "with the python-version files (cifar-10-batches-py/ or "
        "cifar-100-python/), or install the `tfds` extra and prepare the "
        f"data set where there is network access (tfds build {name})"
    )


def _load_local(name, root):
    layout = _LAYOUTS[name]
    if not root.is_dir():
        raise DataError(f"CIFAR folder {root} does not exist")
    folder = root / layout.folder
    if not folder.is_dir():
        folder = root
    arrays = {}
    for split, files in (("train", layout.train), ("test", layout.test)):
        parts = [_read_batch(folder / f, layout) for f in files]
        x = np.concatenate([p[0] for p in parts])
        y = np.concatenate([p[1] for p in parts])
        source = folder / files[0] if len(files) == 1 else folder
        arrays[f"{split}_x"], arrays[f"{split}_y"] = check_split(
            x,
            y,
            image_shape=_IMAGE_SHAPE,
            num_classes=layout.num_classes,
            source=source,
            split=split,
        )
    return arrays


def _read_batch(path, layout):
    """One python-version file -> (images [N, 32, 32, 3], labels [N])."""
    if not path.is_file():
        raise DataError(
            f"CIFAR file {path} is missing; expected the python-version "
            f"files ({layout.folder}/{', '.join(layout.train + layout.test)})"
        )
    try:
        with open(path, "rb") as f:
            batch = safe_load(f, name=str(path))
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc}") from exc
    if not isinstance(batch, dict):
        raise DataError(f"{path}: expected a pickled dict")
    batch = {
        k.decode("latin1") if isinstance(k, bytes) else k: v
        for k, v in batch.items()
    }
    for key in ("data", layout.label_key):
        if key not in batch:
            raise DataError(f"{path}: has no {key!r} entry")
    data = batch["data"]
    if (
        not isinstance(data, np.ndarray)
        or data.dtype != np.uint8
        or data.ndim != 2
        or data.shape[1] != 3 * 32 * 32
    ):
        raise DataError(f"{path}: 'data' is not a uint8 [N, 3072] array")
    try:
        labels = np.asarray(batch[layout.label_key])
    except ValueError as exc:
        raise DataError(f"{path}: unreadable labels: {exc}") from exc
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise DataError(f"{path}: labels are not a list of integers")
    if labels.shape[0] != data.shape[0]:
        raise DataError(
            f"{path}: {data.shape[0]} images but {labels.shape[0]} labels"
        )
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def _prepared_tfds_root(name):
    """The tfds data folder that holds a prepared copy of ``name``, if any."""
    roots = [os.environ.get("TFDS_DATA_DIR"), "~/tensorflow_datasets"]
    for root in roots:
        if not root:
            continue
        root = Path(root).expanduser()
        if any((root / name).glob("*/dataset_info.json")):
            return root
    return None


def _load_tfds(name):
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise _unavailable(
            name, "tensorflow_datasets is not installed"
        ) from None
    root = _prepared_tfds_root(name)
    if root is None:
        raise _unavailable(
            name, "tensorflow_datasets has no prepared copy of it"
        )
    try:
        train, test = tfds.as_numpy(
            tfds.load(
                name,
                split=["train", "test"],
                batch_size=-1,
                data_dir=str(root),
                download=False,
                try_gcs=False,
            )
        )
    except Exception as exc:  # tfds/tf raise many types; all mean "no data"
        raise DataError(
            f"tensorflow_datasets could not read its copy of {name} in "
            f"{root}: {type(exc).__name__}: {exc}"
        ) from exc
    arrays = {}
    for split, part in (("train", train), ("test", test)):
        x = np.asarray(part["image"])
        y = np.asarray(part["label"])
        arrays[f"{split}_x"], arrays[f"{split}_y"] = check_split(
            x,
            y,
            image_shape=_IMAGE_SHAPE,
            num_classes=_LAYOUTS[name].num_classes,
            source=f"tfds {name} in {root}",
            split=split,
        )
    return arrays
