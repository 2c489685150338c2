"""Function-space quantities of a classifier, FROMP's building blocks.

For FROMP (Pan et al. 2020) the network's function at an input is its
softmax over the active outputs; its uncertainty is that of a Laplace
(Gauss-Newton) posterior over the weights pushed through the network:

* :func:`ggn_diagonal`: ``sum_x diag(J_x' H_x J_x)`` over a task's data,
  ``J_x`` the Jacobian of the logits, ``H_x = diag(s) - s s'`` the
  softmax Hessian (the weights' posterior precision, beside a prior);
* :func:`memorability`: ``sum_k s_k (1 - s_k)``, the trace of ``H_x``
  (FROMP keeps the points where it is largest);
* :func:`function_kernel`: ``K_k = G_k diag(cov) G_k' + eps I`` for output
  ``k`` over a set of points, ``G_k`` the per-point gradients of the
  softmax output ``k`` (the function's prior covariance there).

>>> import jax.numpy as jnp
>>> s = probabilities(jnp.zeros((1, 3)), jnp.array([[True, True, False]]))
>>> s.tolist(), memorability(jnp.zeros((1, 3)),
...                          jnp.array([[True, True, False]])).tolist()
([[0.5, 0.5, 0.0]], [0.5])
"""

import jax
import jax.numpy as jnp

from jcl.core import losses, per_example, tree
from jcl.core.model import Model
from jcl.core.over_task import over_task
from jcl.core.records import Snapshot, TaskCtx, TaskEnd
from jcl.methods.fisher import DENSE_CHUNK, GENERIC_CHUNK


def probabilities(logits, mask):
    """Softmax over each example's active outputs (inactive ones 0)."""
    return jax.nn.softmax(losses.mask_logits(logits, mask))


def memorability(logits, mask):
    """``sum_k s_k (1 - s_k)`` over the active outputs: the trace of the
    softmax Hessian, FROMP's score of a memorable point."""
    s = probabilities(logits, mask)
    return jnp.sum(s * (1.0 - s), -1)


def ggn_diagonal(model: Model, end: TaskEnd, ctx: TaskCtx, *,
                 select=None, dense: bool = True):
    """``sum_x diag(J_x' H_x J_x)`` over the training data of task
    ``ctx.task_id`` (a sum, as the reference's Fisher, not a mean).

    With ``s`` the softmax over the active outputs and ``f`` the logits,
    ``diag(J' (diag(s) - s s') J) = sum_k s_k (df_k)^2 - (d(s . f))^2``
    with ``s`` held constant in the last term: two calls of
    :func:`jcl.core.per_example.weighted_powers` (fast for dense models).

    Args:
      model: the classifier. end: the finished task. ctx: its context
        (the active outputs ``ctx.active[ctx.task_id, task]``).
      select: the parameter subtree (default ``model.main``).
      dense: use the dense fast path where it applies.

    Returns:
      A tree like ``select(end.params)``.
    """
    select = model.main if select is None else select
    snap = Snapshot(end.params, end.model_state)
    fast = dense and per_example.dense_layers(model, end.params,
                                              select) is not None

    def logits_of(z, mask):
        return losses.mask_logits(z, mask)

    def expected(z, mask):
        s = jax.lax.stop_gradient(probabilities(z, mask))
        return jnp.sum(s * jnp.where(mask, z, 0.0), -1, keepdims=True)

    def fold(acc, batch, weight):
        mask = ctx.mask(batch.task)
        first = per_example.weighted_powers(
            model, snap, batch.x, batch.task, logits_of, mask,
            example_weight=weight,
            output_weight=lambda o: jax.nn.softmax(o), active=mask,
            select=select, dense=dense)
        second = per_example.weighted_powers(
            model, snap, batch.x, batch.task, expected, mask,
            example_weight=weight, select=select, dense=dense)
        return jax.tree.map(lambda a, f, g: a + f - g, acc, first, second)

    total, _ = over_task(end, ctx, fold, tree.zeros_like(select(end.params)),
                         chunk=DENSE_CHUNK if fast else GENERIC_CHUNK)
    return jax.tree.map(lambda f: jnp.maximum(f, 0.0), total)


def function_kernel(model: Model, snap: Snapshot, x, task, mask, cov, *,
                    output: int, jitter: float = 1e-6, chunk: int = 40,
                    select=None):
    """``K = G diag(cov) G' + jitter I`` of softmax output ``output`` over
    the points ``x``.

    ``G`` (``[N, P]``, one row per point) is never held whole: rows go in
    chunks of ``chunk`` points, each block ``G_a diag(cov) G_b'`` from the
    two chunks' per-point gradients (memory ``2 chunk P``).

    Args:
      model: the classifier. snap: its parameters and state.
      x: ``[N, ...]`` prepared points. task: int ``[N]``. mask: bool
        ``[N, C]`` their active outputs.
      cov: a tree like ``select(snap.params)``, the weights' variances.
      output: the output unit ``k`` (may be traced).
      jitter: added to the diagonal. chunk: points per block (static).
      select: the parameter subtree (default ``model.main``).

    Returns:
      ``[N, N]``.
    """
    select = model.main if select is None else select
    n = x.shape[0]
    pad = -n % chunk
    xs = jnp.pad(x, [(0, pad)] + [(0, 0)] * (x.ndim - 1))
    ts = jnp.pad(task, (0, pad))
    ms = jnp.pad(mask, ((0, pad), (0, 0)))
    keep = jnp.pad(jnp.ones(n), (0, pad))
    blocks = xs.shape[0] // chunk

    def prob(params, x1, t1, m1):
        z, _ = model.apply(params, snap.model_state, x1[None], t1[None],
                           train=False)
        return probabilities(z['logits'], m1[None])[0, output]

    def grads(b):
        sl = lambda a: jax.lax.dynamic_slice_in_dim(  # noqa: E731
            a, b * chunk, chunk)
        g = select(per_example.grads(prob, snap.params, sl(xs), sl(ts),
                                     sl(ms)))
        w = sl(keep)
        return jax.tree.map(lambda v: v * w.reshape((-1,) + (1,) *
                                                    (v.ndim - 1)), g)

    def row(a):
        ga = jax.tree.map(jnp.multiply, grads(a),
                          jax.tree.map(lambda c: c[None], cov))

        def col(b):
            gb = grads(b)
            return sum(jnp.tensordot(u, v, (tuple(range(1, u.ndim)),) * 2)
                       for u, v in zip(jax.tree.leaves(ga),
                                       jax.tree.leaves(gb)))

        return jax.lax.map(col, jnp.arange(blocks))          # [b, c, c]

    k = jax.lax.map(row, jnp.arange(blocks))                 # [a, b, c, c]
    k = k.transpose(0, 2, 1, 3).reshape(blocks * chunk, blocks * chunk)
    return k[:n, :n] + jitter * jnp.eye(n, dtype=k.dtype)


def kernel_inverse(k, floor: float = 1e-6):
    """``k^{-1}`` of a kernel ``G C G' + floor I``, from its eigenvalues
    clamped at ``floor``.

    Exactly its inverse in exact arithmetic (every eigenvalue is at least
    ``floor``); in float32, where ``floor`` may lie below the rounding of
    the largest eigenvalues, a Cholesky factorisation (the reference's
    ``cholesky_inverse(cholesky(k))``) can fail and give NaN, this stays
    finite.

    >>> kernel_inverse(jnp.array([[2.0, 0.0], [0.0, 4.0]])).tolist()
    [[0.5, 0.0], [0.0, 0.25]]
    """
    sym = 0.5 * (k + k.T)
    values, vectors = jnp.linalg.eigh(sym)
    return (vectors / jnp.maximum(values, floor)) @ vectors.T
