"""Small pytree arithmetic and the trainable/frozen split of parameters.

A parameter tree is split into two trees of the same structure in which
the leaves that belong to the other part are ``None`` holes (``None`` is
an empty subtree to JAX), so ``jax.grad`` differentiates the trainable
part alone and optax sees only those leaves.

>>> import jax.numpy as jnp
>>> p = {'a': jnp.ones(2), 'b': jnp.zeros(3)}
>>> train, frozen = partition(p, {'a': True, 'b': False})
>>> train['b'] is None and frozen['a'] is None
True
>>> merge(train, frozen)['b'].shape
(3,)
"""

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

    >>> float(weighted_sq_dist({'x': 2.}, {'x': 3.}, {'x': 1.}))
    8.0
    """
    terms = jax.tree.map(lambda wi, ai, bi: jnp.sum(wi * (ai - bi) ** 2),
                         w, a, b)
    return sum(jax.tree.leaves(terms))


def num_params(a) -> int:
    """Number of scalars in a tree."""
    return sum(int(x.size) for x in jax.tree.leaves(a))


def _is_none(x):
    return x is None


def partition(params, mask):
    """Splits ``params`` by a tree of booleans into ``(selected, rest)``.

    Args:
      params: a pytree. mask: a tree of Python bools with the structure of
        ``params`` (``True``: the leaf goes to ``selected``).

    Returns:
      Two trees like ``params`` with ``None`` where a leaf belongs to the
      other one.
    """
    sel = jax.tree.map(lambda m, x: x if m else None, mask, params)
    rest = jax.tree.map(lambda m, x: None if m else x, mask, params)
    return sel, rest


def merge(a, b):
    """Fills the ``None`` holes of ``a`` with the leaves of ``b`` (the
    inverse of :func:`partition`)."""
    return jax.tree.map(lambda x, y: y if x is None else x, a, b,
                        is_leaf=_is_none)


def split_like(params, like):
    """Splits ``params`` into the leaves where ``like`` has a leaf and the
    rest, e.g. the trainable part of the parameters given a gradient tree
    whose frozen leaves are ``None``.

    >>> t, r = split_like({'a': 1., 'b': 2.}, {'a': 0., 'b': None})
    >>> t, r
    ({'a': 1.0, 'b': None}, {'a': None, 'b': 2.0})
    """
    mask = jax.tree.map(lambda g: g is not None, like, is_leaf=_is_none)
    return partition(params, mask)


def leaf_names(tree) -> list:
    """The path of every leaf as ``'a/b/0/c'`` (dict keys, sequence
    indices and NamedTuple field names), in ``jax.tree.leaves`` order.

    >>> leaf_names({'w': {'k': 1}, 's': (2, 3)})
    ['s/0', 's/1', 'w/k']
    """
    paths, _ = jax.tree_util.tree_flatten_with_path(tree)
    return ['/'.join(_key_name(k) for k in path) for path, _ in paths]


def _key_name(key) -> str:
    for attr in ('key', 'name', 'idx'):
        if hasattr(key, attr):
            return str(getattr(key, attr))
    return str(key)


def overlay(tree, flat: dict):
    """``tree`` with the leaves at the key paths of ``flat`` (``{tuple of
    dict keys: array}``) replaced, e.g. pre-trained weights over a drawn
    initialisation; other leaves are kept.

    >>> import jax.numpy as jnp
    >>> overlay({'a': {'w': jnp.zeros(2)}, 'b': jnp.ones(1)},
    ...         {('a', 'w'): jnp.full(2, 7.0)})['a']['w'].tolist()
    [7.0, 7.0]
    """
    def pick(path, leaf):
        names = tuple(getattr(p, 'key', None) for p in path)
        return jnp.asarray(flat[names], leaf.dtype) if names in flat \
            else leaf
    return jax.tree_util.tree_map_with_path(pick, tree)
