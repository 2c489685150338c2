"""Compiled continual training: one step function, two ways to feed it.

``Learner`` is the static part of an experiment (how to build the model,
the method and the optimiser from hyperparameters, how to prepare inputs,
step counts). The numeric hyperparameters ``hp`` (a dict of scalars) are
arguments, so a seed or a grid point is just a ``vmap`` axis.

The same compiled step (:func:`make_step`) runs

* **fused** (:func:`train_task`): a whole task as one ``lax.scan`` over
  minibatches drawn on the device from device-resident data (the fast
  path), or
* **streamed** (:func:`train_chunk`): ``K`` steps over host-prepared
  batches (:mod:`jcl.stream`: epochs, shuffling without replacement, a
  per-task number of steps, a learning-rate schedule).

:func:`finish_task` then consolidates and evaluates.

>>> import jax, jax.numpy as jnp
>>> from jcl.methods import supervised
>>> from jcl.models import mlp_classifier
>>> learner = Learner(
...     make_model=lambda hp: mlp_classifier((8,), num_outputs=2,
...                                          input_dim=4),
...     make_method=lambda hp, model: supervised(),
...     num_steps=10, batch_size=4)
>>> state = init_state(learner, {'lr': 1e-3}, jax.random.PRNGKey(0))
>>> sorted(state.params)
['Dense_0', 'Dense_1']
"""

import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jcl import tree
from jcl.data import TaskData, gather
from jcl.evaluate import task_accuracies
from jcl.model import Model, logits, trainable_labels, trainable_mask
from jcl.optim import adam
from jcl.progress import maybe_heartbeat
from jcl.protocols import pixels
from jcl.types import (
    CLState,
    Forward,
    Snapshot,
    Step,
    TaskCtx,
    TaskEnd,
)


class Learner(NamedTuple):
    """The static description of a continual learner.

    Attributes:
      make_model: ``hp -> Model`` (numeric hp may be tracers, e.g. XdG's
        proportion).
      make_method: ``(hp, model) -> Method``.
      make_optimizer: ``(hp, labels) -> optax transform`` of the trainable
        leaves (:func:`jcl.optim.adam`).
      prepare: the protocol's ``raw inputs -> model inputs``.
      num_steps: optimisation steps per task (fused path).
      batch_size: current-task minibatch size.
      reset_optimizer: start every task with a fresh optimiser state (the
        reference's ``adam_reset``; separate networks need it).
    """

    make_model: Callable
    make_method: Callable
    make_optimizer: Callable = adam
    prepare: Callable = pixels
    num_steps: int = 1
    batch_size: int = 1
    reset_optimizer: bool = False


class _Parts(NamedTuple):
    model: Model
    method: object
    tx: optax.GradientTransformation
    mask: object


def _parts(learner: Learner, hp, params, lr_scale=None) -> _Parts:
    model = learner.make_model(hp)
    method = learner.make_method(hp, model)
    if lr_scale is not None:
        hp = {**hp, 'lr': hp['lr'] * lr_scale}
    tx = learner.make_optimizer(hp, trainable_labels(model, params))
    return _Parts(model, method, tx, trainable_mask(model, params))


def init_state(learner: Learner, hp, key) -> CLState:
    """The carry before the first task.

    Args:
      learner: the static learner. hp: dict of scalar hyperparameters.
      key: this run's PRNG key (one seed).
    """
    k_params, _, k_method, k_run = jax.random.split(key, 4)
    model = learner.make_model(hp)
    params, model_state = model.init(k_params)
    parts = _parts(learner, hp, params)
    trainable, _ = tree.partition(params, parts.mask)
    mstate = parts.method.init(Snapshot(params, model_state),
                               TaskCtx(jnp.int32(0), k_method, None))
    return CLState(params, model_state, parts.tx.init(trainable), mstate,
                   jnp.zeros((), jnp.int32), k_run)


def make_step(learner: Learner, hp, active, task_id, params, lr_scale=None):
    """The training step of one task: ``step(carry, raw, key) -> (carry,
    metrics)``, ``carry = (params, model_state, opt_state, mstate)``.

    One forward pass of the model on the prepared batch is shared by every
    loss term; the gradient is taken of the trainable leaves only; the
    method's gradient stage, the optimiser and the method's ``update``
    follow. ``params`` (any carry's parameters) fixes the trainable/frozen
    split; ``lr_scale`` multiplies the learning rate (a schedule).
    """
    model, method, tx, mask = _parts(learner, hp, params, lr_scale)

    def step(carry, raw, key):
        params, model_state, opt_state, mstate = carry
        batch = raw._replace(x=learner.prepare(raw.x))
        ctx = TaskCtx(task_id, key, active)
        trainable, frozen = tree.partition(params, mask)

        def objective(part):
            p = tree.merge(part, frozen)
            outputs, new_state = model.apply(p, model_state, batch.x,
                                             batch.task, train=True)
            terms, aux = method.loss(
                mstate, Forward(p, model_state, batch, outputs, {}), ctx)
            return sum(terms.values()), (terms, aux, outputs, new_state)

        (total, (terms, aux, outputs, new_state)), grads = \
            jax.value_and_grad(objective, has_aux=True)(trainable)
        record = Step(params, params, grads, new_state, batch, raw,
                      outputs, aux)
        if method.grads is not None:
            grads = method.grads(mstate, record, ctx)
        updates, opt_state = tx.update(grads, opt_state, trainable)
        new_params = tree.merge(optax.apply_updates(trainable, updates),
                                frozen)
        mstate = method.update(
            mstate, record._replace(new_params=new_params, grads=grads), ctx)
        return ((new_params, new_state, opt_state, mstate),
                {'loss': total, **terms})

    return step, tx, mask


def begin_task(learner: Learner, state: CLState, hp) -> CLState:
    """The carry at a task's first step: with a fresh optimiser state if
    the learner resets it at every task."""
    if not learner.reset_optimizer:
        return state
    parts = _parts(learner, hp, state.params)
    trainable, _ = tree.partition(state.params, parts.mask)
    return state._replace(opt_state=parts.tx.init(trainable))


def train_task(learner: Learner, state: CLState, hp, train: TaskData,
               test, active, task_id):
    """Trains one task on device-resident data, consolidates, evaluates.

    Args:
      learner: static. state: the carry. hp: scalar hyperparameters.
      train: the training data. test: the evaluation data, a
        :class:`TaskData` or a dict of them (e.g. ``{'test', 'valid'}``).
      active: bool ``[T, T, C]``.
      task_id: int32 scalar (traced: no recompilation per task).

    Returns:
      ``(state, metrics, acc)``: the new carry; a dict of ``[num_steps]``
      loss curves (``'loss'`` is their sum); ``acc[j]`` = test accuracy on
      task ``j`` now (row ``task_id`` of ``R``), a dict of such rows when
      ``test`` is a dict.
    """
    n = learner.num_steps
    _, k_steps, _ = jax.random.split(state.key, 3)
    state = begin_task(learner, state, hp)
    step, _, _ = make_step(learner, hp, active, task_id, state.params)
    carry = (state.params, state.model_state, state.opt_state, state.mstate)

    def body(carry, xs):
        i, pick, k = xs
        maybe_heartbeat(i, n)
        raw = gather(train, train.index[task_id, pick],
                     train.origin[task_id, pick])
        return step(carry, raw, k)

    # All minibatch draws of the task at once (one RNG call, not one per
    # step): uniform with replacement over the task's examples.
    k_batch, k_loss = jax.random.split(k_steps)
    picks = jax.random.randint(k_batch, (n, learner.batch_size), 0,
                               train.count[task_id])
    carry, metrics = jax.lax.scan(
        body, carry, (jnp.arange(n), picks, jax.random.split(k_loss, n)))
    state = _carry_to_state(state, carry, state.step + n)
    state, acc = finish_task(learner, state, hp, train, test, active,
                             task_id)
    return state, metrics, acc


def train_chunk(learner: Learner, state: CLState, hp, raw, keys, valid,
                lr_scale, active, task_id):
    """``K`` training steps over host-prepared batches (streamed path).

    Args:
      raw: a :class:`jcl.types.Batch` of ``[K, B, ...]`` raw examples.
      keys: ``[K]`` step keys. valid: bool ``[K]``; a step that is not
        valid (padding of a task's last chunk) leaves the carry as it is.
      lr_scale: ``[K]`` learning-rate multipliers (a schedule).
      active, task_id: as :func:`train_task`.

    Returns:
      ``(state, metrics)``, metrics ``[K]`` curves (0 at invalid steps).
    """
    def body(carry, xs):
        batch, k, ok, scale = xs
        step, _, _ = make_step(learner, hp, active, task_id, state.params,
                               scale)
        new, m = step(carry, batch, k)
        keep = lambda a, b: jnp.where(ok, a, b)  # noqa: E731
        return (jax.tree.map(keep, new, carry),
                jax.tree.map(lambda v: jnp.where(ok, v, 0.0), m))

    carry = (state.params, state.model_state, state.opt_state, state.mstate)
    carry, metrics = jax.lax.scan(body, carry, (raw, keys, valid, lr_scale))
    return (_carry_to_state(state, carry,
                            state.step + jnp.sum(valid.astype(jnp.int32))),
            metrics)


def _carry_to_state(state, carry, step):
    params, model_state, opt_state, mstate = carry
    return CLState(params, model_state, opt_state, mstate, step, state.key)


def scores_fn(learner: Learner, hp, state: CLState):
    """``(x, task) -> [B, C]``: the method's prediction override, or the
    model's logits in evaluation mode."""
    model = learner.make_model(hp)
    method = learner.make_method(hp, model)
    snap = Snapshot(state.params, state.model_state)
    if method.predict is not None:
        return functools.partial(method.predict, state.mstate, snap)
    return functools.partial(logits, model, snap)


def finish_task(learner: Learner, state: CLState, hp, train: TaskData,
                test, active, task_id):
    """Consolidates the method at a task's end and evaluates every task.

    The task's randomness came from ``state.key``: its steps from the
    second of its three parts, the consolidation from the third; the
    first is the next task's key.

    Returns:
      ``(state, acc)``: ``acc`` as :func:`train_task`'s (``None`` when
      ``test`` is ``None``).
    """
    model = learner.make_model(hp)
    method = learner.make_method(hp, model)
    key, _, k_cons = jax.random.split(state.key, 3)
    mstate = method.consolidate(
        state.mstate,
        TaskEnd(state.params, state.model_state, train, learner.prepare),
        TaskCtx(task_id, k_cons, active))
    state = state._replace(mstate=mstate, key=key)
    if test is None:
        return state, None
    scores = scores_fn(learner, hp, state)
    return state, each_eval(lambda d: task_accuracies(
        scores, d, active[task_id], learner.prepare), test)


def initial_accuracy(learner: Learner, state: CLState, hp, test, active):
    """``R_init[i, j]``: the untrained model with row ``i``'s masks."""
    scores = scores_fn(learner, hp, state)
    return each_eval(lambda d: jax.vmap(lambda row: task_accuracies(
        scores, d, row, learner.prepare))(active), test)


def each_eval(fn, evals):
    """Applies ``fn`` to one TaskData or to each value of a dict of them."""
    if isinstance(evals, TaskData):
        return fn(evals)
    return {k: fn(v) for k, v in evals.items()}
