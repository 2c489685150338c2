"""GEM's projection of a gradient, by an exact solver of its small dual QP.

GEM (Lopez-Paz & Ranzato 2017) changes the proposed gradient ``g`` so
that it does not increase the loss of any earlier task whose memory
gradient is a row of ``M`` (``[k, p]``): it solves the dual

    min_v  1/2 v' (M M' + eps I) v + (M g)' v     subject to  v >= margin

and steps along ``g + M' v`` (the reference code's ``project2cone2``,
which hands this QP to ``quadprog``). The dual has one variable per
earlier task, a handful, so :func:`nonneg_qp` solves it exactly and
under ``jit`` by enumerating its active sets: for each subset ``S`` of
variables left free (the others at their bound) it solves the equality-
constrained problem, keeps the candidates that satisfy the bounds, and
takes the one of lowest objective. The optimum is one of the candidates
(its own support's), and every feasible candidate is a feasible point,
so the lowest is the optimum (``2^k`` linear solves of size ``k``).

>>> import jax.numpy as jnp
>>> u = nonneg_qp(jnp.eye(2), jnp.array([-1., 2.]), jnp.array([True, True]))
>>> u.tolist()                    # min 1/2 |u|^2 - u_0 + 2 u_1, u >= 0
[1.0, 0.0]
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np

from jcl.core.errors import ConfigError

MAX_CONSTRAINTS = 12   # 4096 active sets: beyond this, enumeration is slow


def active_sets(k: int) -> np.ndarray:
    """All ``2^k`` subsets of ``k`` variables as a bool ``[2^k, k]`` array."""
    if k > MAX_CONSTRAINTS:
        raise ConfigError(
            f'the exact QP solver enumerates 2^k active sets; k={k} '
            f'constraints is more than it allows ({MAX_CONSTRAINTS})')
    return np.array(list(itertools.product([False, True], repeat=k)),
                    bool).reshape(-1, k)


def nonneg_qp(P, q, active):
    """``argmin_u 1/2 u' P u + q' u`` subject to ``u >= 0``, and ``u_i = 0``
    where ``active[i]`` is False.

    Args:
      P: ``[k, k]`` symmetric positive definite. q: ``[k]``.
      active: bool ``[k]``: the variables that exist (the others are
        fixed at 0; a fixed-size problem with a varying number of
        constraints).

    Returns:
      ``u`` ``[k]``, the exact minimiser (up to the linear solves'
      rounding).
    """
    k = q.shape[0]
    sets = jnp.asarray(active_sets(k)) & active[None, :]
    eye = jnp.eye(k, dtype=P.dtype)

    def candidate(free):
        both = free[:, None] & free[None, :]
        a = jnp.where(both, P, eye)     # identity rows for the fixed ones
        u = jnp.where(free, jnp.linalg.solve(a, jnp.where(free, -q, 0.0)),
                      0.0)
        value = 0.5 * u @ P @ u + q @ u
        ok = jnp.all(u >= -1e-6 * (1.0 + jnp.max(jnp.abs(u))))
        return jnp.maximum(u, 0.0), jnp.where(ok, value, jnp.inf)

    us, values = jax.vmap(candidate)(sets)
    return us[jnp.argmin(values)]


def project_to_cone(dots, gram, active, margin, eps=1e-3):
    """The dual weights ``v`` of GEM's projection ``g + M' v``.

    Args:
      dots: ``[k]`` ``M g`` (each earlier task's gradient times ``g``).
      gram: ``[k, k]`` ``M M'``.
      active: bool ``[k]``, the earlier tasks (rows of ``M`` that exist).
      margin: the lower bound on ``v`` (GEM's ``gamma``; may be traced).
      eps: added to the diagonal (the reference's 1e-3).

    Returns:
      ``v`` ``[k]``: 0 where ``active`` is False, and 0 everywhere when no
      active constraint is violated (``M g >= 0``: ``g`` is kept).
    """
    k = dots.shape[0]
    P = 0.5 * (gram + gram.T) + eps * jnp.eye(k, dtype=gram.dtype)
    h = jnp.where(active, margin, 0.0)
    # v = u + h with u >= 0: min 1/2 u'Pu + (q + P h)'u
    u = nonneg_qp(P, dots + P @ h, active)
    violated = jnp.any(active & (dots < 0))
    return jnp.where(violated & active, u + h, 0.0)
