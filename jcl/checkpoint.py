"""Task-end checkpoints of the whole carry, written atomically.

A checkpoint is one ``.npz`` with the carry's leaves (PRNG keys included)
and whatever per-task results the caller adds. The tree structure comes
from a freshly initialised carry at restore time, so files hold arrays
only and load without pickle.
"""

import os
import tempfile
import zipfile

import jax
import numpy as np

from jcl.errors import DataError, OutputError


def save(path, tree, **extra):
    """Writes ``tree``'s leaves and ``extra`` arrays to ``path`` atomically.

    The file appears complete or not at all (write to a temporary file in
    the same folder, then ``os.replace``).
    """
    leaves = jax.tree.leaves(tree)
    arrays = {f'leaf_{i:05d}': np.asarray(x) for i, x in enumerate(leaves)}
    for k, v in extra.items():
        arrays[f'extra_{k}'] = np.asarray(v)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, suffix='.tmp')
        with os.fdopen(fd, 'wb') as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except OSError as e:
        raise OutputError(f'cannot write checkpoint {path}: {e}') from None


def load(path, like):
    """Restores a tree shaped like ``like`` and the extra arrays.

    Returns:
      ``(tree, extra)``. Raises :class:`DataError` naming the file if it is
      truncated or does not match the structure of ``like``.
    """
    try:
        with np.load(path) as f:
            files = dict(f)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f'checkpoint {path} is unreadable ({e}); delete it '
                        'to restart that run from scratch') from None
    leaves, treedef = jax.tree.flatten(like)
    keys = sorted(k for k in files if k.startswith('leaf_'))
    if len(keys) != len(leaves) or any(
            files[k].shape != np.shape(x) for k, x in zip(keys, leaves)):
        raise DataError(f'checkpoint {path} does not match this run\'s '
                        'model and method; delete it or use another --out')
    tree = jax.tree.unflatten(treedef, [files[k] for k in keys])
    extra = {k[len('extra_'):]: v for k, v in files.items()
             if k.startswith('extra_')}
    return tree, extra
