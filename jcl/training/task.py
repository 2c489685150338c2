"""Compiled continual training: one step function, two ways to feed it.

A :class:`jcl.training.learner.Learner` is the static part of an experiment; the
numeric hyperparameters ``hp`` (a dict of scalars) are arguments, so a
seed or a grid point is just a ``vmap`` axis.

The same compiled step (:func:`make_step`) runs

* **fused** (:func:`train_task`): a whole task as ``lax.scan`` over
  minibatches drawn on the device from device-resident data (the fast
  path), in one function or in chunks of steps with the host in between
  (:func:`begin_steps`, :func:`run_steps`, :func:`finish_task`: the same
  numbers; what :mod:`jcl.sweep.loop` runs), or
* **streamed** (:func:`train_chunk`): ``K`` steps over host-prepared
  batches (:mod:`jcl.sweep.streamed`: epochs, shuffling without replacement, a
  per-task number of steps, a learning-rate schedule).

:func:`finish_task` then consolidates and evaluates.

>>> import jax, jax.numpy as jnp
>>> from jcl.training.learner import Learner, init_state
>>> from jcl.methods import supervised
>>> from jcl.models import mlp_classifier
>>> learner = Learner(
...     make_model=lambda hp: mlp_classifier((8,), num_outputs=2,
...                                          input_dim=4),
...     make_method=lambda hp, model: supervised(),
...     num_steps=10, batch_size=4)
>>> import numpy as np
>>> from jcl.core import taskdata as data
>>> from jcl.tasks import protocols
>>> x = np.random.RandomState(0).randint(0, 255, (40, 4)).astype(np.uint8)
>>> pool = dict(train_x=x, train_y=np.arange(40) % 2, test_x=x,
...             test_y=np.arange(40) % 2)
>>> proto = protocols.class_split('toy', pool, 'task')     # one task
>>> hp = {'lr': 1e-3}
>>> state = init_state(learner, hp, jax.random.PRNGKey(0))
>>> state, metrics, acc = train_task(
...     learner, state, hp, data.to_device(proto.train),
...     data.to_device(proto.test), jnp.asarray(proto.active), jnp.int32(0))
>>> metrics['loss'].shape, acc.shape, int(state.step)
((10,), (1,), 10)
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jcl.analysis.evaluate import task_accuracies
from jcl.core import tree
from jcl.core.records import CLState, Forward, Step, TaskCtx, TaskEnd
from jcl.core.taskdata import TaskData, gather
from jcl.training import banks
from jcl.training.learner import Learner, begin_task, parts
from jcl.training.scoring import each_eval, scores_fn, tables  # noqa: F401


def make_step(learner: Learner, hp, active, task_id, params, lr_scale=None):
    """The training step of one task: ``step(carry, raw, key) -> (carry,
    metrics)``, ``carry = (params, model_state, opt_state, mstate)``.

    One forward pass of the model on the prepared batch is shared by every
    loss term; the gradient is taken of the trainable leaves only; the
    method's gradient stage, the optimiser and the method's ``update``
    follow. ``params`` (any carry's parameters) fixes the trainable/frozen
    split; ``lr_scale`` multiplies the learning rate (a schedule). With
    ``learner.bank_slices`` only row ``task_id`` of the model's banks is
    differentiated and optimised (:mod:`jcl.training.banks`).
    """
    model, method, tx, mask, banked = parts(learner, hp, params, lr_scale)

    def step(carry, raw, key):
        params, model_state, opt_state, mstate = carry
        batch = raw._replace(x=learner.prepare(raw.x))
        if learner.augment is not None:
            batch = batch._replace(x=learner.augment(
                jax.random.fold_in(key, 0x6175), batch.x))
        ctx = TaskCtx(task_id, key, active)
        whole, frozen = tree.partition(params, mask)
        trainable = banks.take(whole, banked, task_id)

        def objective(part):
            p = tree.merge(banks.put(whole, part, banked, task_id), frozen)
            outputs, new_state = model.apply(p, model_state, batch.x,
                                             batch.task, train=True)
            terms, aux = method.loss(
                mstate, Forward(p, model_state, batch, outputs, {}), ctx)
            if banked is not None:   # a batch of another task: NaN losses
                one = jnp.all(batch.task == task_id)
                terms = {k: jnp.where(one, v, jnp.nan)
                         for k, v in terms.items()}
            return sum(terms.values()), (terms, aux, outputs, new_state)

        (total, (terms, aux, outputs, new_state)), grads = \
            jax.value_and_grad(objective, has_aux=True)(trainable)
        record = Step(params, params, grads, new_state, batch, raw,
                      outputs, aux)
        if method.grads is not None:
            grads = method.grads(mstate, record, ctx)
        updates, opt_state = tx.update(grads, opt_state, trainable)
        new_params = tree.merge(banks.put(
            whole, optax.apply_updates(trainable, updates), banked,
            task_id), frozen)
        mstate = method.update(
            mstate, record._replace(new_params=new_params, grads=grads), ctx)
        return ((new_params, new_state, opt_state, mstate),
                {'loss': total, **terms})

    return step, tx, mask


def draws(learner: Learner, train: TaskData, task_id, key):
    """All minibatch draws of a task at once (one RNG call, not one per
    step): uniform with replacement, or epochs without replacement.

    Returns:
      ``(picks, valid)``: int ``[S, B]`` entries of the task per step, and
      bool ``[S]`` which steps are real (``None``: all are).
    """
    b = learner.batch_size
    count = train.count[task_id]
    if learner.epochs is None:
        return jax.random.randint(key, (learner.num_steps, b), 0,
                                  count), None
    width = train.index.shape[1]
    per_epoch = width // b

    def epoch(k):
        u = jax.random.uniform(k, (width,))
        order = jnp.argsort(jnp.where(jnp.arange(width) < count, u, 2.0))
        return order[:per_epoch * b].reshape(per_epoch, b)

    picks = jax.vmap(epoch)(jax.random.split(key, learner.epochs))
    valid = jnp.tile(jnp.arange(per_epoch) < count // b, learner.epochs)
    return picks.reshape(-1, b), valid



class TaskPlan(NamedTuple):
    """A task's minibatch draws, made once at its start (one RNG call,
    not one per step), so that its steps can run in chunks.

    Attributes:
      picks: int ``[n, B]`` entries of the task, per step.
      keys: ``[n, 2]`` step keys.
      valid: bool ``[n]``, which steps are real (epochs of a smaller
        task), or ``None``: all are.
    """

    picks: jax.Array
    keys: jax.Array
    valid: jax.Array | None


def begin_steps(learner: Learner, state: CLState, hp, train: TaskData,
                task_id):
    """The carry at a task's first step and the task's :class:`TaskPlan`:
    uniform draws with replacement, or epochs without replacement."""
    _, k_steps, _ = jax.random.split(state.key, 3)
    state = begin_task(learner, state, hp, task_id)
    k_batch, k_loss = jax.random.split(k_steps)
    picks, valid = draws(learner, train, task_id, k_batch)
    return state, TaskPlan(picks, jax.random.split(k_loss, picks.shape[0]),
                           valid)


def run_steps(learner: Learner, state: CLState, hp, train: TaskData,
              active, task_id, plan: TaskPlan, start, count: int):
    """Steps ``start .. start + count - 1`` of a task (``count`` static,
    ``start`` may be traced: every chunk of a task, and of every task, is
    the same program).

    Returns:
      ``(state, metrics)``: metrics ``[count]`` curves (0 at steps that are
      not valid).
    """
    step, _, _ = make_step(learner, hp, tables(active)[0], task_id,
                           state.params)
    carry = (state.params, state.model_state, state.opt_state, state.mstate)
    part = jax.tree.map(
        lambda a: jax.lax.dynamic_slice_in_dim(a, start, count), plan)

    def body(carry, xs):
        i, pick, k = xs
        raw = gather(train, train.index[task_id, pick],
                     train.origin[task_id, pick])
        new, metrics = step(carry, raw, k)
        if part.valid is None:
            return new, metrics
        ok = part.valid[i]
        return (jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, carry),
                jax.tree.map(lambda v: jnp.where(ok, v, 0.0), metrics))

    carry, metrics = jax.lax.scan(
        body, carry, (jnp.arange(count), part.picks, part.keys))
    done = (count if part.valid is None
            else jnp.sum(part.valid.astype(jnp.int32)))
    return _carry_to_state(state, carry, state.step + done), metrics


def first_steps(learner: Learner, state: CLState, hp, train: TaskData,
                active, plan: TaskPlan, start, count: int):
    """:func:`run_steps` of the first task, ``ctx.task_id`` the Python
    ``0``: replay, weighted 0, is left out (:func:`jcl.core.combine.scale`)."""
    return run_steps(learner, state, hp, train, active, 0, plan, start,
                     count)


def train_task(learner: Learner, state: CLState, hp, train: TaskData,
               test, active, task_id):
    """Trains one task on device-resident data, consolidates, evaluates:
    :func:`begin_steps`, :func:`run_steps` over the whole task and
    :func:`finish_task` in one function.

    Args:
      learner: static. state: the carry. hp: scalar hyperparameters.
      train: the training data. test: the evaluation data, a
        :class:`TaskData` or a dict of them (e.g. ``{'test', 'valid'}``).
      active: bool ``[T, T, C]``, or a dict of such tables: ``'train'``
        (training and consolidation) and, for any name of ``test``, the
        table that view is scored with (see
        :func:`jcl.training.scoring.tables`).
      task_id: int32 scalar (traced: no recompilation per task).

    Returns:
      ``(state, metrics, acc)``: the new carry; a dict of ``[num_steps]``
      loss curves (``'loss'`` is their sum); ``acc[j]`` = test accuracy on
      task ``j`` now (row ``task_id`` of ``R``), a dict of such rows when
      ``test`` is a dict.
    """
    state, plan = begin_steps(learner, state, hp, train, task_id)
    state, metrics = run_steps(learner, state, hp, train, active, task_id,
                               plan, 0, plan.picks.shape[0])
    state, acc = finish_task(learner, state, hp, train, test, active,
                             task_id)
    return state, metrics, acc


def train_chunk(learner: Learner, state: CLState, hp, raw, keys, valid,
                lr_scale, active, task_id):
    """``K`` training steps over host-prepared batches (streamed path).

    Args:
      raw: a :class:`jcl.core.records.Batch` of ``[K, B, ...]`` raw
        examples. keys: ``[K]`` step keys. valid: bool ``[K]`` (a step
        not valid leaves the carry as it is). lr_scale: ``[K]``
        learning-rate multipliers. active, task_id: as :func:`train_task`.

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
    active, views = tables(active)
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
    return state, each_eval(lambda d, table: task_accuracies(
        scores, d, table[task_id], learner.prepare), test, active, views)
