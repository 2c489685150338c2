"""Seeds and hyperparameter points as one axis of rows, over devices.

:func:`compile_programs` maps a learner's compiled functions over the leading
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
>>> programs = compile_programs(learner)
>>> states = programs.init({"lr": jnp.full(3, 1e-3)},
...                        jax.random.split(jax.random.PRNGKey(0), 3))
>>> states.params['Dense_0']['kernel'].shape       # 3 rows
(3, 3, 4)
"""

from typing import Callable, NamedTuple

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jcl.core.errors import ConfigError
from jcl.training.learner import Learner, init_state
from jcl.training.scoring import initial_accuracy
from jcl.training.task import (
    begin_steps,
    finish_task,
    first_steps,
    run_steps,
    train_task,
)

ROWS = 'rows'
INIT_OPTIONS = {'xla_backend_optimization_level': 1}


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


class Programs(NamedTuple):
    """The jitted, row-mapped functions of one learner (every function
    maps over the leading axis of ``hp``/``keys``/``states``).

    Attributes:
      init: ``(hp, keys, pretrained=None) -> states``
        (:func:`jcl.training.learner.init_state`; ``pretrained`` shared).
      begin: ``(states, hp, train, task_id) -> (states, plans)``
        (:func:`jcl.training.task.begin_steps`).
      steps: ``(states, hp, train, active, task_id, plans, start, count)
        -> (states, metrics)`` (:func:`jcl.training.task.run_steps`,
        ``count`` static; donates ``states``).
      first_steps: ``(states, hp, train, active, plans, start, count)``:
        ``steps`` of the first task, compiled with the task known
        (:func:`jcl.training.task.first_steps`): terms on replayed data,
        weighted 0 there, are not computed.
      finish: ``(states, hp, train, test, active, task_id) -> (states,
        acc)`` (:func:`jcl.training.task.finish_task`; donates ``states``).
      task: ``(states, hp, train, test, active, task_id)``: the three in
        one program (:func:`jcl.training.task.train_task`; donates
        ``states``).
      init_acc: ``(states, hp, test, active)``
        (:func:`jcl.training.scoring.initial_accuracy`).
    """

    init: Callable
    begin: Callable
    steps: Callable
    first_steps: Callable
    finish: Callable
    task: Callable
    init_acc: Callable


def compile_programs(learner: Learner, *, train_axes=None, test_axes=None,
                     mesh: Mesh | None = None) -> Programs:
    """Builds the jitted, row-vmapped functions of one learner.

    Args:
      learner: the static learner.
      train_axes, test_axes: ``vmap`` axes of the data (``None``: the data
        is shared by all rows; a per-seed class order stacks index tables
        on axis 0).
      mesh: split the rows over this mesh's devices (``'rows'`` axis; the
        number of rows must be a multiple of its size), or ``None``.

    Returns:
      :class:`Programs`.
    """
    def mapped(fn, axes, donate=(), static=0, options=None):
        """``fn`` vmapped over the rows (``axes``: ``0`` for a row
        argument, else the data's axes or ``None``), split over the mesh,
        jitted; the last ``static`` arguments are static, not mapped."""
        n = len(axes)

        def run(*args):
            f = jax.vmap(lambda *a: fn(learner, *a, *args[n:]), in_axes=axes)
            if mesh is not None:
                f = jax.shard_map(f, mesh=mesh, in_specs=tuple(
                    _specs(a) for a in axes), out_specs=P(ROWS),
                    check_vma=False)
            return f(*args[:n])

        run.__name__ = fn.__name__
        return jax.jit(run, donate_argnums=donate,
                       static_argnums=tuple(range(n, n + static)),
                       compiler_options=options)

    # the initialisation runs once: LLVM's optimisation level 1 compiles it
    # in about half the time, with the same bits (tests/test_train.py)
    init = mapped(init_state, (0, 0, None), options=INIT_OPTIONS)
    return Programs(
        init=lambda hp, keys, pretrained=None: init(hp, keys, pretrained),
        begin=mapped(begin_steps, (0, 0, train_axes, None)),
        steps=mapped(run_steps, (0, 0, train_axes, None, None, 0, None),
                     donate=(0,), static=1),
        first_steps=mapped(first_steps, (0, 0, train_axes, None, 0, None),
                           donate=(0,), static=1),
        finish=mapped(finish_task, (0, 0, train_axes, test_axes, None,
                                    None), donate=(0,)),
        task=mapped(train_task, (0, 0, train_axes, test_axes, None, None),
                    donate=(0,)),
        init_acc=mapped(initial_accuracy, (0, 0, test_axes, None)))


def compile_run(learner: Learner, *, train_axes=None, test_axes=None,
                mesh: Mesh | None = None):
    """``(init, task, init_acc)`` of :func:`compile_programs`: a whole
    task per call."""
    p = compile_programs(learner, train_axes=train_axes,
                         test_axes=test_axes, mesh=mesh)
    return p.init, p.task, p.init_acc


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
