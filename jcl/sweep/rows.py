"""Seeds and hyperparameter points as one axis of rows, over devices.

:func:`compile_run` maps a learner's compiled functions over the leading
axis of the hyperparameters, the PRNG keys and the carry: every row (a
seed, a grid point) trains in the same program, and a per-seed task order
stacks its index tables on the same axis. Given a mesh of devices, the
rows are split over them with ``jax.shard_map``: each device runs the same
vmapped program on its own rows (no communication), the data replicated.

>>> import jax, jax.numpy as jnp
>>> from jcl.methods import supervised
>>> from jcl.models import mlp_classifier
>>> from jcl.training.learner import Learner
>>> learner = Learner(lambda hp: mlp_classifier((4,), num_outputs=2,
...                                             input_dim=3),
...                   lambda hp, model: supervised(), num_steps=2,
...                   batch_size=2)
>>> init, task, init_acc = compile_run(learner)
>>> states = init({'lr': jnp.full(3, 1e-3)},
...               jax.random.split(jax.random.PRNGKey(0), 3))
>>> states.params['Dense_0']['kernel'].shape       # 3 rows
(3, 3, 4)
"""

import functools

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jcl.core.errors import ConfigError
from jcl.training.learner import Learner, init_state
from jcl.training.task import initial_accuracy, train_task

ROWS = 'rows'


def row_mesh(devices=None) -> Mesh:
    """A one-axis mesh (``'rows'``) over ``devices`` (default: all, of
    every process)."""
    devices = jax.devices() if devices is None else devices
    return Mesh(np.asarray(devices), (ROWS,))


def mesh_for(per_process: int | None = None) -> Mesh | None:
    """The rows' mesh over the first ``per_process`` local devices of
    every process (``None``: all of them), or ``None`` when that is a
    single device (the unsharded program).

    >>> mesh_for(1) is None
    True
    """
    count = jax.local_device_count()
    n = count if per_process is None else per_process
    if not 1 <= n <= count:
        raise ConfigError(f'--devices must be in 1..{count} (this '
                          f'process has {count} {jax.default_backend()} '
                          f'device(s)), not {n}')
    by_process = {}
    for d in jax.devices():
        by_process.setdefault(d.process_index, []).append(d)
    devices = [d for p in sorted(by_process)
               for d in sorted(by_process[p], key=lambda d: d.id)[:n]]
    return row_mesh(devices) if len(devices) > 1 else None


def _specs(axes):
    """``shard_map`` specs from ``vmap`` axes: mapped leaves split over
    the rows, shared ones replicated."""
    if axes is None:
        return P()
    return jax.tree.map(lambda a: P(ROWS) if a == 0 else P(), axes,
                        is_leaf=lambda a: a is None)


def compile_run(learner: Learner, *, train_axes=None, test_axes=None,
                mesh: Mesh | None = None):
    """Builds the jitted, row-vmapped functions of one learner.

    Args:
      learner: the static learner.
      train_axes, test_axes: ``vmap`` axes of the data (``None``: the data
        is shared by all rows; a per-seed class order stacks index tables
        on axis 0).
      mesh: split the rows over this mesh's devices (``'rows'`` axis; the
        number of rows must be a multiple of its size), or ``None``.

    Returns:
      ``(init, task, init_acc)``: ``init(hp, keys, pretrained=None)``
      (``pretrained``: see :func:`jcl.training.learner.init_state`,
      shared by the
      rows),
      ``task(states, hp, train, test, active, task_id)`` (donates
      ``states``), ``init_acc(states, hp, test, active)``; every function
      maps over the leading axis of ``hp``/``keys``/``states``.
    """
    init = jax.vmap(functools.partial(init_state, learner),
                    in_axes=(0, 0, None))
    task = jax.vmap(functools.partial(train_task, learner),
                    in_axes=(0, 0, train_axes, test_axes, None, None))
    init_acc = jax.vmap(functools.partial(initial_accuracy, learner),
                        in_axes=(0, 0, test_axes, None))
    if mesh is not None:
        rows = P(ROWS)
        init = jax.shard_map(init, mesh=mesh, in_specs=(rows, rows, P()),
                             out_specs=rows, check_vma=False)
        task = jax.shard_map(
            task, mesh=mesh, in_specs=(rows, rows, _specs(train_axes),
                                       _specs(test_axes), P(), P()),
            out_specs=rows, check_vma=False)
        init_acc = jax.shard_map(
            init_acc, mesh=mesh, in_specs=(rows, rows, _specs(test_axes),
                                           P()),
            out_specs=rows, check_vma=False)
    init_jit = jax.jit(init)

    def init_fn(hp, keys, pretrained=None):
        return init_jit(hp, keys, pretrained)

    return init_fn, jax.jit(task, donate_argnums=0), jax.jit(init_acc)


def place(tree, mesh: Mesh | None, axes=None):
    """Puts ``tree`` on the mesh: leaves with a rows axis (``axes`` 0, or
    every leaf when ``axes`` is ``'rows'``) split over the devices, the
    others replicated; unchanged without a mesh."""
    if mesh is None:
        return tree
    rows, rep = NamedSharding(mesh, P(ROWS)), NamedSharding(mesh, P())
    if axes == 'rows':
        return jax.device_put(tree, rows)
    if axes is None:
        return jax.device_put(tree, rep)
    if isinstance(axes, dict):
        return {k: place(tree[k], mesh, axes[k]) for k in tree}
    return type(tree)(**{   # a NamedTuple of arrays, axes per field
        f: None if getattr(tree, f) is None else jax.device_put(
            getattr(tree, f), rows if getattr(axes, f) == 0 else rep)
        for f in tree._fields})


def padded_rows(n: int, mesh: Mesh | None) -> int:
    """``n`` rounded up to a multiple of the mesh's devices."""
    if mesh is None:
        return n
    d = mesh.devices.size
    return -(-n // d) * d
