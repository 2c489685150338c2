"""Elastic weight consolidation (Kirkpatrick et al. 2017), offline and online.

After each task the diagonal Fisher information of the model's predictive
distribution on that task's training data weighs a quadratic penalty that
keeps the parameters near their end-of-task values.

Example::

    m = ewc(clf.apply, strength=1e5)
    mstate = m.init(params, key)
    mstate = m.consolidate(mstate, params, train_data, ctx)
    m.loss(params, mstate, batch, ctx)     # {'penalty': scalar}
"""

from collections.abc import Callable, Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jcl import losses, tree
from jcl.base import Method, make_method
from jcl.data import TaskData, gather
from jcl.types import Params, PyTree, TaskCtx


def _classifier(params):
    return params['classifier']


class EWCState(NamedTuple):
    """Offline EWC: the sum of one quadratic per finished task, kept as one.

    ``sum_k F_k (theta - a_k)**2 = F (theta - m)**2 + offset`` elementwise,
    with ``F = sum_k F_k``, ``m = sum_k F_k a_k / F`` (the Fisher-weighted
    mean anchor) and ``offset = sum_k F_k (a_k - m)**2`` summed over all
    parameters. The penalty and its gradient are therefore exactly those
    of the per-task sum, at the cost of one quadratic whatever the number
    of tasks (the reference keeps one Fisher and anchor per task and sums
    them every step).

    Attributes:
      anchor: like ``select(params)``: ``m`` (where ``F`` is 0: the latest
        anchor, which is weighted 0).
      fisher: like ``anchor``: ``F``, the sum of the tasks' Fishers.
      offset: a scalar, ``sum_k F_k (a_k - m)**2`` (the penalty's constant,
        which has no gradient).
    """

    anchor: PyTree
    fisher: PyTree
    offset: jnp.ndarray


def add_quadratic(state: EWCState, fisher: PyTree,
                  anchor: PyTree) -> EWCState:
    """Adds ``fisher * (theta - anchor)**2`` to a sum of quadratics.

    The parallel-axis update, computed from differences only (no
    cancellation between large terms): with ``F' = F + f`` and ``m' = (F m
    + f a) / F'``, ``offset' = offset + sum F (m - m')**2 + f (a - m')**2``.

    Example::

        s = EWCState(zeros, zeros, jnp.float32(0))
        s = add_quadratic(s, f0, a0)
        s = add_quadratic(s, f1, a1)   # F (theta - m)**2 + offset ==
                                       # f0 (theta-a0)**2 + f1 (theta-a1)**2
    """
    total = jax.tree.map(jnp.add, state.fisher, fisher)

    def center(m, f_new, a, tot):
        safe = jnp.where(tot > 0, tot, 1.0)
        return jnp.where(tot > 0, m + f_new * (a - m) / safe, a)

    mean = jax.tree.map(center, state.anchor, fisher, anchor, total)
    extra = jax.tree.map(
        lambda f_old, m, f_new, a, m2: jnp.sum(
            f_old * jnp.square(m - m2) + f_new * jnp.square(a - m2)),
        state.fisher, state.anchor, fisher, anchor, mean)
    return EWCState(mean, total, state.offset + sum(jax.tree.leaves(extra)))


class OnlineEWCState(NamedTuple):
    """Online EWC: one running Fisher and the latest anchor.

    Attributes:
      anchor: like ``select(params)``, the parameters at the end of the
        latest task (the initial parameters before the first).
      fisher: like ``select(params)``, ``F <- gamma * F + F_task``.
    """

    anchor: PyTree
    fisher: PyTree


def example_fisher(classify: Callable, params: Params, x, task, mask, *,
                   select: Callable = _classifier) -> PyTree:
    """The diagonal Fisher of one example under the model's own labels.

    ``sum_c p(c|x) * (grad log p(c|x))**2`` over the active outputs, with
    ``p`` the masked softmax (the weights are constants). One forward pass
    and one backward pass per output unit.

    Args:
      classify: ``(params, x, task) -> logits`` on the whole params dict.
      params: the whole params dict.
      x: float ``[D]`` one input. task: int ``[]`` its task.
      mask: bool ``[C]`` its active outputs.
      select: the parameter subtree the Fisher is taken of.

    Returns:
      A tree like ``select(params)``.

    Example::

        f = example_fisher(clf.apply, params, x[0], task[0], mask[0])
    """
    def log_probs(p):
        logits = classify(p, x[None], task[None])[0]
        return jax.nn.log_softmax(losses.mask_logits(logits, mask))

    logp, pullback = jax.vjp(log_probs, params)
    prob = jax.lax.stop_gradient(jnp.exp(logp))
    num_outputs = logp.shape[-1]

    def add_class(acc, c):
        (grad,) = pullback(jax.nn.one_hot(c, num_outputs, dtype=logp.dtype))
        acc = jax.tree.map(lambda a, g: a + prob[c] * jnp.square(g), acc,
                           select(grad))
        return acc, None

    acc, _ = jax.lax.scan(add_class, tree.zeros_like(select(params)),
                          jnp.arange(num_outputs))
    return acc


def _positions(data: TaskData, ctx: TaskCtx, samples):
    """Entries of task ``ctx.task_id`` to use and their 0/1 weights."""
    width = data.index.shape[1]
    count = data.count[ctx.task_id]
    if samples is None:
        j = jnp.arange(width)
    else:
        # n distinct valid entries: the n smallest uniform scores
        u = jax.random.uniform(ctx.key, (width,))
        u = jnp.where(jnp.arange(width) < count, u, 2.0)
        _, j = jax.lax.top_k(-u, min(int(samples), width))
    return j, (j < count).astype(jnp.float32)


# examples per chunk: the generic path holds about chunk * num_params
# floats, the dense path a few chunk * num_units
GENERIC_CHUNK = 32
DENSE_CHUNK = 256


def dense_taps(classify: Callable, params: Params,
               select: Callable = _classifier) -> Callable | None:
    """The taps of a dense classifier, if the Fisher may use them.

    The dense fast path applies when ``classify`` carries
    ``classify.dense_taps`` (as :func:`jcl.models.classifier.mlp_classifier`'s
    ``apply`` does), ``params['classifier']`` is a dict of layers
    ``{'kernel': [in, out], 'bias': [out]}``, and ``select`` picks only
    leaves of it (checked by identity, so a ``select`` that computes new
    arrays falls back to the generic path).

    Args:
      classify: ``(params, x, task) -> logits`` on the whole params dict.
      params: the whole params dict.
      select: the parameter subtree the Fisher is taken of.

    Returns:
      ``classify.dense_taps`` or ``None`` (use the generic path).

    Example::

        dense_taps(clf.apply, params) is clf.apply.dense_taps   # True
    """
    taps = getattr(classify, 'dense_taps', None)
    if taps is None or not isinstance(params, Mapping):
        return None
    layers = params.get('classifier')
    if not isinstance(layers, Mapping) or not layers:
        return None
    for layer in layers.values():
        if not (isinstance(layer, Mapping)
                and set(layer) == {'kernel', 'bias'}
                and jnp.ndim(layer['kernel']) == 2
                and jnp.ndim(layer['bias']) == 1):
            return None
    own = {id(leaf) for leaf in jax.tree.leaves(layers)}
    if not all(id(leaf) in own for leaf in jax.tree.leaves(select(params))):
        return None
    return taps


def _dense_chunk_fisher(taps: Callable, params: Params, x, task, mask,
                        weight) -> PyTree:
    """``sum_i weight_i * F_i`` of a chunk, for every dense layer.

    For a layer ``y = (a @ W) * gate + b`` the per-example gradients are
    ``a_i (x) u_ic`` for ``W`` (``u = dL/d(a @ W)``, zero where gated) and
    ``d_ic = dL/dy_ic`` for ``b``, so ``sum_i,c p_ic (a_i (x) u_ic)**2 =
    (a**2).T @ sum_c p_c u_c**2``: one backward pass of the perturbations
    per output unit (each example only moves its own rows; units active
    for no example of the chunk, whose ``p`` is 0, are skipped) and one
    matmul per layer.

    Args:
      taps: ``(params, x, task, perturbations) -> (logits, inputs)``.
      params: the whole params dict.
      x: ``[B, D]``. task: ``[B]``. mask: bool ``[B, C]``.
      weight: ``[B]`` each example's weight (0 for padding).

    Returns:
      A tree like ``params['classifier']``.
    """
    zeros = {name: {key: jnp.zeros((x.shape[0],) + layer['bias'].shape,
                                   layer['bias'].dtype)
                    for key in ('pre', 'out')}
             for name, layer in params['classifier'].items()}

    def log_probs(perturbations):
        logits, inputs = taps(params, x, task, perturbations)
        return (jax.nn.log_softmax(losses.mask_logits(logits, mask)),
                inputs)

    logp, pullback, inputs = jax.vjp(log_probs, zeros, has_aux=True)
    prob = jax.lax.stop_gradient(jnp.exp(logp)) * weight[:, None]
    num_outputs = logp.shape[-1]
    used = mask & (weight[:, None] > 0)

    def add_class(acc, c):
        """Adds ``p_ic * g_ic**2`` of the perturbations' gradients ``g``
        of ``sum_i log p(c|x_i)``; skipped if no example has ``c``."""
        def add(acc):
            (grads,) = pullback(jnp.broadcast_to(
                jax.nn.one_hot(c, num_outputs, dtype=logp.dtype),
                logp.shape))
            return jax.tree.map(
                lambda a, g: a + prob[:, c, None] * jnp.square(g), acc,
                grads)

        return jax.lax.cond(jnp.any(used[:, c]), add, lambda a: a, acc), None

    expect, _ = jax.lax.scan(add_class, zeros, jnp.arange(num_outputs))
    return {name: {'kernel': jnp.square(inputs[name]).T
                   @ expect[name]['pre'],
                   'bias': jnp.sum(expect[name]['out'], axis=0)}
            for name in zeros}


def fisher_diagonal(classify: Callable, params: Params, data: TaskData,
                    ctx: TaskCtx, *, select: Callable = _classifier,
                    samples: int | None = None, chunk: int | None = None,
                    dense: bool = True) -> PyTree:
    """The diagonal Fisher on the training data of task ``ctx.task_id``.

    ``F = mean_x sum_c p(c|x) * (grad log p(c|x))**2``, an exact
    expectation over the active outputs ``ctx.active[ctx.task_id, task]``
    of each example. Examples go through in chunks of ``chunk`` (scanned
    over chunks).

    Two exact ways: for a network of :class:`jcl.models.classifier.Dense`
    layers (see :func:`dense_taps`) one backward pass of the layer
    perturbations per output unit active in the chunk, and the squared
    per-example gradients contracted by one matmul per layer (memory a
    few ``chunk * num_units``); otherwise per-example, per-output
    gradients of every parameter (vmapped within a chunk, memory about
    ``chunk * num_params``).

    Args:
      classify: ``(params, x, task) -> logits`` on the whole params dict.
      params: the whole params dict.
      data: the :class:`jcl.data.TaskData` of the finished task.
      ctx: its context (``task_id``; ``key`` draws the samples).
      select: the parameter subtree the Fisher is taken of.
      samples: ``None``: all ``data.count[task_id]`` examples; an int
        ``n``: ``n`` examples drawn without replacement (static).
      chunk: examples per vectorised chunk (static; ``None``:
        :data:`DENSE_CHUNK` or :data:`GENERIC_CHUNK`).
      dense: use the dense fast path where it applies (static; ``False``:
        always the generic path).

    Returns:
      A tree like ``select(params)``.

    Example::

        f = fisher_diagonal(clf.apply, params, train, ctx, samples=1000)
    """
    taps = dense_taps(classify, params, select) if dense else None
    if chunk is None:
        chunk = GENERIC_CHUNK if taps is None else DENSE_CHUNK
    if taps is None:
        per_example = jax.vmap(
            lambda x, task, mask: example_fisher(classify, params, x, task,
                                                 mask, select=select))

        def chunk_fisher(x, task, mask, w):
            return jax.tree.map(lambda f: jnp.tensordot(w, f, 1),
                                per_example(x, task, mask))

        zeros = tree.zeros_like(select(params))
    else:
        def chunk_fisher(x, task, mask, w):
            return _dense_chunk_fisher(taps, params, x, task, mask, w)

        zeros = tree.zeros_like(params['classifier'])

    j, weight = _positions(data, ctx, samples)
    pad = -j.shape[0] % chunk
    j = jnp.pad(j, (0, pad)).reshape(-1, chunk)
    weight = jnp.pad(weight, (0, pad)).reshape(-1, chunk)

    def add_chunk(acc, inputs):
        jj, w = inputs
        batch = gather(data, data.index[ctx.task_id, jj],
                       data.origin[ctx.task_id, jj])
        f = chunk_fisher(batch.x, batch.task, ctx.mask(batch.task), w)
        return jax.tree.map(jnp.add, acc, f), None

    total, _ = jax.lax.scan(add_chunk, zeros, (j, weight))
    if taps is not None:
        total = select({**params, 'classifier': total})
    n = jnp.maximum(jnp.sum(weight), 1.0)
    return jax.tree.map(lambda f: f / n, total)


def ewc(classify: Callable, *, strength, fisher_samples: int | None = None,
        online: bool = False, gamma=1.0,
        select: Callable = _classifier, chunk: int | None = None,
        dense: bool = True) -> Method:
    """Elastic weight consolidation.

    Offline (the default): one Fisher ``F_k`` and anchor ``theta*_k`` per
    finished task, ``penalty = strength / 2 * sum_k sum_i F_k,i
    (theta_i - theta*_k,i)**2``, held as one equal quadratic (see
    :class:`EWCState`). Online: ``F <- gamma * F + F_task``, one
    anchor (the latest), ``penalty = strength / 2 * sum_i gamma * F_i
    (theta_i - theta*_i)**2`` (the reference's extra ``gamma``).

    Args:
      classify: ``(params, x, task) -> logits`` on the whole params dict.
      strength: ``lambda`` (may be a tracer).
      fisher_samples: ``None``: the Fisher uses the whole task; an int:
        that many examples, drawn without replacement.
      online: online EWC (static).
      gamma: online EWC's decay (may be a tracer).
      select: the parameter subtree that is regularised.
      chunk: examples per vectorised Fisher chunk (static; ``None``: the
        default of the path :func:`fisher_diagonal` takes).
      dense: let the Fisher use the dense fast path where it applies
        (static; see :func:`fisher_diagonal`).

    Returns:
      A method with one term, ``'penalty'`` (already times ``strength``);
      its state is an :class:`EWCState` or :class:`OnlineEWCState`.

    Example::

        m = ewc(clf.apply, strength=hp['ewc.lambda'])
        online = ewc(clf.apply, strength=1e3, online=True, gamma=0.9)
    """
    def init(params, key):
        del key  # unused
        theta = select(params)
        if online:
            return OnlineEWCState(theta, tree.zeros_like(theta))
        return EWCState(theta, tree.zeros_like(theta), jnp.float32(0.0))

    def loss(params, mstate, batch, ctx):
        del batch, ctx  # unused
        theta = select(params)
        if online:
            dist = gamma * tree.weighted_sq_dist(mstate.fisher, theta,
                                                 mstate.anchor)
        else:
            dist = tree.weighted_sq_dist(mstate.fisher, theta,
                                         mstate.anchor) + mstate.offset
        return {'penalty': strength * 0.5 * dist}

    def consolidate(mstate, params, data, ctx):
        new = fisher_diagonal(classify, params, data, ctx, select=select,
                              samples=fisher_samples, chunk=chunk,
                              dense=dense)
        theta = select(params)
        if online:
            fisher = jax.tree.map(lambda f, n: gamma * f + n, mstate.fisher,
                                  new)
            return OnlineEWCState(theta, fisher)
        return add_quadratic(mstate, new, theta)

    return make_method(init=init, loss=loss, consolidate=consolidate)
