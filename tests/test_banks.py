"""Training one task's bank rows (jcl.training.banks): the same numbers as the
whole-bank step, a slice-sized optimiser state, other rows untouched, a
batch of another task refused loudly (NaN loss), and the optimiser reset
it needs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jcl.core.errors import ConfigError
from jcl.core.model import make_model
from jcl.core.records import Batch
from jcl.methods import supervised
from jcl.training import banks
from jcl.training.learner import Learner, init_state
from jcl.training.task import train_chunk

T, D, C = 3, 5, 4


def _model(hp):
    """A shared layer, then each example's task row of a banked layer
    (with a banked bias): logits = relu(x @ w) @ bank[task] + bias[task]."""
    def init(key):
        k1, k2 = jax.random.split(key)
        return {'w': jax.random.normal(k1, (D, D)),
                'bank': jax.random.normal(k2, (T, D, C)),
                'bias': jnp.zeros((T, C))}, {}

    def apply(params, state, x, task, *, train=False):
        h = jax.nn.relu(x @ params['w'])
        out = jnp.einsum('bd,bdc->bc', h, params['bank'][task])
        return {'logits': out + params['bias'][task], 'features': h}, state

    return make_model(init=init, apply=apply, banked=lambda p: {
        'w': False, 'bank': True, 'bias': True})


def _learner(slices, reset=True):
    return Learner(_model, lambda hp, m: supervised(), prepare=lambda x: x,
                   num_steps=4, batch_size=6, reset_optimizer=reset,
                   bank_slices=slices)


def _batches(task, k=4, b=6, seed=0):
    rng = np.random.RandomState(seed)
    return Batch(jnp.asarray(rng.normal(size=(k, b, D)), jnp.float32),
                 jnp.asarray(rng.randint(0, C, (k, b)), jnp.int32),
                 jnp.full((k, b), task, jnp.int32))


def _train(learner, task, raw):
    hp = {'lr': jnp.float32(0.05)}
    state = init_state(learner, hp, jax.random.PRNGKey(0))
    active = jnp.ones((T, T, C), bool)
    k = raw.y.shape[0]
    return jax.jit(lambda s: train_chunk(
        learner, s, hp, raw, jax.random.split(jax.random.PRNGKey(1), k),
        jnp.ones(k, bool), jnp.ones(k), active, jnp.int32(task)))(state)


@pytest.mark.parametrize('task', [0, 2])
def test_slices_give_the_whole_bank_steps_numbers(task):
    raw = _batches(task)
    whole, m_whole = _train(_learner(False), task, raw)
    part, m_part = _train(_learner(True), task, raw)
    np.testing.assert_allclose(m_part['loss'], m_whole['loss'], rtol=1e-6)
    for name in ('w', 'bank', 'bias'):
        np.testing.assert_allclose(part.params[name], whole.params[name],
                                   rtol=1e-6, atol=1e-7, err_msg=name)
    # the other rows are untouched, bit for bit; the task's row moved
    start = init_state(_learner(True), {'lr': 0.05}, jax.random.PRNGKey(0))
    others = [u for u in range(T) if u != task]
    for name in ('bank', 'bias'):
        assert np.array_equal(np.asarray(part.params[name])[others],
                              np.asarray(start.params[name])[others])
        assert not np.array_equal(np.asarray(part.params[name])[task],
                                  np.asarray(start.params[name])[task])
    # Adam's moments are one row's size at banked leaves, whole elsewhere
    mu = part.opt_state[0].mu
    assert mu['bank'].shape == (D, C) and mu['bias'].shape == (C,)
    assert mu['w'].shape == (D, D)
    assert whole.opt_state[0].mu['bank'].shape == (T, D, C)


def test_a_batch_of_another_task_gives_a_nan_loss():
    raw = _batches(1)
    raw = raw._replace(task=raw.task.at[:, 0].set(2))
    _, metrics = _train(_learner(True), 1, raw)
    assert np.isnan(np.asarray(metrics['loss'])).all()


def test_slices_need_the_optimiser_reset():
    with pytest.raises(ConfigError, match='reset_optimizer'):
        init_state(_learner(True, reset=False), {'lr': 0.05},
                   jax.random.PRNGKey(0))


def test_a_model_without_banks_is_trained_whole():
    learner = _learner(True)
    no_banks = learner._replace(make_model=lambda hp: _model(hp)._replace(
        banked=None))
    state = init_state(no_banks, {'lr': 0.05}, jax.random.PRNGKey(0))
    assert state.opt_state[0].mu['bank'].shape == (T, D, C)
    assert banks.take({'a': 1}, None, 0) == {'a': 1}
