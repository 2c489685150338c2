"""Type aliases and the records that pass between the parts of jcl.

Every record is a pytree of arrays (a NamedTuple, or for :class:`TaskEnd`
a dataclass whose one function is static), so it passes through ``jit``,
``vmap`` and ``lax.scan`` unchanged. The records a method sees
are made by the training step, one per stage:

* :class:`Forward`: what a loss sees (parameters, the batch, the model's
  outputs on it, auxiliary outputs of earlier chain members);
* :class:`Step`: what a gradient stage and ``update`` see after the
  backward pass (old and new parameters, gradients, the batch);
* :class:`TaskEnd`: what ``consolidate`` sees when a task ends.
"""

from typing import Any, Callable, NamedTuple

import flax.struct
import jax

Array = jax.Array
PRNGKey = jax.Array
Params = Any      # a pytree of arrays (nested dicts of Flax parameters)
ModelState = Any  # a pytree of non-trained model variables (BatchNorm
                  # statistics, fixed gates); ``{}`` when there are none
PyTree = Any


class Batch(NamedTuple):
    """A minibatch of examples.

    Attributes:
      x: ``[B, ...]`` inputs: raw (e.g. uint8 pixels) as the data layer
        gathers them, or prepared for the model (float) once the
        protocol's ``prepare`` has run.
      y: int32 ``[B]`` targets (the output unit of the correct class).
      task: int32 ``[B]`` the task each example comes from. Its active
        outputs are ``ctx.active[ctx.task_id, task]``.
    """

    x: Array
    y: Array
    task: Array


class TaskCtx(NamedTuple):
    """What a method may know about where it is in the task sequence.

    Arrays only, so a new task never recompiles; the one exception is the
    first task's own training program, where ``task_id`` is the Python
    ``0`` (:attr:`first_task`), so that terms weighted by a schedule known
    to be 0 there (replay, :func:`jcl.core.combine.replayed`) are left out
    of the program rather than computed and zeroed.

    Attributes:
      task_id: int32 ``[]``, 0-based index of the task being trained
        (the Python ``0`` in the first task's training program).
      key: PRNG key for this step (or this consolidation).
      active: bool ``[T, T, C]``; ``active[i, j]`` are the output units that
        are active for data of task ``j`` once tasks ``0..i`` have been
        learned. The scenario (Task-, Domain-, Class-IL) is this table.
    """

    task_id: Array
    key: PRNGKey
    active: Array

    @property
    def first_task(self) -> bool:
        """Whether this is, known while tracing, the first task's
        program (``False`` where the task is a traced index)."""
        return isinstance(self.task_id, int) and self.task_id == 0

    def mask(self, task: Array, learned: Array | None = None) -> Array:
        """Active-output masks ``[B, C]`` for examples of tasks ``task``.

        Args:
          task: int ``[B]`` task of each example.
          learned: index of the last learned task (default: ``task_id``).
        """
        i = self.task_id if learned is None else learned
        return self.active[i, task]


class Snapshot(NamedTuple):
    """A model at one moment: its parameters and its model state (a frozen
    teacher is a ``Snapshot`` kept in a method's state)."""

    params: Params
    model_state: ModelState


class Forward(NamedTuple):
    """What a method's ``loss`` sees (built inside the differentiated
    objective, so ``params`` carries the gradient).

    Attributes:
      params: all parameters (trainable and frozen leaves).
      model_state: the model state before this step.
      batch: the current minibatch, inputs prepared.
      outputs: the model's outputs on ``batch`` in training mode, a dict
        (``'logits'``; ``'features'``; generative models add ``'mu'``,
        ``'logvar'``): one forward pass shared by every chain member.
      aux: auxiliary outputs of the chain members before this one,
        ``{member name: dict}``.
    """

    params: Params
    model_state: ModelState
    batch: Batch
    outputs: dict
    aux: dict


class Step(NamedTuple):
    """What a gradient stage and ``update`` see, after the backward pass.

    Attributes:
      params: the parameters before the optimiser step.
      new_params: after it (equal to ``params`` in a gradient stage, which
        runs before the optimiser).
      grads: gradients of the trainable leaves; frozen leaves are ``None``
        holes (``jcl.core.tree.split_like(params, grads)`` separates them).
      model_state: the model state after the forward pass.
      batch: the current minibatch, inputs prepared.
      raw: the same minibatch as gathered (e.g. uint8 pixels), for methods
        that store examples.
      outputs: the model's outputs on ``batch`` (see :class:`Forward`).
      aux: every chain member's auxiliary outputs from ``loss``.
    """

    params: Params
    new_params: Params
    grads: PyTree
    model_state: ModelState
    batch: Batch
    raw: Batch
    outputs: dict
    aux: dict


@flax.struct.dataclass
class TaskEnd:
    """What ``consolidate`` sees when a task ends.

    A pytree whose ``prepare`` function is static (part of the tree's
    structure, not a leaf), so a ``TaskEnd`` passes through ``jax.jit``
    like the other records; ``end.replace(params=...)`` makes a changed
    copy.

    Attributes:
      params: the parameters after the task's last step.
      model_state: the model state then.
      data: the task's training data (:class:`jcl.core.taskdata.TaskData`,
        device resident); :func:`jcl.core.taskdata.task_batch` gathers
        entries and :func:`jcl.core.over_task.over_task` scans them in
        chunks.
      prepare: the protocol's ``raw inputs -> model inputs`` function.

    >>> import jax, jax.numpy as jnp
    >>> end = TaskEnd({'w': jnp.ones(2)}, {}, None, lambda x: x / 255)
    >>> jax.jit(lambda e: e.params['w'].sum())(end)
    Array(2., dtype=float32)
    """

    params: Params
    model_state: ModelState
    data: Any
    prepare: Callable = flax.struct.field(pytree_node=False)


class CLState(NamedTuple):
    """The whole carry of continual training: all that a resume needs.

    Attributes:
      params: model parameters (trainable and frozen leaves).
      model_state: non-trained model variables (BatchNorm statistics,
        fixed gates).
      opt_state: the optax state of the trainable leaves.
      mstate: the method's own state (teachers, Fisher, SI omega, ...).
      step: int32 ``[]`` optimisation steps taken so far.
      key: PRNG key from which every later task draws its randomness.
    """

    params: Params
    model_state: ModelState
    opt_state: PyTree
    mstate: PyTree
    step: Array
    key: PRNGKey
