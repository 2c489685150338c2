"""The first task's own program leaves replay out: the same numbers as
the program every task shares, with less work in it."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jcl
from jcl.core import taskdata as data_lib
from jcl.core.combine import scale
from jcl.core.method import make_method
from jcl.core.records import TaskCtx
from jcl.methods import catalog
from jcl.sweep.chunks import train_in_chunks
from jcl.sweep.rows import compile_programs
from jcl.tasks import catalog as protocols_catalog
from jcl.tasks import protocols


def test_a_known_zero_weight_leaves_the_member_out():
    calls = []

    def loss(mstate, fwd, ctx):
        calls.append(1)
        return {'a': jnp.ones(()), 'b': jnp.ones((2,))}, {'z': jnp.ones(3)}

    m = scale(make_method(loss=loss), jcl.replay_weight)
    terms, aux = m.loss((), None, TaskCtx(0, jax.random.PRNGKey(0), None))
    assert TaskCtx(0, None, None).first_task
    assert not TaskCtx(jnp.int32(0), None, None).first_task
    chex.assert_trees_all_equal((terms, aux), (
        {'a': jnp.zeros(()), 'b': jnp.zeros((2,))}, {'z': jnp.zeros(3)}))
    assert calls == [1]   # traced once for the shapes, never run eagerly
    terms, _ = m.loss((), None, TaskCtx(jnp.int32(2), None, None))
    np.testing.assert_allclose(terms['a'], 2 / 3)
    assert jcl.current_weight(0) == 1.0 and jcl.replay_weight(0) == 0.0


def setup(arrays, name, scenario='class'):
    proto = protocols.class_split('split-mnist', arrays, scenario)
    spec = protocols_catalog.protocol_spec('split-mnist')
    learner = jcl.build_learner(proto, spec, [name], hidden=(16,),
                                iters=12, batch=8)
    hp = catalog.default_hparams([name], lr=1e-3, protocol='split-mnist',
                                 scenario=scenario, batch=8)
    hp = {k: jnp.full((2,), v, jnp.float32) for k, v in hp.items()}
    keys = jax.random.split(jax.random.PRNGKey(3), 2)
    return (learner, hp, keys, data_lib.to_device(proto.train),
            data_lib.to_device(proto.test), jnp.asarray(proto.active))


@pytest.mark.parametrize('name', ['gr', 'er', 'agem', 'none'])
def test_the_first_tasks_program_gives_the_shared_programs_numbers(
        arrays, name):
    learner, hp, keys, tr, te, act = setup(arrays, name)
    run = compile_programs(learner)
    whole = run.task(run.init(hp, keys), hp, tr, te, act, jnp.int32(0))
    chunked, _, m = train_in_chunks(run, run.init(hp, keys), hp, tr, act, 0,
                                    12)
    chunked, acc = run.finish(chunked, hp, tr, te, act, jnp.int32(0))
    # the same carry and curves, to float rounding (another program; lwf
    # and bir, checked once: within 3e-8 too)
    chex.assert_trees_all_close(whole[0], chunked, rtol=1e-5, atol=1e-6)
    for k in m:
        np.testing.assert_allclose(whole[1][k], m[k], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(whole[2], acc)
    # and less work where the method replays
    plan = run.begin(run.init(hp, keys), hp, tr, jnp.int32(0))[1]
    state = run.init(hp, keys)

    def flops(fn, *args):
        return fn.lower(*args).compile().cost_analysis()['flops']
    first = flops(run.first_steps, state, hp, tr, act, plan, jnp.int32(0), 4)
    later = flops(run.steps, state, hp, tr, act, jnp.int32(1), plan,
                  jnp.int32(0), 4)
    if name == 'none':
        assert first == pytest.approx(later, rel=0.01)
    else:
        assert first < 0.8 * later, (first, later)
