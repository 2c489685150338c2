"""The diagonal Fisher information of a classifier on a task's data.

``F = mean_x sum_c p(c|x) * (grad log p(c|x))**2``: the expectation over
labels under the model's own predictive distribution (over each example's
active outputs), as EWC uses it.

Two exact ways to compute it: for a model with dense taps
(:class:`jcl.model.DenseTaps`), one backward pass of the layer
perturbations per output unit and one matmul per layer; otherwise
per-example, per-output gradients of every parameter.
"""

from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp

from jcl import losses, tree
from jcl.data import task_batch
from jcl.model import Model, logits
from jcl.types import Snapshot, TaskCtx, TaskEnd

# examples per chunk: the generic path holds about chunk * num_params
# floats, the dense path a few chunk * num_units
GENERIC_CHUNK = 32
DENSE_CHUNK = 256


def example_fisher(classify: Callable, params, x, task, mask, *,
                   select: Callable) -> dict:
    """The diagonal Fisher of one example under the model's own labels.

    ``sum_c p(c|x) * (grad log p(c|x))**2`` over the active outputs, with
    ``p`` the masked softmax (the weights are constants). One forward pass
    and one backward pass per output unit.

    Args:
      classify: ``(params, x, task) -> logits``.
      params: all parameters. x: ``[...]`` one input. task: int ``[]``.
      mask: bool ``[C]`` its active outputs.
      select: the parameter subtree the Fisher is taken of.

    Returns:
      A tree like ``select(params)``.
    """
    def log_probs(p):
        z = classify(p, x[None], task[None])[0]
        return jax.nn.log_softmax(losses.mask_logits(z, mask))

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


def _positions(count, width, key, samples):
    """Entries of the task to use and their 0/1 weights."""
    if samples is None:
        j = jnp.arange(width)
    else:
        # n distinct valid entries: the n smallest uniform scores
        u = jax.random.uniform(key, (width,))
        u = jnp.where(jnp.arange(width) < count, u, 2.0)
        _, j = jax.lax.top_k(-u, min(int(samples), width))
    return j, (j < count).astype(jnp.float32)


def dense_layers(model: Model, params, select: Callable):
    """The dense layers the fast path may use, or ``None``.

    It applies when the model declares ``'taps'``, its layers are dicts
    ``{'kernel': [in, out], 'bias': [out]}``, and ``select`` picks only
    leaves of them (checked by identity, so a ``select`` that computes new
    arrays falls back to the generic path).
    """
    taps = model.views.get('taps')
    if taps is None:
        return None
    layers = taps.layers(params)
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
    return layers


def _dense_chunk_fisher(taps, params, model_state, layers, x, task, mask,
                        weight):
    """``sum_i weight_i * F_i`` of a chunk, for every dense layer.

    For a layer ``y = (a @ W) * gate + b`` the per-example gradients are
    ``a_i (x) u_ic`` for ``W`` (``u = dL/d(a @ W)``, zero where gated) and
    ``d_ic = dL/dy_ic`` for ``b``, so ``sum_i,c p_ic (a_i (x) u_ic)**2 =
    (a**2).T @ sum_c p_c u_c**2``: one backward pass of the perturbations
    per output unit (units active for no example of the chunk, whose ``p``
    is 0, are skipped) and one matmul per layer.
    """
    zeros = {name: {key: jnp.zeros((x.shape[0],) + layer['bias'].shape,
                                   layer['bias'].dtype)
                    for key in ('pre', 'out')}
             for name, layer in layers.items()}

    def log_probs(perturbations):
        z, inputs = taps.apply(params, model_state, x, task, perturbations)
        return jax.nn.log_softmax(losses.mask_logits(z, mask)), inputs

    logp, pullback, inputs = jax.vjp(log_probs, zeros, has_aux=True)
    prob = jax.lax.stop_gradient(jnp.exp(logp)) * weight[:, None]
    num_outputs = logp.shape[-1]
    used = mask & (weight[:, None] > 0)

    def add_class(acc, c):
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


def fisher_diagonal(model: Model, end: TaskEnd, ctx: TaskCtx, *,
                    select: Callable | None = None,
                    samples: int | None = None, chunk: int | None = None,
                    dense: bool = True):
    """The diagonal Fisher on the training data of task ``ctx.task_id``.

    An exact expectation over the active outputs
    ``ctx.active[ctx.task_id, task]`` of each example; examples go through
    in chunks of ``chunk`` (scanned over chunks).

    Args:
      model: the model. end: the finished task (parameters, model state,
        data and its ``prepare``).
      ctx: its context (``task_id``; ``key`` draws the samples).
      select: the parameter subtree the Fisher is taken of (default:
        ``model.main``).
      samples: ``None``: all examples of the task; an int ``n``: ``n``
        examples drawn without replacement (static).
      chunk: examples per vectorised chunk (static; ``None``:
        :data:`DENSE_CHUNK` or :data:`GENERIC_CHUNK`).
      dense: use the dense fast path where it applies (static).

    Returns:
      A tree like ``select(params)``.
    """
    select = model.main if select is None else select
    params, model_state = end.params, end.model_state
    layers = dense_layers(model, params, select) if dense else None
    if chunk is None:
        chunk = GENERIC_CHUNK if layers is None else DENSE_CHUNK
    if layers is None:
        def classify(p, x, task):
            return logits(model, Snapshot(p, model_state), x, task)

        per_example = jax.vmap(
            lambda x, task, mask: example_fisher(classify, params, x, task,
                                                 mask, select=select))

        def chunk_fisher(x, task, mask, w):
            return jax.tree.map(lambda f: jnp.tensordot(w, f, 1),
                                per_example(x, task, mask))

        zeros = tree.zeros_like(select(params))
    else:
        taps = model.views['taps']

        def chunk_fisher(x, task, mask, w):
            return _dense_chunk_fisher(taps, params, model_state, layers, x,
                                       task, mask, w)

        zeros = tree.zeros_like(layers)

    t = ctx.task_id
    j, weight = _positions(end.data.count[t], end.data.index.shape[1],
                           ctx.key, samples)
    pad = -j.shape[0] % chunk
    j = jnp.pad(j, (0, pad)).reshape(-1, chunk)
    weight = jnp.pad(weight, (0, pad)).reshape(-1, chunk)

    def add_chunk(acc, inputs):
        jj, w = inputs
        batch = task_batch(end, t, jj)
        f = chunk_fisher(batch.x, batch.task, ctx.mask(batch.task), w)
        return jax.tree.map(jnp.add, acc, f), None

    total, _ = jax.lax.scan(add_chunk, zeros, (j, weight))
    if layers is not None:  # from the layers' tree to select's
        by_leaf = dict(zip(map(id, jax.tree.leaves(layers)),
                           jax.tree.leaves(total)))
        total = jax.tree.map(lambda leaf: by_leaf[id(leaf)], select(params))
    n = jnp.maximum(jnp.sum(weight), 1.0)
    return jax.tree.map(lambda f: f / n, total)
