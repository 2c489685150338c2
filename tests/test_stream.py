"""The streamed path: the same step as the fused path, fed from the host
(epochs without replacement, a learning-rate schedule, evaluation in
chunks)."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jcl import data as data_lib
from jcl import protocols, stream
from jcl import train as train_lib
from jcl.evaluate import task_accuracies
from jcl.methods import si, supervised
from jcl.models import conv_classifier


def image_protocol(arrays, scenario='class'):
    """Split synthetic 'MNIST' kept as 28x28 images for a conv net."""
    def prepare(x):
        return (x.astype(jnp.float32) / 255.0)[..., None]
    return protocols.class_split('img', arrays, scenario, flatten=False,
                                 prepare=prepare)


def bn_learner(proto, steps=12, batch=16, method='none'):
    def make_model(hp):
        return conv_classifier((4, 8), hidden=(16,),
                               num_outputs=proto.num_outputs,
                               input_shape=(28, 28, 1))

    def make_method(hp, model):
        return si(model, c=1.0) if method == 'si' else supervised()

    return train_lib.Learner(make_model, make_method,
                             prepare=proto.prepare, num_steps=steps,
                             batch_size=batch)


@pytest.mark.parametrize('method', ['none', 'si'])
def test_streamed_equals_fused_on_the_same_batches(arrays, method):
    """A BatchNorm model: K-step chunks of host batches end with the
    parameters and batch statistics of the fused scan."""
    proto = image_protocol(arrays)
    learner = bn_learner(proto, method=method)
    hp = {'lr': jnp.float32(3e-3)}
    active = jnp.asarray(proto.active)
    train = data_lib.to_device(proto.train)
    state = train_lib.init_state(learner, hp, jax.random.PRNGKey(0))
    t = 1
    fused, _, _ = jax.jit(functools.partial(train_lib.train_task, learner))(
        state, hp, train, None, active, jnp.int32(t))
    # the fused path's own draws, made on the host
    _, k_steps, _ = jax.random.split(state.key, 3)
    k_batch, k_loss = jax.random.split(k_steps)
    n, b = learner.num_steps, learner.batch_size
    picks = np.asarray(jax.random.randint(k_batch, (n, b), 0,
                                          train.count[t]))
    keys = jax.random.split(k_loss, n)
    chunk = jax.jit(functools.partial(train_lib.train_chunk, learner))
    streamed = state
    for lo in range(0, n, 5):  # chunks of 5, the last one padded
        sl = np.arange(lo, lo + 5) % n
        raw = stream.gather_host(proto.train, t, picks[sl])
        valid = np.arange(lo, lo + 5) < n
        streamed, _ = chunk(streamed, hp, raw, keys[sl], valid,
                            np.ones(5, np.float32), active, jnp.int32(t))
    streamed, _ = jax.jit(functools.partial(
        train_lib.finish_task, learner))(streamed, hp, train, None, active,
                                         jnp.int32(t))
    assert int(streamed.step) == n
    chex.assert_trees_all_close(streamed.params, fused.params, atol=1e-6,
                                rtol=1e-6)
    chex.assert_trees_all_close(streamed.model_state, fused.model_state,
                                atol=1e-6, rtol=1e-6)
    chex.assert_trees_all_close(streamed.mstate, fused.mstate, atol=1e-6,
                                rtol=1e-5)
    np.testing.assert_array_equal(streamed.key, fused.key)
    # BatchNorm statistics moved from their initial values
    before = state.model_state['batch_stats']['conv']['BatchNorm_0']['mean']
    after = fused.model_state['batch_stats']['conv']['BatchNorm_0']['mean']
    assert float(jnp.abs(after - before).max()) > 1e-3


def test_epoch_plan_draws_without_replacement_and_decays():
    plan = stream.epoch_plan(23, stream.Schedule(
        epochs=5, batch_size=4, decay_every=2, decay=0.5),
        np.random.RandomState(1))
    assert plan.index.shape == (5 * 5, 4)  # 23 // 4 = 5 full batches
    for e in range(5):
        epoch = plan.index[5 * e:5 * (e + 1)].ravel()
        assert len(set(epoch.tolist())) == 20 and epoch.max() < 23
    np.testing.assert_array_equal(
        plan.lr_scale, np.repeat([1.0, 1.0, 0.5, 0.5, 0.25], 5))
    with pytest.raises(Exception, match='no full batch'):
        stream.epoch_plan(3, stream.Schedule(1, 4), np.random.RandomState(0))


def test_learning_rate_schedule_is_applied_per_step(arrays):
    """A zero multiplier stops learning; a 1/2 multiplier halves Adam's
    first step exactly."""
    proto = image_protocol(arrays)
    learner = bn_learner(proto)
    hp = {'lr': jnp.float32(1e-2)}
    active = jnp.asarray(proto.active)
    state = train_lib.init_state(learner, hp, jax.random.PRNGKey(1))
    raw = stream.gather_host(proto.train, 0, np.arange(16)[None])
    keys = jax.random.split(jax.random.PRNGKey(2), 1)
    chunk = jax.jit(functools.partial(train_lib.train_chunk, learner))
    moved = {}
    for scale in (0.0, 0.5, 1.0):
        new, _ = chunk(state, hp, raw, keys, np.ones(1, bool),
                       np.full(1, scale, np.float32), active, jnp.int32(0))
        moved[scale] = jax.tree.map(lambda a, b: a - b, new.params,
                                    state.params)
    assert max(float(jnp.abs(x).max())
               for x in jax.tree.leaves(moved[0.0])) == 0.0
    chex.assert_trees_all_close(
        jax.tree.map(lambda x: 2 * x, moved[0.5]), moved[1.0], atol=1e-6)


def test_run_streamed_learns_and_evaluates_in_chunks(arrays):
    proto = image_protocol(arrays, 'task')
    learner = bn_learner(proto, batch=16)
    schedule = stream.Schedule(epochs=2, batch_size=16, decay_every=1)
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    lines = []
    result = stream.run_streamed(learner, proto, {'lr': np.full(2, 3e-3)},
                                 keys, schedule, steps_per_call=7,
                                 eval_chunk=13, progress=lines.append)
    counts = np.asarray(proto.train.count)
    steps = 2 * (counts // 16)
    assert [f'{s} steps' in ln for s, ln in zip(steps, lines)] == [True] * 5
    assert result.metrics['loss'].shape == (2, 5, steps.max())
    # Task-IL on the easy synthetic data: every task learned, kept
    assert result.R[:, -1].min() > 0.9, result.R[:, -1]
    # evaluation in host chunks equals the fused evaluation
    init, _, _, _, evaluate = stream._compiled(learner)
    hp = {'lr': jnp.full(2, 3e-3)}
    state = init(hp, keys)
    chunked = stream.evaluate_streamed(evaluate, state, hp, proto.test,
                                       jnp.asarray(proto.active)[0], 13)
    test = data_lib.to_device(proto.test)
    fused = jax.vmap(lambda st: task_accuracies(
        train_lib.scores_fn(learner, {'lr': 0.0}, st), test,
        jnp.asarray(proto.active)[0], proto.prepare))(state)
    np.testing.assert_allclose(chunked, fused, atol=1e-6)
    np.testing.assert_allclose(result.R_init[:, 0], fused, atol=1e-6)
