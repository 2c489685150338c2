"""Generative replay: weighting, per-head replay losses, the teacher
snapshot, and an end-to-end compiled run."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jcl import combine
from jcl import data as data_lib
from jcl import train as train_lib
from jcl.methods.replay import GRState, gr, replay_classification
from jcl.methods.supervised import supervised
from jcl.models.classifier import mlp_classifier
from jcl.models.vae import Generator, vae_generator
from jcl.types import Batch, TaskCtx

D, C, N = 6, 6, 5
X_REP = np.random.RandomState(7).rand(N, D).astype(np.float32)


def classify(params, x, task):
    """A linear classifier with a per-task bias (like task gates)."""
    p = params['classifier']
    return x @ p['w'] + p['b'][task]


def stub_generator(calls=None):
    """Samples ``X_REP + m``; its loss is the squared distance to ``m``."""
    def sample(g, key, n):
        if calls is not None:
            calls.append(n)
        return jnp.asarray(X_REP[:n]) + g['m']

    return Generator(
        init=lambda key: {'m': jnp.zeros(D)}, encode=None,
        decode_logits=None, sample=sample,
        loss=lambda g, x, key: jnp.sum((x - g['m']) ** 2, axis=-1))


def make_params(seed, num_tasks):
    rng = np.random.RandomState(seed)
    return jax.tree.map(jnp.asarray, {
        'classifier': {'w': np.float32(rng.randn(D, C)),
                       'b': np.float32(rng.randn(num_tasks, C))},
        'generator': {'m': np.full((D,), 0.1 * seed, np.float32)}})


def table(scenario, num_tasks):
    per = C // num_tasks
    outputs = [list(range(per * t, per * (t + 1))) for t in range(num_tasks)]
    return jnp.asarray(data_lib.active_table(scenario, outputs))


def ctx_at(t, active):
    return TaskCtx(jnp.int32(t), jax.random.PRNGKey(3), active)


def current_batch(n=4):
    x = np.random.RandomState(9).rand(n, D).astype(np.float32)
    return Batch(x, np.zeros(n, np.int32), np.zeros(n, np.int32))


def np_logits(params, j, x=X_REP):
    p = jax.tree.map(lambda a: np.asarray(a, np.float64),
                     params['classifier'])
    return np.asarray(x, np.float64) @ p['w'] + p['b'][j]


def np_ce(logits, labels, units):
    sub = logits[:, units]
    lse = np.log(np.sum(np.exp(sub - sub.max(1, keepdims=True)), 1))
    lse += sub.max(1)
    return lse - logits[np.arange(len(labels)), labels]


def np_softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_hard_labels_class_il_by_hand():
    active = table('class', 2)  # units {0,1,2} then {3,4,5}
    student, teacher = make_params(1, 2), make_params(2, 2)
    got = jax.jit(functools.partial(replay_classification, classify))(
        student, teacher, X_REP, ctx_at(1, active))
    # teacher: classes of task 0; student: classes of tasks 0 and 1
    labels = np.argmax(np_logits(teacher, 0)[:, :3], axis=1)
    want = np.mean(np_ce(np_logits(student, 0), labels, list(range(6))))
    np.testing.assert_allclose(got, want, rtol=1e-5)


@pytest.mark.parametrize('distill', [False, True])
def test_task_il_averages_over_previous_heads(distill):
    active = table('task', 3)  # heads {0,1}, {2,3}, {4,5}
    student, teacher = make_params(1, 3), make_params(2, 3)
    got = jax.jit(functools.partial(
        replay_classification, classify, distill=distill,
        temperature=3.0, heads='all'))(student, teacher, X_REP,
                                       ctx_at(2, active))
    per_head = []
    for j in range(2):  # heads of the previous tasks only
        units = [2 * j, 2 * j + 1]
        s, t = np_logits(student, j), np_logits(teacher, j)
        if distill:
            p = np_softmax(t[:, units] / 3.0)
            logq = np.log(np_softmax(s[:, units] / 3.0))
            per_head.append(np.mean(-9.0 * np.sum(p * logq, axis=1)))
        else:
            labels = units[0] + np.argmax(t[:, units], axis=1)
            per_head.append(np.mean(np_ce(s, labels, units)))
    np.testing.assert_allclose(got, np.mean(per_head), rtol=1e-5)


@pytest.mark.parametrize('distill', [False, True])
def test_task_il_split_evenly_over_previous_heads(distill):
    active = table('task', 3)  # heads {0,1}, {2,3}, {4,5}
    student, teacher = make_params(1, 3), make_params(2, 3)
    w = np.array([1.0, 1.0, 0.0, 1.0, 1.0], np.float32)  # input 2 masked
    got = jax.jit(functools.partial(
        replay_classification, classify, distill=distill,
        temperature=3.0))(student, teacher, X_REP, ctx_at(2, active),
                          weights=jnp.asarray(w))
    per = []
    for i in range(N):  # input i goes to head i mod 2 (tasks 0 and 1)
        j = i % 2
        units = [2 * j, 2 * j + 1]
        s = np_logits(student, j, X_REP[i:i + 1])
        t = np_logits(teacher, j, X_REP[i:i + 1])
        if distill:
            p = np_softmax(t[:, units] / 3.0)
            logq = np.log(np_softmax(s[:, units] / 3.0))
            per.append(-9.0 * np.sum(p * logq))
        else:
            label = units[0] + np.argmax(t[0, units])
            per.append(np_ce(s, [label], units)[0])
    want = np.sum(w * np.array(per)) / np.sum(w)
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_split_equals_all_outside_task_il():
    """Without task-specific parts (no per-task bias or gates) the heads
    of Class- and Domain-IL are one head: both modes agree."""
    def shared(params, x, task):
        del task  # unused
        return classify(params, x, jnp.zeros(x.shape[0], jnp.int32))

    for scenario in ('class', 'domain'):
        active = table(scenario, 3)
        student, teacher = make_params(1, 3), make_params(2, 3)
        f = functools.partial(replay_classification, shared)
        for t in (0, 1, 2):
            a = f(student, teacher, X_REP, ctx_at(t, active), heads='all')
            b = f(student, teacher, X_REP, ctx_at(t, active))
            np.testing.assert_allclose(a, b, rtol=1e-5)
    with pytest.raises(ValueError, match='heads'):
        f(student, teacher, X_REP, ctx_at(1, active), heads='every')


def test_distill_class_il_teacher_over_previous_classes():
    active = table('class', 2)
    student, teacher = make_params(1, 2), make_params(2, 2)
    got = jax.jit(functools.partial(
        replay_classification, classify, distill=True))(
        student, teacher, X_REP, ctx_at(1, active))
    p = np.zeros((N, C))
    p[:, :3] = np_softmax(np_logits(teacher, 0)[:, :3] / 2.0)
    logq = np.log(np_softmax(np_logits(student, 0) / 2.0))
    want = np.mean(-4.0 * np.sum(p * logq, axis=1))
    np.testing.assert_allclose(got, want, rtol=1e-5)


@pytest.mark.parametrize('scenario', ['task', 'domain'])
def test_distill_gradient_vanishes_when_teacher_is_student(scenario):
    method = gr(classify, stub_generator(), distill=True)
    params = make_params(1, 3)
    ctx = ctx_at(2, table(scenario, 3))

    def replay(p):
        return method.loss(p, GRState(params), current_batch(), ctx)['replay']

    value, grads = jax.jit(jax.value_and_grad(replay))(params)
    assert float(value) > 0.0
    chex.assert_trees_all_close(
        grads['classifier'],
        jax.tree.map(jnp.zeros_like, params['classifier']), atol=1e-6)


def test_weights_on_first_and_second_task():
    calls = []
    gen = stub_generator(calls)
    method = gr(classify, gen)
    params, teacher = make_params(1, 2), make_params(2, 2)
    batch, active = current_batch(4), table('class', 2)
    loss = jax.jit(method.loss)
    first = loss(params, GRState(teacher), batch, ctx_at(0, active))
    second = loss(params, GRState(teacher), batch, ctx_at(1, active))
    assert calls == [4]  # replay_size defaults to the current batch size
    x_rep = X_REP[:4] + teacher['generator']['m']
    gen_cur = np.mean(gen.loss(params['generator'], batch.x, None))
    gen_rep = np.mean(gen.loss(params['generator'], x_rep, None))
    cls = jax.jit(functools.partial(replay_classification, classify))(
        params, teacher, x_rep, ctx_at(1, active))
    assert float(cls) > 0.0
    np.testing.assert_allclose(first['replay'], 0.0)
    np.testing.assert_allclose(first['gen_replay'], 0.0)
    np.testing.assert_allclose(first['gen_current'], gen_cur, rtol=1e-5)
    np.testing.assert_allclose(second['replay'], 0.5 * cls, rtol=1e-5)
    np.testing.assert_allclose(second['gen_replay'], 0.5 * gen_rep,
                               rtol=1e-5)
    np.testing.assert_allclose(second['gen_current'], 0.5 * gen_cur,
                               rtol=1e-5)


def test_replay_size_and_traced_temperature():
    calls = []
    params = make_params(1, 2)

    @jax.jit
    def terms(temperature):
        method = gr(classify, stub_generator(calls), distill=True,
                    temperature=temperature, replay_size=3)
        return method.loss(params, GRState(params), current_batch(),
                           ctx_at(1, table('class', 2)))

    out = terms(2.0)
    assert calls == [3]
    assert all(np.isfinite(float(v)) for v in out.values())


def test_traced_replay_count_equals_smaller_replay_size():
    """A grid over replay sizes draws at the largest size and masks: with
    count k it equals drawing k inputs (the stub draws X_REP[:n])."""
    params, teacher = make_params(1, 2), make_params(2, 2)
    ctx = ctx_at(1, table('class', 2))

    @jax.jit
    def masked(count):
        m = gr(classify, stub_generator(), replay_size=5,
               replay_count=count)
        return m.loss(params, GRState(teacher), current_batch(), ctx)

    small = jax.jit(lambda: gr(classify, stub_generator(), replay_size=3)
                    .loss(params, GRState(teacher), current_batch(), ctx))()
    got = masked(jnp.float32(3))
    for k in ('replay', 'gen_replay', 'gen_current'):
        np.testing.assert_allclose(got[k], small[k], rtol=1e-5)
    full = masked(jnp.float32(5))
    assert not np.isclose(float(full['replay']), float(got['replay']))
    counts = jnp.array([3.0, 5.0])
    vm = jax.vmap(masked)(counts)
    np.testing.assert_allclose(vm['replay'], [got['replay'],
                                              full['replay']], rtol=1e-5)


def test_extend_init_and_consolidate():
    gen = stub_generator()  # the real VAE is covered end to end
    method = gr(classify, gen)
    key = jax.random.PRNGKey(0)
    clf = make_params(1, 2)['classifier']
    params = method.extend_params({'classifier': clf}, key)
    assert set(params) == {'classifier', 'generator'}
    chex.assert_trees_all_equal(params['generator'], gen.init(key))
    state = method.init(params, key)
    assert isinstance(state, GRState)
    chex.assert_trees_all_equal(state.teacher, params)
    later = jax.tree.map(lambda a: a + 1.0, params)
    state = method.consolidate(state, later, None, ctx_at(0, None))
    chex.assert_trees_all_equal(state.teacher, later)


def test_end_to_end_class_il(arrays):
    proto = data_lib.class_split('synthetic', arrays, 'class')
    dim = proto.input_shape[0]
    clf = mlp_classifier((16,), num_outputs=proto.num_outputs,
                         input_dim=dim)
    gen = vae_generator((16,), latent=4, input_dim=dim)

    def make_method(hp):
        return combine.named_chain(
            ('ce', combine.scale(supervised(clf.apply),
                                 combine.current_weight)),
            ('gr', gr(clf.apply, gen, temperature=hp['gr.temp'])))

    learner = train_lib.Learner(clf.init, clf.apply, make_method,
                                train_lib.adam, num_steps=40, batch_size=16)
    hp = {'lr': jnp.full((2,), 1e-3), 'gr.temp': jnp.full((2,), 2.0)}
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    tr, te = data_lib.to_device(proto.train), data_lib.to_device(proto.test)
    active = jnp.asarray(proto.active)
    init, task, _ = train_lib.compile_run(learner)
    states = init(hp, keys, active)
    gen0 = jax.tree.map(np.asarray, states.params['generator'])
    for t in range(3):
        states, metrics, _ = task(states, hp, tr, te, active, jnp.int32(t))
        assert set(metrics) >= {'loss', 'ce/loss', 'gr/replay',
                                'gr/gen_current', 'gr/gen_replay'}
        for v in metrics.values():
            assert np.isfinite(np.asarray(v)).all()
        replay = np.asarray(metrics['gr/replay'])
        assert (replay == 0).all() if t == 0 else (replay > 0).all()
        # the teacher is the snapshot of the params at the end of the task
        chex.assert_trees_all_equal(states.mstate['gr'].teacher,
                                    states.params)
        if t == 0:  # the generator learns the current data
            gen_cur = np.asarray(metrics['gr/gen_current'])
            assert gen_cur[:, -5:].mean() < gen_cur[:, :5].mean()
    moved = jax.tree.map(lambda a, b: float(np.abs(a - b).max()), gen0,
                         jax.tree.map(np.asarray, states.params['generator']))
    assert min(jax.tree.leaves(moved)) > 0.0
