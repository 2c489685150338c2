"""Hindsight anchor learning (HAL; Chaudhry et al., AAAI 2021), as the
DER paper's code runs it (mammoth 7ab9db9, ``models/hal.py``).

Experience replay from a reservoir buffer (the mean cross-entropy over
the batch joined with ``minibatch`` stored examples: the method's own
current-data objective), plus one anchor per class learned so far. The
anchor term keeps the model's outputs on the anchors where a plain step
would take them: with ``g`` the step's gradient and ``theta' = theta - lr
g`` (the look-ahead; plain SGD), the gradient stage adds the gradient of
``lambda * mean((f(theta', anchors) - f(theta, anchors))^2)``
(``f(theta', .)`` held fixed; mammoth steps, restores ``theta`` and steps
again with the gradients accumulated, which is this one step). ``phi``, a
running mean of the current batches' features at the updated parameters
(``phi <- beta phi + (1 - beta) mean features``), is reset at each task's
end, after the anchors of the task's classes are learned: the model is
fine-tuned by ``finetune_steps`` SGD steps on a buffer draw of ``batch``
examples (``theta_m``), and each anchor, from uniform noise in the
model's input space, takes ``anchor_steps`` SGD steps on
``CE(f(theta_t, e), c) - CE(f(theta_m, e), c) + gamma * ||h(theta_t, e) -
phi||^2`` (``h``: the features; forgetting on ``theta_m`` maximised, the class
kept on ``theta_t``, the features near the task's mean). Every SGD
step uses the run's ``lr``.

>>> from jcl.models import mlp_classifier
>>> from jcl.tasks.protocols import pixels
>>> clf = mlp_classifier((8,), num_outputs=4, input_dim=6)
>>> m = hal(clf, prepare=pixels, input_shape=(6,), num_tasks=2,
...         classes_per_task=2, size=10, lr=0.1, beta=0.5, gamma=0.1,
...         lam=0.1)
>>> import jax
>>> from jcl.core.records import Snapshot
>>> state = m.init(Snapshot(*clf.init(jax.random.PRNGKey(0))), None)
>>> state.anchors.shape, state.phi.shape
((4, 6), (8,))
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jcl.core import losses, tree
from jcl.core.method import Method, make_method, member_key
from jcl.core.model import Model
from jcl.core.records import Array
from jcl.methods import buffers
from jcl.methods.entry import (
    BUDGET,
    NONNEG,
    REPLAY_SIZE,
    UNIT,
    Check,
    MethodEntry,
)
from jcl.methods.experience_replay import joined_ce


class HALState(NamedTuple):
    """HAL's state: the reservoir, the anchors and ``phi``.

    Attributes:
      buffer: the reservoir of raw examples.
      anchors: ``[T * K, ...]`` one prepared input per class (K per task).
      anchor_class: int32 ``[T * K]`` each anchor's output unit.
      anchor_valid: bool ``[T * K]`` the anchors learned so far.
      phi: ``[F]`` the running mean of the current task's features.
    """

    buffer: buffers.Buffer
    anchors: Array
    anchor_class: Array
    anchor_valid: Array
    phi: Array


def task_classes(data, task, classes_per_task: int):
    """The output unit of each class ``r`` of ``task`` (its examples' ``y``
    with ``y mod classes_per_task == r``; -1 for a class with none)."""
    batch, ok = buffers.task_examples(data, task)
    rank = batch.y % classes_per_task
    return jax.vmap(lambda r: jnp.max(jnp.where(ok & (rank == r), batch.y,
                                                -1)))(
        jnp.arange(classes_per_task))


def hal(model: Model, *, prepare, input_shape, num_tasks: int,
        classes_per_task: int, size: int, lr, beta, gamma, lam,
        minibatch: int = 128, batch: int = 128, anchor_steps: int = 100,
        finetune_steps: int = 1, dtype=jnp.uint8) -> Method:
    """HAL.

    Args:
      model: the model trained (its outputs need ``'features'``).
      prepare: the protocol's ``raw -> model input``.
      input_shape: shape of one raw example. num_tasks, classes_per_task:
        the anchors' layout (one per class).
      size: buffer slots (the DER paper's 200, 500, 5120).
      lr: the run's learning rate: the look-ahead's, the fine-tuning's and
        the anchors' SGD steps (mammoth's ``args.lr`` for all three).
      beta: ``phi``'s decay. gamma: the anchors' feature term.
      lam: the anchor term's weight (``hal_lambda``). All four may be
        traced.
      minibatch: stored examples joined to each batch (static).
      batch: examples of the fine-tuning draw (mammoth's batch size).
      anchor_steps: SGD steps per anchor (mammoth: 100).
      finetune_steps: fine-tuning steps before the anchors (mammoth: 1).
      dtype: the stored inputs' dtype.

    Returns:
      A method with state :class:`HALState`, one term ``'loss'`` (its own
      current-data objective) and a gradient stage.
    """
    num_anchors = num_tasks * classes_per_task
    raw_zero = jnp.zeros((1, *input_shape), dtype)

    def outputs(params, model_state, x, task):
        return model.apply(params, model_state, x, task, train=True)[0]

    def init(snap, ctx):
        del ctx  # unused
        x = prepare(raw_zero)
        feats = outputs(snap.params, snap.model_state, x,
                        jnp.zeros(1, jnp.int32))['features']
        return HALState(buffers.empty(size, tuple(input_shape), dtype),
                        jnp.zeros((num_anchors, *x.shape[1:]), x.dtype),
                        jnp.zeros(num_anchors, jnp.int32),
                        jnp.zeros(num_anchors, bool),
                        jnp.zeros(feats.shape[1:], feats.dtype))

    def loss(state, fwd, ctx):
        return {'loss': joined_ce(model, prepare, state.buffer, fwd, ctx,
                                  member_key(ctx, 'hal'), minibatch)}

    def grads(state, step, ctx):
        trainable, frozen = tree.split_like(step.params, step.grads)
        ahead = jax.tree.map(lambda p, g: p - lr * g, trainable, step.grads)
        a_task = jnp.arange(num_anchors) // classes_per_task
        target = jax.lax.stop_gradient(outputs(
            tree.merge(ahead, frozen), step.model_state, state.anchors,
            a_task)['logits'])
        w = state.anchor_valid.astype(jnp.float32)[:, None]

        def anchor_term(part):
            z = outputs(tree.merge(part, frozen), step.model_state,
                        state.anchors, a_task)['logits']
            return lam * jnp.sum(w * jnp.square(target - z)) / jnp.maximum(
                jnp.sum(w) * z.shape[1], 1.0)

        extra = jax.grad(anchor_term)(trainable)
        return jax.tree.map(jnp.add, step.grads, extra)

    def update(state, step, ctx):
        feats = outputs(step.new_params, step.model_state, step.batch.x,
                        step.batch.task)['features']
        phi = beta * state.phi + (1 - beta) * jnp.mean(feats, 0)
        buf = buffers.reservoir_add(state.buffer, step.raw, None,
                                    member_key(ctx, 'hal-store'))
        return state._replace(buffer=buf, phi=phi)

    def ce(params, model_state, x, y, task, ctx):
        z = outputs(params, model_state, x, task)['logits']
        return losses.cross_entropy(z, y, ctx.mask(task))

    def consolidate(state, end, ctx):
        key = member_key(ctx, 'hal-anchors')
        theta_m = end.params
        for i in range(finetune_steps):
            slots, w = buffers.draw(state.buffer, jax.random.fold_in(key, i),
                                    min(batch, size))
            raw = buffers.examples(state.buffer, slots)

            def tune(p, raw=raw, w=w):
                per = ce(p, end.model_state, prepare(raw.x), raw.y,
                         raw.task, ctx)
                return jnp.sum(w * per) / jnp.maximum(jnp.sum(w), 1.0)

            g = jax.grad(tune)(theta_m)
            theta_m = jax.tree.map(lambda p, d: p - lr * d, theta_m, g)
        classes = task_classes(end.data, ctx.task_id, classes_per_task)
        task = jnp.full((1,), ctx.task_id, jnp.int32)

        def anchor_loss(e, c):
            x, y = e[None], c[None]
            out_t = outputs(end.params, end.model_state, x, task)
            return (ce(end.params, end.model_state, x, y, task, ctx)[0]
                    - ce(theta_m, end.model_state, x, y, task, ctx)[0]
                    + gamma * jnp.sum(jnp.square(out_t['features'][0]
                                                 - state.phi)))

        def learn(k, c):
            e = jax.random.uniform(k, state.anchors.shape[1:],
                                   state.anchors.dtype)
            return jax.lax.fori_loop(
                0, anchor_steps,
                lambda _, e: e - lr * jax.grad(anchor_loss)(e, c), e)

        keys = jax.random.split(jax.random.fold_in(key, 1 << 20),
                                classes_per_task)
        new = jax.vmap(learn)(keys, jnp.maximum(classes, 0))
        at = ctx.task_id * classes_per_task + jnp.arange(classes_per_task)
        return state._replace(
            anchors=state.anchors.at[at].set(new),
            anchor_class=state.anchor_class.at[at].set(classes),
            anchor_valid=state.anchor_valid.at[at].set(classes >= 0),
            phi=jnp.zeros_like(state.phi))

    return make_method(init=init, loss=loss, grads=grads, update=update,
                       consolidate=consolidate)


def _build(ctx, hp, model):
    layout = ctx.buffer_layout()
    return hal(model, prepare=layout['prepare'],
               input_shape=layout['input_shape'], dtype=layout['dtype'],
               num_tasks=layout['num_tasks'],
               classes_per_task=layout['classes_per_task'],
               size=ctx.size('hal.budget'),
               minibatch=ctx.size('hal.minibatch'), batch=ctx.batch,
               anchor_steps=ctx.size('hal.anchor_steps'), lr=hp['lr'],
               beta=hp['hal.beta'], gamma=hp['hal.gamma'],
               lam=hp['hal.lambda'])


# Budget 200, minibatch 128, lambda 0.1, beta 0.7, gamma 0.5 (with lr 0.1,
# batch 128): mammoth's best arguments for seq-mnist at 200
# (utils/best_args.py); 500: beta 0.2; 5120: beta 0.7. 100 anchor steps and
# one fine-tuning step: mammoth's fixed values.
ENTRIES = [MethodEntry(
    'hal', _build,
    defaults={'hal.budget': 200.0, 'hal.minibatch': 128.0,
              'hal.lambda': 0.1, 'hal.beta': 0.7, 'hal.gamma': 0.5,
              'hal.anchor_steps': 100.0},
    checks={'hal.budget': BUDGET, 'hal.minibatch': REPLAY_SIZE,
            'hal.lambda': NONNEG, 'hal.beta': UNIT, 'hal.gamma': NONNEG,
            'hal.anchor_steps': Check(
                lambda v: v >= 1 and float(v).is_integer(),
                'must be a whole number of steps >= 1')},
    static=('hal.budget', 'hal.minibatch', 'hal.anchor_steps'),
    own_objective=True,
    summary='hindsight anchor learning (Chaudhry et al. 2021)')]
