"""Task-end checkpoints of the whole carry, leaves stored by name.

A checkpoint is one ``.npz``: every leaf of the carry under its tree path
(``carry/params/Dense_0/kernel``, ``carry/mstate/si/omega/...``; PRNG
keys included) and the per-task results the caller adds
(``extra/<name>``). It is written atomically and loads without pickle.
Restoring matches leaves by name against a freshly initialised carry, so
a changed structure is a clear error that names the leaves, and a
single entry (a task's bank) can be read back by name.

>>> import os, tempfile, numpy as np
>>> path = os.path.join(tempfile.mkdtemp(), 'c.npz')
>>> save(path, {'w': np.ones(2), 'b': np.zeros(1)}, tasks_done=1)
>>> tree, extra = load(path, {'w': np.zeros(2), 'b': np.zeros(1)})
>>> tree['w'].tolist(), int(extra['tasks_done'])
([1.0, 1.0], 1)
>>> load(path, {'w': np.zeros(3), 'b': np.zeros(1)})
Traceback (most recent call last):
...
jcl.core.errors.DataError: checkpoint ... (w: shape (2,) in the file, ...
"""

import os
import tempfile
import zipfile

import jax
import jax.numpy as jnp
import numpy as np

from jcl.core.errors import DataError, OutputError
from jcl.core.tree import leaf_names

TREE, EXTRA = 'carry/', 'extra/'


def previous(path) -> str:
    """Where :func:`save` keeps the checkpoint before the last
    (``ckpt-0.npz`` -> ``ckpt-0.prev.npz``)."""
    root, ext = os.path.splitext(os.fspath(path))
    return f'{root}.prev{ext}'


def latest(path):
    """``path`` if it exists, else the previous checkpoint if that does (a
    kill between :func:`save`'s two renames), else ``None``."""
    for p in (path, previous(path)):
        if os.path.exists(p):
            return p
    return None


def position(path) -> tuple:
    """``(tasks done, steps done in the next task)`` of the checkpoint at
    ``path``; ``(0, 0)`` when there is none or it cannot be read (yet)."""
    try:
        with np.load(path) as f:
            steps = f'{EXTRA}steps_done'
            return (int(f[f'{EXTRA}tasks_done']),
                    int(f[steps]) if steps in f else 0)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
        return 0, 0


def save(path, tree, **extra):
    """Writes ``tree``'s leaves (by name) and ``extra`` arrays to ``path``;
    the checkpoint it replaces is kept as :func:`previous` (the last two
    are kept).

    The file appears complete or not at all (write to a temporary file in
    the same folder, then ``os.replace``).
    """
    arrays = {TREE + n: np.asarray(x)
              for n, x in zip(leaf_names(tree), jax.tree.leaves(tree))}
    for k, v in extra.items():
        arrays[EXTRA + k] = np.asarray(v)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, suffix='.tmp')
        with os.fdopen(fd, 'wb') as f:
            np.savez(f, **arrays)
        if os.path.exists(path):
            os.replace(path, previous(path))
        os.replace(tmp, path)
    except OSError as e:
        raise OutputError(f'cannot write checkpoint {path}: {e}') from None


def read(path, name=None) -> dict:
    """All arrays of a checkpoint by name (``carry/...``, ``extra/...``);
    ``path`` is a file name or an open binary file (``name`` names it in
    messages).

    Raises :class:`DataError` naming the file if it is unreadable.
    """
    try:
        with np.load(path) as f:
            return dict(f)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f'checkpoint {name or path} is unreadable ({e}); '
                        'delete it to restart that run from '
                        'scratch') from None


def load(path, like, name=None):
    """Restores a tree shaped like ``like`` and the extra arrays
    (``path``: a file name or an open binary file, ``name`` its name).

    Returns:
      ``(tree, extra)``. Raises :class:`DataError` naming the file and the
      first mismatching leaves if it is truncated or its leaves do not
      match those of ``like`` by name, shape and dtype.
    """
    files = read(path, name)
    path = name or path
    names = leaf_names(like)
    leaves, treedef = jax.tree.flatten(like)
    stored = {k[len(TREE):]: v for k, v in files.items()
              if k.startswith(TREE)}
    problems = [f'{n}: missing in the file' for n in names
                if n not in stored]
    problems += [f'{n}: in the file, not in this run' for n in stored
                 if n not in set(names)]
    for n, x in zip(names, leaves):
        if n in stored and (stored[n].shape != np.shape(x)):
            problems.append(f'{n}: shape {stored[n].shape} in the file, '
                            f'{np.shape(x)} here')
        elif n in stored and stored[n].dtype != _dtype(x):
            problems.append(f'{n}: dtype {stored[n].dtype} in the file, '
                            f'{_dtype(x)} here')
    if problems:
        more = f' and {len(problems) - 3} more' if len(problems) > 3 else ''
        raise DataError(f'checkpoint {path} does not match this run ('
                        f'{"; ".join(problems[:3])}{more}); delete it or '
                        'use another --out')
    tree = jax.tree.unflatten(treedef, [stored[n] for n in names])
    extra = {k[len(EXTRA):]: v for k, v in files.items()
             if k.startswith(EXTRA)}
    return tree, extra


def _dtype(x):
    """A leaf's dtype (arrays of any kind, Python scalars)."""
    return np.dtype(x.dtype) if hasattr(x, 'dtype') else np.result_type(x)


# a streamed run's per-task records (jcl.sweep.streamed), saved beside its carry
RECORDS = ('R', 'loss', 'steps', 'epochs', 'best_epoch', 'valid_acc',
           'seconds')


def load_records(ckpt_path, state):
    """``(state, tasks_done, records, inside)`` from the streamed path's
    checkpoint at ``ckpt_path`` (or the one before it, :func:`latest`; its
    carry shaped like ``state``), or ``(state, 0, empty records, None)``
    without one. Records: a list per task of each of :data:`RECORDS`
    (``[S, ...]`` arrays; ``seconds`` a float). ``inside``: ``None`` for a
    checkpoint written after a task, else the in-task arrays: ``done``
    (steps), ``kept`` (the rows' kept states, or ``None``), ``loss`` and
    the epoch tracker's (``tracker/...``)."""
    rec = {k: [] for k in RECORDS}
    found = ckpt_path and latest(ckpt_path)
    if not found:
        return state, 0, rec, None
    host = jax.tree.map(np.asarray, state)
    head = read(found)
    done = int(head.get(EXTRA + 'steps_done', 0))
    like = host if not done else {'now': host, **(
        {'kept': host} if EXTRA + 'has_kept' in head else {})}
    tree, extra = load(found, like)
    tasks = int(extra.get('tasks_done', -1))
    missing = [k for k in rec if k not in extra] if tasks > 0 else []
    if missing or tasks < 0:
        raise DataError(f'checkpoint {found} is not a streamed run\'s '
                        f'(no {", ".join(missing or ["tasks_done"])}); '
                        'delete it or use another path')
    for k in rec if tasks else ():
        rec[k] = list(extra[k] if k == 'seconds'
                      else np.moveaxis(extra[k], 1, 0))
    inside = None
    if done:
        inside = {'done': done, 'loss': extra['part_loss'],
                  'kept': tree.get('kept'), **{
                      k: v for k, v in extra.items()
                      if k.startswith('tracker/')}}
        tree = tree['now']
    return jax.tree.map(jnp.asarray, tree), tasks, rec, inside


def stack_records(rec):
    """Per-task records stacked on the task axis (``[S, T, ...]``)."""
    return {k: np.asarray(v) if k == 'seconds' else np.stack(v, 1)
            for k, v in rec.items()}
