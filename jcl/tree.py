"""Tiny pytree arithmetic used by the regularisation methods."""

import jax
import jax.numpy as jnp


def sub(a, b):
    """Leafwise ``a - b``."""
    return jax.tree.map(jnp.subtract, a, b)


def zeros_like(a):
    """A tree of zeros shaped like ``a``."""
    return jax.tree.map(jnp.zeros_like, a)


def sq_norm(a):
    """``sum_i a_i**2`` over all leaves (a scalar)."""
    return sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(a))


def weighted_sq_dist(w, a, b):
    """``sum_i w_i * (a_i - b_i)**2`` over all leaves (a scalar).

    Example::

        weighted_sq_dist({'x': 2.}, {'x': 3.}, {'x': 1.})  # == 8.
    """
    terms = jax.tree.map(lambda wi, ai, bi: jnp.sum(wi * (ai - bi) ** 2),
                         w, a, b)
    return sum(jax.tree.leaves(terms))


def num_params(a) -> int:
    """Number of scalars in a tree."""
    return sum(int(x.size) for x in jax.tree.leaves(a))
