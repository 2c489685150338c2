"""Per-example gradients and their weighted powers, fast for dense models.

Importance estimates of continual learning (EWC's Fisher, MAS, the
empirical Fisher) are sums over examples of squared (or absolute)
*per-example* gradients. A plain ``vmap(grad)`` materialises one gradient
per example; :func:`weighted_powers` gets the same sums for any model,
and for a model that declares dense taps
(:class:`jcl.core.model.DenseTaps`: the MLP classifiers) in a fraction
of the time: for a layer
``y = a @ W + b`` the per-example gradient of ``W`` is the outer product
``a_i (x) u_i``, so ``sum_i w_i |a_i (x) u_i|**p = (|a|**p).T @ (w |u|**p)``:
one backward pass of the layer perturbations per output and one matmul
per layer.

>>> import jax, jax.numpy as jnp
>>> from jcl.core.records import Snapshot
>>> from jcl.models import mlp_classifier
>>> clf = mlp_classifier((8,), num_outputs=3, input_dim=4)
>>> snap = Snapshot(*clf.init(jax.random.PRNGKey(0)))
>>> x, task = jnp.ones((5, 4)), jnp.zeros(5, jnp.int32)
>>> fast = weighted_powers(clf, snap, x, task, lambda z, e: z)
>>> slow = weighted_powers(clf, snap, x, task, lambda z, e: z, dense=False)
>>> bool(jnp.allclose(fast['Dense_0']['kernel'],
...                   slow['Dense_0']['kernel'], rtol=1e-5))
True
"""

from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp

from jcl.core import tree
from jcl.core.model import Model
from jcl.core.records import Snapshot


def grads(loss: Callable, params, *batch):
    """Per-example gradients by ``vmap(grad)`` (any function, any model).

    Args:
      loss: ``(params, *example) -> scalar`` for one example.
      params: the parameters differentiated.
      *batch: arrays with a leading example axis ``[B, ...]``.

    Returns:
      A tree like ``params`` with a leading ``[B]`` axis.
    """
    return jax.vmap(jax.grad(loss), in_axes=(None,) + (0,) * len(batch))(
        params, *batch)


def _power(g, power):
    if power == 2:
        return jnp.square(g)
    if power == 1:
        return jnp.abs(g)
    return jnp.abs(g) ** power


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


def _dense(model, snap, layers, x, task, outputs, extra, example_weight,
           output_weight, power, active):
    """``sum_i w_i sum_k v_ik |g_ik|**p`` of every dense layer."""
    taps = model.views['taps']
    zeros = {name: {key: jnp.zeros((x.shape[0],) + layer['bias'].shape,
                                   layer['bias'].dtype)
                    for key in ('pre', 'out')}
             for name, layer in layers.items()}

    def forward(perturbations):
        z, inputs = taps.apply(snap.params, snap.model_state, x, task,
                               perturbations)
        return outputs(z, extra), inputs

    outs, pullback, inputs = jax.vjp(forward, zeros, has_aux=True)
    weight = output_weight(outs) * example_weight[:, None]
    num = outs.shape[-1]
    # outputs that no example uses are skipped; the test depends on the
    # data alone (not the parameters), so under vmap over rows it stays a
    # branch, not a select of both
    used = example_weight[:, None] > 0
    if active is not None:
        used = active & used

    def add_output(acc, k):
        def add(acc):
            (g,) = pullback(jnp.broadcast_to(
                jax.nn.one_hot(k, num, dtype=outs.dtype), outs.shape))
            return jax.tree.map(
                lambda a, d: a + weight[:, k, None] * _power(d, power), acc,
                g)

        return jax.lax.cond(jnp.any(used[:, k]), add, lambda a: a, acc), None

    expect, _ = jax.lax.scan(add_output, zeros, jnp.arange(num))
    return {name: {'kernel': _power(inputs[name], power).T
                   @ expect[name]['pre'],
                   'bias': jnp.sum(expect[name]['out'], axis=0)}
            for name in zeros}


def _generic(model, snap, select, x, task, outputs, extra, example_weight,
             output_weight, power):
    """The same sums from one vector-Jacobian product per example."""
    def one(x1, task1, extra1):
        def out(p):
            z, _ = model.apply(p, snap.model_state, x1[None], task1[None],
                               train=False)
            return outputs(z['logits'], jax.tree.map(lambda e: e[None],
                                                     extra1))[0]

        o, pullback = jax.vjp(out, snap.params)
        weight = output_weight(o)

        def add_output(acc, k):
            (g,) = pullback(jax.nn.one_hot(k, o.shape[-1], dtype=o.dtype))
            return jax.tree.map(lambda a, d: a + weight[k] * _power(d, power),
                                acc, select(g)), None

        acc, _ = jax.lax.scan(add_output, tree.zeros_like(select(
            snap.params)), jnp.arange(o.shape[-1]))
        return acc

    per = jax.vmap(one)(x, task, extra)
    return jax.tree.map(lambda f: jnp.tensordot(example_weight, f, 1), per)


def weighted_powers(model: Model, snap: Snapshot, x, task, outputs, extra=None,
                    *, example_weight=None, output_weight=None, active=None,
                    power=2, select: Callable | None = None,
                    dense: bool = True):
    """``sum_i w_i sum_k v_ik |d outputs_ik / d theta|**power``.

    Args:
      model: the model; its logits in evaluation mode feed ``outputs``.
      snap: its parameters and model state.
      x: ``[B, ...]`` prepared inputs. task: int ``[B]`` their tasks.
      outputs: ``(logits [B, C], extra) -> [B, K]``, the functions whose
        per-example gradients are summed (e.g. log-probabilities over the
        active units); it must treat examples independently.
      extra: per-example arrays ``[B, ...]`` (a pytree) handed to
        ``outputs``, e.g. each example's active-output mask.
      example_weight: ``w``, float ``[B]`` (default: ones).
      output_weight: ``outs [B, K] -> v [B, K]`` (default: ones), e.g. the
        model's own probabilities for a Fisher; taken without gradient.
      active: bool ``[B, K]``, the outputs whose weight may be nonzero (the
        others are skipped, e.g. a scenario's inactive units), or ``None``
        (all).
      power: 2 (squares), 1 (absolute values), or any positive number.
      select: the parameter subtree summed (default: ``model.main``).
      dense: use the dense fast path where it applies (static).

    Returns:
      A tree like ``select(snap.params)``.
    """
    select = model.main if select is None else select
    if example_weight is None:
        example_weight = jnp.ones(x.shape[0], jnp.float32)
    if output_weight is None:
        def output_weight(o):
            return jnp.ones_like(o)
    stopped = output_weight

    def output_weight_fn(o):
        return jax.lax.stop_gradient(stopped(o))

    layers = dense_layers(model, snap.params, select) if dense else None
    if layers is None:
        return _generic(model, snap, select, x, task, outputs, extra,
                        example_weight, output_weight_fn, power)
    total = _dense(model, snap, layers, x, task, outputs, extra,
                   example_weight, output_weight_fn, power, active)
    return from_layers(layers, total, select(snap.params))


def from_layers(layers, values, selected):
    """Values laid out like the dense ``layers`` tree, rearranged like
    ``selected`` (whose leaves are leaves of ``layers``)."""
    by_leaf = dict(zip(map(id, jax.tree.leaves(layers)),
                       jax.tree.leaves(values)))
    return jax.tree.map(lambda leaf: by_leaf[id(leaf)], selected)
