"""Shared type aliases and the small state containers of jcl.

Everything here is a pytree of arrays (NamedTuples), so it passes through
``jit``, ``vmap`` and ``lax.scan`` unchanged and can be checkpointed leaf
by leaf.
"""

from typing import Any, NamedTuple

import jax

Array = jax.Array
PRNGKey = jax.Array
Params = Any  # a pytree of arrays: dict[str, ...] at the top level
PyTree = Any


class Batch(NamedTuple):
    """A minibatch of examples.

    Attributes:
      x: float32 ``[B, D]`` inputs (pixels in [0, 1]).
      y: int32 ``[B]`` targets (the output unit of the correct class).
      task: int32 ``[B]`` the task each example comes from. Its active
        outputs are ``ctx.active[ctx.task_id, task]``.
    """

    x: Array
    y: Array
    task: Array


class TaskCtx(NamedTuple):
    """What a method may know about where it is in the task sequence.

    Arrays only, so a new task never recompiles.

    Attributes:
      task_id: int32 ``[]``, 0-based index of the task being trained.
      key: PRNG key for this step (or this consolidation).
      active: bool ``[T, T, C]``; ``active[i, j]`` are the output units that
        are active for data of task ``j`` once tasks ``0..i`` have been
        learned. The scenario (Task-, Domain-, Class-IL) is this table.
    """

    task_id: Array
    key: PRNGKey
    active: Array

    def mask(self, task: Array, learned: Array | None = None) -> Array:
        """Active-output masks ``[B, C]`` for examples of tasks ``task``.

        Args:
          task: int ``[B]`` task of each example.
          learned: index of the last learned task (default: ``task_id``).
        """
        i = self.task_id if learned is None else learned
        return self.active[i, task]


class CLState(NamedTuple):
    """The whole carry of continual training: all that a resume needs.

    Attributes:
      params: model parameters, a dict of named sub-trees (``classifier``,
        optionally ``generator``; frozen parts such as ``gates``).
      opt_state: the optax state of the trainable parameters.
      mstate: the method's own state (teachers, Fisher, SI omega, ...).
      step: int32 ``[]`` optimisation steps taken so far.
      key: PRNG key from which every later task draws its randomness.
    """

    params: Params
    opt_state: PyTree
    mstate: PyTree
    step: Array
    key: PRNGKey
