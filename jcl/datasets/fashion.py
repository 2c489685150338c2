"""Fashion-MNIST from the four IDX files (as in Debian's package)."""

from jcl.core.errors import DataError
from jcl.datasets._common import check_split, resolve_dir, sha256_mismatches
from jcl.datasets.idx import read_idx

DEFAULT_DIR = "/usr/share/datasets/fashion-mnist"
FILES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}
ARRAY_SHA256 = {
    "train_x": (
        "2e487a6c89124f78f2d7521542223cafe96f7123c3ca13d447772ac6ecbb3012"
    ),
    "train_y": (
        "657fbd221bfc9f4198cc14b5619cc33ec57c58dd0e47af4d99d6650759e869a7"
    ),
    "test_x": (
        "c867c93ff95360594e8ec3287995350b824dd110b11595c0e13d5423f621867a"
    ),
    "test_y": (
        "3d0e6c6ea990b53b6f8f500a41cac93881d981b315f84578b7d915342ade01e9"
    ),
}
_HINT = (
    "install it with `apt-get install dataset-fashion-mnist`, or point "
    "--data-dir (or JCL_FASHION_DIR) at a folder holding the four IDX files"
)


def load_fashion_mnist(data_dir=None, *, verify=True):
    """Load Fashion-MNIST as uint8 arrays.

    Args:
        data_dir: folder with ``train-images-idx3-ubyte[.gz]`` and the other
            three files; defaults to ``$JCL_FASHION_DIR``, else
            ``/usr/share/datasets/fashion-mnist``.
        verify: check each array against the published data's SHA-256
            (turn off only for small generated files in tests).

    Returns:
        A dict with uint8 arrays ``train_x [60000, 28, 28]``,
        ``train_y [60000]``, ``test_x [10000, 28, 28]``, ``test_y [10000]``.

    Raises:
        DataError: a folder or file is missing, unreadable, malformed, or
            fails its checksum.
    """
    root = resolve_dir(data_dir, "JCL_FASHION_DIR", DEFAULT_DIR)
    if not root.is_dir():
        raise DataError(f"Fashion-MNIST folder {root} does not exist; {_HINT}")
    paths = {key: _find(root, stem) for key, stem in FILES.items()}
    arrays = {key: read_idx(path) for key, path in paths.items()}
    for split in ("train", "test"):
        _, y = check_split(
            arrays[f"{split}_x"],
            arrays[f"{split}_y"],
            image_shape=(28, 28),
            num_classes=10,
            source=f"{paths[split + '_x']} / {paths[split + '_y'].name}",
            split=split,
        )
        arrays[f"{split}_y"] = y
    if verify:
        for key, path in paths.items():
            bad = sha256_mismatches(arrays, {key: ARRAY_SHA256[key]})
            if bad:
                raise DataError(
                    f"{path}: not the published Fashion-MNIST data: "
                    f"checksum mismatch for {bad[0]}"
                )
    return arrays


def _find(root, stem):
    for name in (stem + ".gz", stem):
        path = root / name
        if path.is_file():
            return path
    raise DataError(
        f"Fashion-MNIST file {stem}.gz (or {stem}) is missing from {root}; "
        f"{_HINT}"
    )
