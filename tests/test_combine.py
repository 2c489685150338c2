"""Combinator laws, in the spirit of optax's tests."""

import chex
import jax
import jax.numpy as jnp
import numpy as np

from jcl import combine
from jcl.base import identity, make_method
from jcl.types import Batch, TaskCtx


def quad(target, name='q'):
    """A method with one quadratic term and a counter state."""
    return make_method(
        init=lambda p, k: jnp.zeros(()),
        loss=lambda p, s, b, c: {name: jnp.sum((p['w'] - target) ** 2)},
        update=lambda s, p, g, n, c: s + 1,
        consolidate=lambda s, p, d, c: s + 100)


PARAMS = {'w': jnp.array([1.0, -2.0])}
BATCH = Batch(jnp.zeros((1, 2)), jnp.zeros(1, int), jnp.zeros(1, int))
CTX = TaskCtx(jnp.int32(2), jax.random.PRNGKey(0), jnp.ones((3, 3, 2), bool))


def total_grad(m, state):
    return jax.grad(lambda p: sum(m.loss(p, state, BATCH, CTX).values()))(
        PARAMS)


def test_chain_with_identity_equals_the_method():
    m = quad(3.0)
    c = combine.chain(m, identity())
    s = c.init(PARAMS, None)
    assert s == {'0': m.init(PARAMS, None), '1': ()}
    chex.assert_trees_all_close(total_grad(c, s),
                                total_grad(m, m.init(PARAMS, None)))


def test_named_chain_prefixes_terms_and_routes_state():
    c = combine.named_chain(('a', quad(1.0)), ('b', quad(2.0)))
    s = c.init(PARAMS, None)
    terms = c.loss(PARAMS, s, BATCH, CTX)
    assert set(terms) == {'a/q', 'b/q'}
    np.testing.assert_allclose(terms['b/q'], 1.0 + 16.0)
    s = c.update(s, PARAMS, None, PARAMS, CTX)
    s = c.consolidate(s, PARAMS, None, CTX)
    assert float(s['a']) == 101.0 and float(s['b']) == 101.0


def test_scale_zero_leaves_only_the_base_gradient():
    base = quad(3.0, 'base')
    c = combine.named_chain(('x', base), ('y', combine.scale(quad(-5.0),
                                                             0.0)))
    chex.assert_trees_all_close(total_grad(c, c.init(PARAMS, None)),
                                total_grad(base, None))


def test_scale_by_task_schedule():
    m = combine.scale(quad(0.0), combine.current_weight)
    v = m.loss(PARAMS, None, BATCH, CTX)['q']  # task_id 2 -> 1/3
    np.testing.assert_allclose(v, 5.0 / 3.0, rtol=1e-6)
    np.testing.assert_allclose(combine.replay_weight(2), 2.0 / 3.0)


def test_masked_touches_only_the_selected_subtree():
    params = {'a': {'w': jnp.array([1.0, 2.0])},
              'b': {'w': jnp.array([5.0, 6.0])}}
    m = combine.masked(quad(0.0), lambda p: p['a'])
    g = jax.grad(lambda p: m.loss(p, None, BATCH, CTX)['q'])(params)
    np.testing.assert_allclose(g['a']['w'], [2.0, 4.0])
    np.testing.assert_allclose(g['b']['w'], [0.0, 0.0])


def test_duplicate_names_are_rejected():
    import pytest
    with pytest.raises(ValueError):
        combine.named_chain(('a', identity()), ('a', identity()))
