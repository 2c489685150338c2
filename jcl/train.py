"""Compiled continual training: a task is one ``lax.scan`` over steps.

``Learner`` is the static part of an experiment (architecture, how to
build the method and optimiser from hyperparameters, step counts). The
numeric hyperparameters ``hp`` (a dict of scalars) are arguments, so a
seed or a grid point is just a ``vmap`` axis::

    learner = Learner(clf.init, clf.apply, make_method, make_tx,
                      num_steps=2000, batch_size=128)
    states = jax.vmap(init_state, (None, 0, 0, None))(learner, hp, keys,
                                                      proto.active)
    states, metrics, acc = train_tasks(learner)(states, hp, train, test,
                                               active, task_id)
"""

import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jcl.data import TaskData, gather
from jcl.evaluate import task_accuracies
from jcl.types import CLState, TaskCtx

FROZEN = ('gates', 'backbone')

# Progress inside a task: the compiled scan calls ``_heartbeat(step)`` ten
# times per task through ``jax.debug.callback``; it forwards to the hook
# installed with :func:`step_hook` (none by default, so library users who
# call ``train_task`` directly see nothing).
_HOOK = [None]


def _heartbeat(step):
    hook = _HOOK[0]
    if hook is not None:
        hook(int(step))


class step_hook:
    """Context manager: ``fn(steps_done)`` is called about ten times per
    task from inside the compiled loop (on the host, while it runs).

    Example::

        with step_hook(lambda n: print(n, 'steps')):
            states, metrics, acc = task(states, hp, train, test, active, t)
    """

    def __init__(self, fn):
        self.fn, self.prev = fn, None

    def __enter__(self):
        self.prev, _HOOK[0] = _HOOK[0], self.fn
        return self

    def __exit__(self, *exc):
        _HOOK[0] = self.prev
        return False


def _maybe_heartbeat(i, num_steps):
    """Calls the host hook after every tenth of the task's steps (not after
    the last one: the task's own progress line follows)."""
    every = max(1, num_steps // 10)
    done = i + 1
    jax.lax.cond((done % every == 0) & (done < num_steps),
                 lambda: jax.debug.callback(_heartbeat, done),
                 lambda: None)


class Learner(NamedTuple):
    """The static description of a continual learner.

    Attributes:
      init_params: ``key -> params['classifier']``.
      classify: ``(params, x, task) -> logits`` on the whole params dict.
      make_method: ``hp -> Method`` (numeric hp may be tracers).
      make_optimizer: ``(hp, params) -> optax transform`` of the trainable
        sub-trees (a dict keyed like ``params``).
      num_steps: optimisation steps per task.
      batch_size: current-task minibatch size.
      frozen: top-level parameter keys that are never trained.
      reset_optimizer: start every task with a fresh optimiser state (the
        reference's ``adam_reset``; separate networks need it).
    """

    init_params: Callable
    classify: Callable
    make_method: Callable
    make_optimizer: Callable
    num_steps: int
    batch_size: int
    frozen: tuple = FROZEN
    reset_optimizer: bool = False


def partition(params, frozen=FROZEN):
    """Splits the top-level params dict into (trainable, frozen) dicts."""
    train = {k: v for k, v in params.items() if k not in frozen}
    fixed = {k: v for k, v in params.items() if k in frozen}
    return train, fixed


def adam(hp, params):
    """Adam(lr=hp['lr'], 0.9, 0.999) on every trainable sub-tree.

    Adam acts leaf by leaf, so one Adam over ``{'classifier', 'generator'}``
    is exactly one optimiser per model with the same settings; a generator
    with its own rate uses ``hp['gen.lr']``.
    """
    lr = hp['lr']
    if 'generator' in params and 'gen.lr' in hp:
        labels = {k: ('gen' if k == 'generator' else 'main') for k in params}
        return optax.multi_transform(
            {'main': optax.adam(lr, 0.9, 0.999),
             'gen': optax.adam(hp['gen.lr'], 0.9, 0.999)}, labels)
    return optax.adam(lr, 0.9, 0.999)


def init_state(learner: Learner, hp, key, active) -> CLState:
    """The carry before the first task.

    Args:
      learner: the static learner. hp: dict of scalar hyperparameters.
      key: this run's PRNG key (one seed). active: ``[T, T, C]`` table.
    """
    k_params, k_ext, k_method, k_run = jax.random.split(key, 4)
    method = learner.make_method(hp)
    params = {'classifier': learner.init_params(k_params)}
    params = method.extend_params(params, k_ext)
    trainable, _ = partition(params, learner.frozen)
    tx = learner.make_optimizer(hp, trainable)
    mstate = method.init(params, k_method)
    del active  # the table is passed at train time
    return CLState(params, tx.init(trainable), mstate,
                   jnp.zeros((), jnp.int32), k_run)


def train_task(learner: Learner, state: CLState, hp, train: TaskData,
               test: TaskData, active, task_id):
    """Trains one task, consolidates, and evaluates on every task.

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
    method = learner.make_method(hp)
    key, k_steps, k_cons = jax.random.split(state.key, 3)
    _, fixed = partition(state.params, learner.frozen)
    tx = learner.make_optimizer(hp, partition(state.params,
                                              learner.frozen)[0])

    def step(carry, xs):
        params, opt_state, mstate = carry
        i, pick, k_loss = xs
        _maybe_heartbeat(i, learner.num_steps)
        batch = gather(train, train.index[task_id, pick],
                       train.origin[task_id, pick])
        ctx = TaskCtx(task_id, k_loss, active)

        def objective(trainable):
            terms = method.loss({**fixed, **trainable}, mstate, batch, ctx)
            return sum(terms.values()), terms

        trainable, _ = partition(params, learner.frozen)
        (total, terms), grads = jax.value_and_grad(
            objective, has_aux=True)(trainable)
        updates, opt_state = tx.update(grads, opt_state, trainable)
        new_params = {**fixed, **optax.apply_updates(trainable, updates)}
        mstate = method.update(mstate, params, grads, new_params, ctx)
        return (new_params, opt_state, mstate), {'loss': total, **terms}

    opt_state = state.opt_state
    if learner.reset_optimizer:
        opt_state = tx.init(partition(state.params, learner.frozen)[0])
    carry = (state.params, opt_state, state.mstate)
    # All minibatch draws of the task at once (one RNG call, not one per
    # step): uniform with replacement over the task's examples.
    k_batch, k_loss = jax.random.split(k_steps)
    picks = jax.random.randint(
        k_batch, (learner.num_steps, learner.batch_size), 0,
        train.count[task_id])
    (params, opt_state, mstate), metrics = jax.lax.scan(
        step, carry, (jnp.arange(learner.num_steps), picks,
                      jax.random.split(k_loss, learner.num_steps)))
    mstate = method.consolidate(mstate, params, train,
                                TaskCtx(task_id, k_cons, active))
    acc = _each_eval(lambda d: task_accuracies(
        learner.classify, params, d, active[task_id]), test)
    new_state = CLState(params, opt_state, mstate,
                        state.step + learner.num_steps, key)
    return new_state, metrics, acc


def initial_accuracy(learner: Learner, state: CLState, test: TaskData,
                     active):
    """``R_init[i, j]``: the untrained model with row ``i``'s masks."""
    return _each_eval(lambda d: jax.vmap(lambda row: task_accuracies(
        learner.classify, state.params, d, row))(active), test)


def _each_eval(fn, evals):
    """Applies ``fn`` to one TaskData or to each value of a dict of them."""
    if isinstance(evals, TaskData):
        return fn(evals)
    return {k: fn(v) for k, v in evals.items()}


def data_axes(data: TaskData):
    """``vmap`` axes of a :class:`TaskData`: shared (None) by default."""
    return jax.tree.map(lambda _: None, data)


def compile_run(learner: Learner, *, train_axes=None, test_axes=None):
    """Builds the jitted, seed-vmapped functions of one learner.

    Args:
      learner: the static learner.
      train_axes, test_axes: ``vmap`` axes of the data (``None``: the data
        is shared by all seeds; a per-seed class order stacks index tables
        on axis 0).

    Returns:
      ``(init, task, init_acc)``: ``init(hp, keys, active)``,
      ``task(states, hp, train, test, active, task_id)`` (donates
      ``states``), ``init_acc(states, test, active)``; every function maps
      over the leading axis of ``hp``/``keys``/``states``.
    """
    init = jax.jit(jax.vmap(functools.partial(init_state, learner),
                            in_axes=(0, 0, None)))
    task = jax.jit(jax.vmap(functools.partial(train_task, learner),
                            in_axes=(0, 0, train_axes, test_axes, None,
                                     None)),
                   donate_argnums=0)
    init_acc = jax.jit(jax.vmap(functools.partial(initial_accuracy,
                                                  learner),
                                in_axes=(0, test_axes, None)))
    return init, task, init_acc
