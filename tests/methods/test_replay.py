"""Generative replay: per-head replay losses and the generator's replay
term against hand computations, the weighting (by the combinator, not by
the method), the teacher snapshot, and an end-to-end compiled run."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jcl
from jcl.core import combine
from jcl.core import taskdata as data_lib
from jcl.core.errors import ConfigError
from jcl.core.model import make_model
from jcl.core.records import Batch, Forward, Snapshot, TaskCtx, TaskEnd
from jcl.methods.generated_replay import ReplayState, generative_replay
from jcl.methods.generator_objective import generator_loss
from jcl.methods.objective import supervised
from jcl.models.classifier import mlp_classifier
from jcl.models.paired import paired
from jcl.models.vae import vae_model
from jcl.tasks import protocols
from jcl.training import learner as learner_lib

D, C, N, L = 6, 6, 5, 2
X_REP = np.random.RandomState(7).rand(N, D).astype(np.float32)


def stub_model(calls=None, per_task=True):
    """A linear classifier with a per-task bias (like task gates, unless
    ``per_task`` is off) beside a stub generator whose hand computation is
    easy: it samples ``X_REP + m``; its posterior is ``mu = x @ e``,
    ``logvar = x @ v``; it decodes every ``z`` to ``m``, and its
    reconstruction loss is the squared error. Its negative ELBO per input
    is ``(|x - m|**2 + KL(mu, logvar)) / D``, whatever the latent draw."""
    def apply(params, state, x, task, *, train=False):
        del train  # unused
        c, g = params['classifier'], params['generator']
        if not per_task:
            task = jnp.zeros_like(task)
        return {'logits': x @ c['w'] + c['b'][task], 'features': x,
                'mu': x @ g['e'], 'logvar': x @ g['v']}, state

    def draw(params, key, n, modes=None):
        del params, key, modes  # unused
        if calls is not None:
            calls.append(n)
        return jnp.full((n, L), 100.0)  # a marker: "generate X_REP + m"

    def decode(params, state, z, gates=None):
        del state, gates  # unused
        m = params['generator']['m']
        generated = jnp.asarray(X_REP[:z.shape[0]]) + m
        return jnp.where(z[:, :1] > 50.0, generated, m + 0.0 * z[:, :1])

    def reconstruction(out, x):
        return jnp.sum((out - x) ** 2, axis=-1)

    return make_model(init=None, apply=apply,
                      main=lambda p: p['classifier'],
                      views={'draw': draw, 'decode': decode,
                             'to_input': lambda out: out,
                             'reconstruction': reconstruction})


def make_params(seed, num_tasks):
    rng = np.random.RandomState(seed)
    return jax.tree.map(jnp.asarray, {
        'classifier': {'w': np.float32(rng.randn(D, C)),
                       'b': np.float32(rng.randn(num_tasks, C))},
        'generator': {'m': np.full((D,), 0.1 * seed, np.float32),
                      'e': np.float32(0.3 * rng.randn(D, L)),
                      'v': np.float32(0.3 * rng.randn(D, L))}})


def teacher_of(params):
    """The replay state of a teacher (every class seen)."""
    return ReplayState(Snapshot(params, {}), jnp.ones(C, bool))


def table(scenario, num_tasks):
    per = C // num_tasks
    outputs = [list(range(per * t, per * (t + 1))) for t in range(num_tasks)]
    return jnp.asarray(protocols.active_table(scenario, outputs))


def ctx_at(t, active):
    return TaskCtx(jnp.int32(t), jax.random.PRNGKey(3), active)


def current_batch(n=4, task=0):
    """A current batch of task ``task`` (labels of the 3-task tables)."""
    x = np.random.RandomState(9).rand(n, D).astype(np.float32)
    y = 2 * task + np.arange(n) % 2
    return Batch(jnp.asarray(x), jnp.asarray(y, jnp.int32),
                 jnp.full((n,), task, jnp.int32))


def forward(model, params, batch):
    out, state = model.apply(params, {}, batch.x, batch.task, train=True)
    return Forward(params, state, batch, out, {})


def replay_terms(method, params, teacher, ctx, batch=None):
    """The method's terms on a current batch (jitted)."""
    model = stub_model()
    batch = current_batch() if batch is None else batch

    @jax.jit
    def run(p, tp, c):
        terms, aux = method.loss(teacher_of(tp), forward(model, p, batch), c)
        assert aux == {}
        return terms

    terms = run(params, teacher, ctx)
    assert set(terms) == {'replay', 'generator'}
    return terms


def np_logits(params, j, x=X_REP):
    p = jax.tree.map(lambda a: np.asarray(a, np.float64),
                     params['classifier'])
    return np.asarray(x, np.float64) @ p['w'] + p['b'][j]


def np_gen(params, x):
    """The stub generator's per-input negative ELBO."""
    g = jax.tree.map(lambda a: np.asarray(a, np.float64),
                     params['generator'])
    x = np.asarray(x, np.float64)
    mu, logvar = x @ g['e'], x @ g['v']
    kl = 0.5 * np.sum(np.exp(logvar) + mu ** 2 - 1 - logvar, axis=1)
    return (np.sum((x - g['m']) ** 2, axis=1) + kl) / D


def x_rep(teacher, n=N):
    return X_REP[:n] + np.asarray(teacher['generator']['m'])


def np_ce(logits, labels, units):
    sub = logits[:, units]
    lse = np.log(np.sum(np.exp(sub - sub.max(1, keepdims=True)), 1))
    lse += sub.max(1)
    return lse - logits[np.arange(len(labels)), labels]


def np_softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def np_split_hard(student, teacher, x, t, active):
    """Per-input hard-label replay loss with ``heads='split'``: input ``i``
    under head ``i mod t``, the teacher over ``active[t - 1, j]`` and the
    student over ``active[t, j]``."""
    active = np.asarray(active)
    per = []
    for i in range(len(x)):
        j = i % max(t, 1)
        s = np_logits(student, j, x[i:i + 1])
        z = np.where(active[max(t - 1, 0), j], np_logits(teacher, j,
                                                         x[i:i + 1]),
                     -np.inf)
        per.append(np_ce(s, [np.argmax(z[0])],
                         np.flatnonzero(active[t, j]))[0])
    return np.array(per)


def test_hard_labels_class_il_by_hand():
    active = table('class', 2)  # units {0,1,2} then {3,4,5}
    student, teacher = make_params(1, 2), make_params(2, 2)
    got = replay_terms(generative_replay(stub_model(), num_classes=C,
                                         replay_size=N),
                       student, teacher, ctx_at(1, active))
    # teacher: classes of task 0; student: classes of tasks 0 and 1
    x = x_rep(teacher)
    labels = np.argmax(np_logits(teacher, 0, x)[:, :3], axis=1)
    want = np.mean(np_ce(np_logits(student, 0, x), labels, list(range(6))))
    np.testing.assert_allclose(got['replay'], want, rtol=1e-5)
    # the student's generator on the teacher's samples
    np.testing.assert_allclose(got['generator'], np.mean(np_gen(student, x)),
                               rtol=1e-5)


@pytest.mark.parametrize('distill', [False, True])
def test_task_il_averages_over_previous_heads(distill):
    active = table('task', 3)  # heads {0,1}, {2,3}, {4,5}
    student, teacher = make_params(1, 3), make_params(2, 3)
    method = generative_replay(stub_model(), num_classes=C, distill=distill,
                               temperature=3.0, heads='all', replay_size=N)
    got = replay_terms(method, student, teacher, ctx_at(2, active))
    x = x_rep(teacher)
    per_head = []
    for j in range(2):  # heads of the previous tasks only
        units = [2 * j, 2 * j + 1]
        s, t = np_logits(student, j, x), np_logits(teacher, j, x)
        if distill:
            p = np_softmax(t[:, units] / 3.0)
            logq = np.log(np_softmax(s[:, units] / 3.0))
            per_head.append(np.mean(-9.0 * np.sum(p * logq, axis=1)))
        else:
            labels = units[0] + np.argmax(t[:, units], axis=1)
            per_head.append(np.mean(np_ce(s, labels, units)))
    np.testing.assert_allclose(got['replay'], np.mean(per_head), rtol=1e-5)
    np.testing.assert_allclose(got['generator'], np.mean(np_gen(student, x)),
                               rtol=1e-5)


@pytest.mark.parametrize('distill', [False, True])
def test_task_il_split_evenly_over_previous_heads(distill):
    active = table('task', 3)  # heads {0,1}, {2,3}, {4,5}
    student, teacher = make_params(1, 3), make_params(2, 3)
    # draws N inputs, the last one weighted 0
    method = generative_replay(stub_model(), num_classes=C, distill=distill,
                               temperature=3.0, replay_size=N,
                               replay_count=N - 1)
    got = replay_terms(method, student, teacher, ctx_at(2, active))
    x = x_rep(teacher)
    w = np.array([1.0, 1.0, 1.0, 1.0, 0.0])
    per = []
    for i in range(N):  # input i goes to head i mod 2 (tasks 0 and 1)
        j = i % 2
        units = [2 * j, 2 * j + 1]
        s = np_logits(student, j, x[i:i + 1])
        t = np_logits(teacher, j, x[i:i + 1])
        if distill:
            p = np_softmax(t[:, units] / 3.0)
            logq = np.log(np_softmax(s[:, units] / 3.0))
            per.append(-9.0 * np.sum(p * logq))
        else:
            label = units[0] + np.argmax(t[0, units])
            per.append(np_ce(s, [label], units)[0])
    want = np.sum(w * np.array(per)) / np.sum(w)
    np.testing.assert_allclose(got['replay'], want, rtol=1e-5)
    np.testing.assert_allclose(
        got['generator'], np.sum(w * np_gen(student, x)) / np.sum(w),
        rtol=1e-5)


def test_split_equals_all_outside_task_il():
    """Without task-specific parts (no per-task bias or gates) the heads
    of Class- and Domain-IL are one head: both modes agree."""
    shared = stub_model(per_task=False)
    split = generative_replay(shared, num_classes=C)
    every = generative_replay(shared, num_classes=C, heads='all')
    student, teacher = make_params(1, 3), make_params(2, 3)
    fwd = forward(shared, student, current_batch())
    every_loss, split_loss = jax.jit(every.loss), jax.jit(split.loss)
    for scenario in ('class', 'domain'):
        active = table(scenario, 3)
        for t in (0, 1, 2):
            a, _ = every_loss(teacher_of(teacher), fwd, ctx_at(t, active))
            b, _ = split_loss(teacher_of(teacher), fwd, ctx_at(t, active))
            for k in ('replay', 'generator'):
                np.testing.assert_allclose(a[k], b[k], rtol=1e-5)
                assert (float(a[k]) == 0.0) == (t == 0)
    with pytest.raises(ValueError, match='heads'):
        generative_replay(shared, num_classes=C, heads='every')


def test_needs_a_sample_view():
    clf = mlp_classifier((4,), num_outputs=C, input_dim=D)
    with pytest.raises(ConfigError, match="'draw' view"):
        generative_replay(clf, num_classes=C)
    with pytest.raises(ConfigError, match="'decode' view"):
        generator_loss(clf)


def test_distill_class_il_teacher_over_previous_classes():
    active = table('class', 2)
    student, teacher = make_params(1, 2), make_params(2, 2)
    got = replay_terms(generative_replay(stub_model(), num_classes=C,
                                         distill=True, replay_size=N),
                       student, teacher, ctx_at(1, active))
    x = x_rep(teacher)
    p = np.zeros((N, C))
    p[:, :3] = np_softmax(np_logits(teacher, 0, x)[:, :3] / 2.0)
    logq = np.log(np_softmax(np_logits(student, 0, x) / 2.0))
    want = np.mean(-4.0 * np.sum(p * logq, axis=1))
    np.testing.assert_allclose(got['replay'], want, rtol=1e-5)


@pytest.mark.parametrize('scenario', ['task', 'domain'])
def test_distill_gradient_vanishes_when_teacher_is_student(scenario):
    model = stub_model()
    method = generative_replay(model, num_classes=C, distill=True)
    params = make_params(1, 3)
    ctx = ctx_at(2, table(scenario, 3))
    batch = current_batch()

    def replay(p):
        terms, _ = method.loss(teacher_of(params), forward(model, p, batch),
                               ctx)
        return terms['replay']

    value, grads = jax.jit(jax.value_and_grad(replay))(params)
    assert float(value) > 0.0
    chex.assert_trees_all_close(
        grads['classifier'],
        jax.tree.map(jnp.zeros_like, params['classifier']), atol=1e-6)
    # a different student does get a gradient
    _, grads = jax.jit(jax.value_and_grad(replay))(make_params(4, 3))
    assert float(jnp.abs(grads['classifier']['w']).sum()) > 1e-3


def test_replay_weighted_weights_current_and_replayed_terms():
    """``generative_replay`` and ``generator_loss`` are unweighted; the
    combinator gives the current terms ``1/t`` and the replayed ones
    ``1 - 1/t`` (and the current ones 1 on the first task)."""
    calls = []
    model = stub_model(calls)
    gr = generative_replay(model, num_classes=C)
    method = combine.replay_weighted(
        current=[('ce', supervised()), ('gen', generator_loss(model))],
        replay=[('gr', gr)])
    params, teacher = make_params(1, 3), make_params(2, 3)
    active = table('class', 3)
    mstate = method.init(Snapshot(teacher, {}), None)
    assert set(mstate) == {'ce', 'gen', 'gr'}
    chex.assert_trees_all_equal(mstate['gr'].teacher, Snapshot(teacher, {}))
    mstate['gr'] = teacher_of(teacher)  # every class seen
    loss = jax.jit(method.loss)
    alone = jax.jit(gr.loss)
    for t in (0, 1, 2):
        batch = current_batch(4, t)
        fwd = forward(model, params, batch)
        terms, _ = loss(mstate, fwd, ctx_at(t, active))
        assert set(terms) == {'ce/loss', 'gen/loss', 'gr/replay',
                              'gr/generator'}
        own, _ = alone(mstate['gr'], fwd, ctx_at(t, active))
        # replay_size defaults to the current batch size: 4 inputs
        x = x_rep(teacher, 4)
        cls = np.mean(np_split_hard(params, teacher, x, t, active))
        gen_rep = np.mean(np_gen(params, x))
        gen_cur = np.mean(np_gen(params, batch.x))
        ce = np.mean(np_ce(np_logits(params, t, batch.x),
                           np.asarray(batch.y),
                           np.flatnonzero(np.asarray(active[t, t]))))
        if t == 0:
            np.testing.assert_array_equal(own['replay'], 0.0)
            np.testing.assert_array_equal(own['generator'], 0.0)
        else:
            np.testing.assert_allclose(own['replay'], cls, rtol=1e-5)
            np.testing.assert_allclose(own['generator'], gen_rep,
                                       rtol=1e-5)
        w_cur = 1.0 / (t + 1)
        w_rep = 1.0 - w_cur
        np.testing.assert_allclose(terms['gr/replay'], w_rep * own['replay'],
                                   rtol=1e-6)
        np.testing.assert_allclose(terms['gr/generator'],
                                   w_rep * own['generator'], rtol=1e-6)
        np.testing.assert_allclose(terms['gen/loss'], w_cur * gen_cur,
                                   rtol=1e-5)
        np.testing.assert_allclose(terms['ce/loss'], w_cur * ce, rtol=1e-5)
    assert calls == [4, 4]  # one trace of each jitted loss


def test_replay_size_and_traced_temperature():
    calls = []
    params = make_params(1, 2)
    model = stub_model(calls)
    fwd = forward(model, params, current_batch())
    ctx = ctx_at(1, table('class', 2))

    def terms(temperature):
        method = generative_replay(model, num_classes=C, distill=True,
                                   temperature=temperature, replay_size=3)
        return method.loss(teacher_of(params), fwd, ctx)[0]

    temps = [1.0, 2.5]
    out = jax.jit(jax.vmap(terms))(jnp.array(temps))
    assert calls == [3]
    x = x_rep(params, 3)
    want = []
    for temp in temps:  # the student is the teacher: its own entropy
        p = np.zeros((3, C))
        p[:, :3] = np_softmax(np_logits(params, 0, x)[:, :3] / temp)
        logq = np.log(np_softmax(np_logits(params, 0, x) / temp))
        want.append(np.mean(-temp ** 2 * np.sum(p * logq, axis=1)))
    np.testing.assert_allclose(out['replay'], want, rtol=1e-5)
    np.testing.assert_allclose(out['generator'],
                               [np.mean(np_gen(params, x))] * 2, rtol=1e-5)


def test_traced_replay_count_equals_smaller_replay_size():
    """A grid over replay sizes draws at the largest size and masks: with
    count k it equals drawing k inputs (the stub draws X_REP[:n])."""
    params, teacher = make_params(1, 2), make_params(2, 2)
    ctx = ctx_at(1, table('class', 2))
    model = stub_model()
    fwd = forward(model, params, current_batch())

    @jax.jit
    def masked(count):
        m = generative_replay(model, num_classes=C, replay_size=5,
                              replay_count=count)
        return m.loss(teacher_of(teacher), fwd, ctx)[0]

    small = jax.jit(lambda: generative_replay(
        model, num_classes=C, replay_size=3).loss(teacher_of(teacher), fwd,
                                                  ctx)[0])()
    got = masked(jnp.float32(3))
    for k in ('replay', 'generator'):
        np.testing.assert_allclose(got[k], small[k], rtol=1e-5)
    np.testing.assert_allclose(got['generator'],
                               np.mean(np_gen(params, x_rep(teacher, 3))),
                               rtol=1e-5)
    full = masked(jnp.float32(5))
    assert not np.isclose(float(full['replay']), float(got['replay']))
    counts = jnp.array([3.0, 5.0])
    vm = jax.vmap(masked)(counts)
    np.testing.assert_allclose(vm['replay'], [got['replay'],
                                              full['replay']], rtol=1e-5)


def test_init_and_consolidate_snapshot_the_whole_model():
    model = paired(mlp_classifier((8,), num_outputs=C, input_dim=D),
                   vae_model((8,), latent=3, input_dim=D))
    gen = vae_model((8,), latent=3, input_dim=D)
    key = jax.random.PRNGKey(0)
    params, state = jax.jit(model.init)(key)
    assert set(params) == {'classifier', 'generator'}
    # the generator's parameters are drawn from fold_in(key, 2)
    chex.assert_trees_all_equal(
        params['generator'], jax.jit(gen.init)(jax.random.fold_in(key, 2))[0])
    assert model.main(params) is params['classifier']
    method = generative_replay(model, num_classes=C)
    first = method.init(Snapshot(params, state), None)
    assert isinstance(first, ReplayState)
    chex.assert_trees_all_equal(first.teacher, Snapshot(params, state))
    assert not np.asarray(first.seen).any()
    later = jax.tree.map(lambda a: a + 1.0, params)
    # a task of classes 1 and 4 (3 entries, the third padding)
    data = data_lib.TaskData(
        images=jnp.zeros((3, D), jnp.uint8), labels=jnp.array([1, 4, 5]),
        index=jnp.array([[0, 1, 2]]), count=jnp.array([2]),
        origin=jnp.zeros((1, 3), jnp.int32),
        offset=jnp.zeros(1, jnp.int32), perm=None)
    new = method.consolidate(first, TaskEnd(later, state, data, None),
                             ctx_at(0, None))
    chex.assert_trees_all_equal(new.teacher, Snapshot(later, state))
    assert np.flatnonzero(np.asarray(new.seen)).tolist() == [1, 4]
    # the paired model's sample view is the generator's on its params
    k = jax.random.PRNGKey(5)
    np.testing.assert_allclose(
        jax.jit(model.views['sample'], static_argnums=3)(later, state, k, 4),
        jax.jit(gen.views['sample'], static_argnums=3)(
            later['generator'], {}, k, 4), rtol=1e-6)


def test_end_to_end_class_il(arrays):
    proto = protocols.class_split('synthetic', arrays, 'class')
    dim = proto.input_shape[0]

    def make_model(hp):
        return paired(mlp_classifier((16,), num_outputs=proto.num_outputs,
                                     input_dim=dim),
                      vae_model((16,), latent=4, input_dim=dim))

    def make_method(hp, model):
        return combine.replay_weighted(
            current=[('ce', supervised()), ('gen', generator_loss(model))],
            replay=[('gr', generative_replay(model, num_classes=10,
                                             temperature=hp['gr.temp']))])

    learner = learner_lib.Learner(make_model, make_method,
                                prepare=proto.prepare, num_steps=40,
                                batch_size=16)
    hp = {'lr': jnp.full((2,), 1e-3), 'gr.temp': jnp.full((2,), 2.0)}
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    tr, te = data_lib.to_device(proto.train), data_lib.to_device(proto.test)
    active = jnp.asarray(proto.active)
    init, task, _ = jcl.compile_run(learner)
    states = init(hp, keys)
    gen0 = jax.tree.map(np.asarray, states.params['generator'])
    for t in range(3):
        states, metrics, acc = task(states, hp, tr, te, active,
                                    jnp.int32(t))
        assert set(metrics) == {'loss', 'ce/loss', 'gen/loss', 'gr/replay',
                                'gr/generator'}
        for v in metrics.values():
            assert np.isfinite(np.asarray(v)).all()
        np.testing.assert_allclose(
            metrics['loss'],
            sum(v for k, v in metrics.items() if k != 'loss'), rtol=1e-5)
        for name in ('gr/replay', 'gr/generator'):
            replay = np.asarray(metrics[name])
            assert (replay == 0).all() if t == 0 else (replay > 0).all()
        # the teacher is the snapshot of the model at the end of the task
        chex.assert_trees_all_equal(
            states.mstate['gr'].teacher,
            Snapshot(states.params, states.model_state))
        # the classes trained so far, seen by every seed
        np.testing.assert_array_equal(
            states.mstate['gr'].seen,
            np.broadcast_to(np.arange(10) < 2 * (t + 1), (2, 10)))
        if t == 0:  # the generator learns the current data
            gen_cur = np.asarray(metrics['gen/loss'])
            assert gen_cur[:, -5:].mean() < gen_cur[:, :5].mean()
        # the task just learned is learned
        assert (np.asarray(acc)[:, t] > 0.5).all()
    moved = jax.tree.map(lambda a, b: float(np.abs(a - b).max()), gen0,
                         jax.tree.map(np.asarray, states.params['generator']))
    assert min(jax.tree.leaves(moved)) > 0.0
