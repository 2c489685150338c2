"""Combinator laws, in the spirit of optax's tests, and the chain's
wiring of aux outputs, gradient stages and prediction overrides."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jcl.core import combine
from jcl.core.method import identity, make_method
from jcl.core.records import Batch, Forward, Snapshot, Step, TaskCtx, TaskEnd


def quad(target, name='q'):
    """A method with one quadratic term and a counter state."""
    return make_method(
        init=lambda snap, ctx: jnp.zeros(()),
        loss=lambda s, fwd, ctx: {
            name: jnp.sum((fwd.params['w'] - target) ** 2)},
        update=lambda s, step, ctx: s + 1,
        consolidate=lambda s, end, ctx: s + 100)


PARAMS = {'w': jnp.array([1.0, -2.0])}
BATCH = Batch(jnp.zeros((1, 2)), jnp.zeros(1, int), jnp.zeros(1, int))
CTX = TaskCtx(jnp.int32(2), jax.random.PRNGKey(0), jnp.ones((3, 3, 2), bool))
SNAP = Snapshot(PARAMS, {})


def fwd_of(params):
    return Forward(params, {}, BATCH, {}, {})


def total_grad(m, state):
    return jax.grad(lambda p: sum(m.loss(state, fwd_of(p), CTX)[0]
                                  .values()))(PARAMS)


def step_of(grads):
    return Step(PARAMS, PARAMS, grads, {}, BATCH, BATCH, {}, {})


def test_chain_with_identity_equals_the_method():
    m = quad(3.0)
    c = combine.chain(m, identity())
    s = c.init(SNAP, CTX)
    assert s == {'0': m.init(SNAP, CTX), '1': ()}
    chex.assert_trees_all_close(total_grad(c, s),
                                total_grad(m, m.init(SNAP, CTX)))


def test_named_chain_prefixes_terms_and_routes_state():
    c = combine.named_chain(('a', quad(1.0)), ('b', quad(2.0)))
    s = c.init(SNAP, CTX)
    terms, aux = c.loss(s, fwd_of(PARAMS), CTX)
    assert set(terms) == {'a/q', 'b/q'} and aux == {'a': {}, 'b': {}}
    np.testing.assert_allclose(terms['b/q'], 1.0 + 16.0)
    s = c.update(s, step_of(PARAMS), CTX)
    s = c.consolidate(s, TaskEnd(PARAMS, {}, None, None), CTX)
    assert float(s['a']) == 101.0 and float(s['b']) == 101.0


def test_later_members_see_earlier_members_aux():
    def first(s, fwd, ctx):
        return {'l': jnp.float32(1.0)}, {'shared': fwd.params['w'] * 10}

    def second(s, fwd, ctx):
        assert set(fwd.aux) == {'first'}  # only members before it
        return {'l': jnp.sum(fwd.aux['first']['shared'])}, {}

    c = combine.named_chain(('first', make_method(loss=first)),
                            ('second', make_method(loss=second)))
    terms, aux = c.loss(c.init(SNAP, CTX), fwd_of(PARAMS), CTX)
    assert float(terms['second/l']) == -10.0
    np.testing.assert_allclose(aux['first']['shared'], [10.0, -20.0])


def test_gradient_stages_run_in_chain_order():
    double = make_method(grads=lambda s, step, ctx: jax.tree.map(
        lambda g: 2 * g, step.grads))
    shift = make_method(grads=lambda s, step, ctx: jax.tree.map(
        lambda g: g + 1, step.grads))
    c = combine.named_chain(('d', double), ('n', identity()), ('s', shift))
    g = c.grads(c.init(SNAP, CTX), step_of({'w': jnp.array([1.0, 3.0])}),
                CTX)
    np.testing.assert_allclose(g['w'], [3.0, 7.0])  # (g * 2) + 1
    assert combine.named_chain(('n', identity())).grads is None


def test_one_prediction_override_at_most():
    pred = make_method(predict=lambda s, snap, x, task: s * x)
    c = combine.named_chain(('n', identity()),
                            ('p', make_method(
                                init=lambda snap, ctx: jnp.float32(3.0),
                                predict=pred.predict)))
    out = c.predict(c.init(SNAP, CTX), SNAP, jnp.ones(2), None)
    np.testing.assert_allclose(out, [3.0, 3.0])
    assert combine.named_chain(('n', identity())).predict is None
    with pytest.raises(ValueError, match='at most one'):
        combine.named_chain(('a', pred), ('b', pred))


def test_scale_zero_leaves_only_the_base_gradient():
    base = quad(3.0, 'base')
    c = combine.named_chain(('x', base), ('y', combine.scale(quad(-5.0),
                                                             0.0)))
    chex.assert_trees_all_close(total_grad(c, c.init(SNAP, CTX)),
                                total_grad(base, None))


def test_scale_by_task_schedule():
    m = combine.scale(quad(0.0), combine.current_weight)
    v = m.loss(None, fwd_of(PARAMS), CTX)[0]['q']  # task_id 2 -> 1/3
    np.testing.assert_allclose(v, 5.0 / 3.0, rtol=1e-6)
    np.testing.assert_allclose(combine.replay_weight(2), 2.0 / 3.0)


@pytest.mark.parametrize('task_id', [0, 1, 3])
def test_replay_weighted_is_one_over_t(task_id):
    c = combine.replay_weighted(current=[('c', quad(0.0))],
                                replay=[('r', quad(1.0))],
                                other=[('o', quad(2.0))])
    ctx = CTX._replace(task_id=jnp.int32(task_id))
    terms, _ = c.loss(c.init(SNAP, ctx), fwd_of(PARAMS), ctx)
    t = task_id + 1
    np.testing.assert_allclose(terms['c/q'], 5.0 / t, rtol=1e-6)
    np.testing.assert_allclose(terms['r/q'], (1 - 1 / t) * 9.0, rtol=1e-6)
    np.testing.assert_allclose(terms['o/q'], 1.0 + 16.0)  # unweighted
    assert list(terms) == ['c/q', 'r/q', 'o/q']
    # without replay members the current data is not down-weighted
    plain = combine.replay_weighted(current=[('c', quad(0.0))])
    np.testing.assert_allclose(
        plain.loss(plain.init(SNAP, ctx), fwd_of(PARAMS), ctx)[0]['c/q'],
        5.0)


def test_masked_touches_only_the_selected_subtree():
    params = {'a': {'w': jnp.array([1.0, 2.0])},
              'b': {'w': jnp.array([5.0, 6.0])}}
    m = combine.masked(quad(0.0), lambda p: p['a'])
    g = jax.grad(lambda p: m.loss(None, fwd_of(p), CTX)[0]['q'])(params)
    np.testing.assert_allclose(g['a']['w'], [2.0, 4.0])
    np.testing.assert_allclose(g['b']['w'], [0.0, 0.0])


def test_duplicate_names_are_rejected():
    with pytest.raises(ValueError):
        combine.named_chain(('a', identity()), ('a', identity()))
