"""Oracles of the buffer methods: ER's replay loss, A-GEM's projection,
iCaRL's herding, nearest mean of exemplars and loss, DER++'s loss."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jcl.core import taskdata as data_lib
from jcl.core.method import member_key
from jcl.core.model import make_model
from jcl.core.records import Batch, Forward, Snapshot, Step, TaskCtx
from jcl.methods import buffers
from jcl.methods.dark_experience_replay import derpp
from jcl.methods.experience_replay import er
from jcl.methods.gradient_episodic_memory import agem, project
from jcl.methods.incremental_classifier import (
    bce_distill,
    herding,
    icarl,
    normalize,
)
from jcl.tasks import protocols
from jcl.training import learner as learner_lib
from jcl.training import task as train_lib

D, C = 3, 4


def linear_model():
    """logits = x W + b; features = x (an identity embedding)."""
    def apply(p, s, x, task, train=False):
        return {'logits': x @ p['w'] + p['b'], 'features': x}, s
    return make_model(init=None, apply=apply)


PARAMS = {'w': jnp.asarray(np.random.RandomState(0).randn(D, C),
                           jnp.float32),
          'b': jnp.asarray([0.1, -0.2, 0.3, 0.0], jnp.float32)}


def scale(x):
    return x.astype(jnp.float32) / 10.0


def filled_buffer(n=6, logits=0):
    rng = np.random.RandomState(1)
    buf = buffers.empty(n, (D,), jnp.uint8, logits)
    return buf._replace(
        x=jnp.asarray(rng.randint(0, 10, (n, D)), jnp.uint8),
        y=jnp.asarray([0, 1, 0, 1, 2, 3]), task=jnp.asarray([0] * 4 + [1] * 2),
        logits=jnp.asarray(rng.randn(n, logits), jnp.float32),
        valid=jnp.ones(n, bool))


def ctx(t, scenario='class'):
    active = protocols.active_table(scenario, [[0, 1], [2, 3]])
    return TaskCtx(jnp.int32(t), jax.random.PRNGKey(7), jnp.asarray(active))


def np_ce(z, y, mask):
    z = np.where(mask, z, -np.inf)
    return np.log(np.exp(z - z.max(1, keepdims=True)).sum(1)) + \
        z.max(1) - z[np.arange(len(y)), y]


@pytest.mark.parametrize('scenario', ['task', 'class'])
def test_er_replay_loss_by_hand(scenario):
    m = er(linear_model(), prepare=scale, input_shape=(D,), num_tasks=2,
           classes_per_task=2, per_class=3, replay_size=4)
    buf = filled_buffer()._replace(task=jnp.asarray([0] * 6),
                                   y=jnp.asarray([0, 1] * 3))
    c = ctx(1, scenario)
    fwd = Forward(PARAMS, {}, None, {}, {})
    got = float(m.loss(buf, fwd, c)[0]['replay'])
    slots, w = buffers.draw_by_task(buf, member_key(c, 'er'), 4, c.task_id)
    slots, w = np.asarray(slots), np.asarray(w)
    x = np.asarray(buf.x)[slots] / 10.0
    z = x @ np.asarray(PARAMS['w']) + np.asarray(PARAMS['b'])
    mask = np.asarray(c.active)[1, 0][None].repeat(4, 0)
    want = np.sum(w * np_ce(z, np.asarray(buf.y)[slots], mask))
    # a term on replayed data: weighted 1 - 1/t on task t = 2
    np.testing.assert_allclose(got, 0.5 * want, rtol=1e-5)
    assert m.replays
    np.testing.assert_allclose(w.sum(), 1.0, rtol=1e-6)
    # nothing replayed on the first task
    assert float(m.loss(buf, fwd, ctx(0, scenario))[0]['replay']) == 0.0


def test_er_stores_each_class_at_task_end(arrays):
    proto = protocols.class_split('s', arrays, 'class')
    model = learner_lib.Learner(
        lambda hp: __import__('jcl').models.mlp_classifier(
            (8,), num_outputs=10, input_dim=784),
        lambda hp, model: __import__('jcl').compose(
            ('er', er(model, prepare=proto.prepare, input_shape=(784,),
                      num_tasks=5, classes_per_task=2, per_class=5))),
        num_steps=5, batch_size=8)
    hp = {'lr': 1e-3}
    state = learner_lib.init_state(model, hp, jax.random.PRNGKey(0))
    task = jax.jit(functools.partial(train_lib.train_task, model))
    train = data_lib.to_device(proto.train)
    for t in range(2):
        state, metrics, _ = task(state, hp, train, None,
                                 jnp.asarray(proto.active), jnp.int32(t))
    buf = state.mstate['er']
    assert np.asarray(buf.valid).sum() == 2 * 2 * 5
    np.testing.assert_array_equal(np.asarray(buf.y)[:20],
                                  np.repeat([0, 1, 2, 3], 5))
    # task 2 replays task 1's examples: the term is positive and weighted
    assert float(metrics['er/replay'].min()) > 0


def test_agem_projects_only_conflicting_gradients():
    g = {'a': jnp.array([1.0, 2.0]), 'b': jnp.array([-3.0])}
    ref = {'a': jnp.array([0.0, 1.0]), 'b': jnp.array([1.0])}
    out = project(g, ref)                            # g.ref = -1 < 0
    dot = sum(float(jnp.vdot(out[k], ref[k])) for k in g)
    assert abs(dot) < 1e-6                           # orthogonal after
    np.testing.assert_allclose(out['a'], [1.0, 2.5], rtol=1e-6)
    np.testing.assert_allclose(out['b'], [-2.5], rtol=1e-6)
    same = project(g, {'a': jnp.array([1.0, 0.0]), 'b': jnp.array([0.0])})
    np.testing.assert_array_equal(same['a'], g['a'])


def test_agem_stage_uses_the_replayed_gradient():
    model = linear_model()
    m = agem(model, prepare=scale, input_shape=(D,), num_tasks=2,
             classes_per_task=2, per_class=3, replay_size=4)
    buf = filled_buffer()._replace(task=jnp.asarray([0] * 6),
                                   y=jnp.asarray([0, 1] * 3))
    c = ctx(1)

    def ref_loss(p):
        from jcl.methods.experience_replay import replay_ce
        return replay_ce(model, p, {}, buf, c, member_key(c, 'agem'), 4, scale)

    ref = jax.grad(ref_loss)(PARAMS)
    noise = jax.random.normal(jax.random.PRNGKey(9), (D, C))
    grads = {'w': -ref['w'] + 0.1 * noise, 'b': -ref['b']}  # conflicting
    got = m.grads(buf, Step(PARAMS, PARAMS, grads, {}, None, None, {}, {}),
                  c)
    want = project(grads, ref)
    for k in PARAMS:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-7)
    assert float(jnp.abs(got['w'] - grads['w']).max()) > 1e-3  # projected
    dot = sum(float(jnp.vdot(got[k], ref[k])) for k in PARAMS)
    assert abs(dot) < 1e-5


def test_herding_matches_a_brute_force_loop():
    f = np.asarray(jax.random.normal(jax.random.PRNGKey(3), (12, 5)))
    valid = np.ones(12, bool)
    valid[[2, 7]] = False
    got = np.asarray(herding(jnp.asarray(f), jnp.asarray(valid), 4))
    fn = f / np.linalg.norm(f, axis=1, keepdims=True)
    mu = fn[valid].mean(0)
    mu /= np.linalg.norm(mu)
    chosen, total = [], np.zeros(5)
    for k in range(4):
        d = np.linalg.norm((total + fn) / (k + 1) - mu, axis=1)
        d[~valid] = np.inf
        d[chosen] = np.inf
        i = int(np.argmin(d))
        chosen.append(i)
        total += fn[i]
    assert got.tolist() == chosen


def test_nearest_mean_of_exemplars_on_a_toy_embedding():
    m = icarl(linear_model(), prepare=scale, input_shape=(D,), num_tasks=2,
              classes_per_task=2, num_outputs=C, per_class=3,
              task_sizes=[10, 10])
    state = m.init(Snapshot(PARAMS, {}), ctx(0))
    means = normalize(jnp.array([[1., 0, 0], [0, 1, 0], [0, 0, 1],
                                 [1, 1, 1]]))
    state = state._replace(means=means,
                           has_mean=jnp.array([True, True, True, False]))
    x = jnp.array([[2.0, 0.1, 0.0], [0.0, 0.0, 5.0], [0.8, 1.0, 1.2]])
    scores = m.predict(state, Snapshot(PARAMS, {}), x, jnp.zeros(3, int))
    assert np.asarray(scores).argmax(1).tolist() == [0, 2, 2]  # 3 has none
    fx = np.asarray(normalize(x))
    np.testing.assert_allclose(
        scores[:, :3], -((fx[:, None] - np.asarray(means)[None, :3]) ** 2)
        .sum(-1), rtol=1e-5)


def test_icarl_bce_distill_by_hand():
    s = jnp.array([[0.5, -1.0, 2.0, 0.3]])
    t = jnp.array([[1.0, 3.0, -1.0, 0.0]])
    mask = jnp.array([[True, True, True, False]])
    old = jnp.array([[True, True, False, False]])
    got = float(bce_distill(s, t, jnp.array([2]), mask, old, 2.0)[0])
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    target = [sig(0.5), sig(1.5), 1.0]
    p = sig(np.array([0.5, -1.0, 2.0]))
    want = -np.sum(np.array(target) * np.log(p)
                   + (1 - np.array(target)) * np.log(1 - p))
    np.testing.assert_allclose(got, want, rtol=1e-5)


@pytest.mark.parametrize('outputs', ['seen', 'all'])
def test_icarl_distills_only_the_earlier_classes(outputs):
    """In task 2 the units of task 1's classes get the teacher's targets
    and task 2's own units one-hot targets, whether the active units are
    the classes seen so far or every unit (``--class-outputs all``, where
    the earlier active units include the new classes)."""
    m = icarl(linear_model(), prepare=scale, input_shape=(D,), num_tasks=2,
              classes_per_task=2, num_outputs=C, per_class=3,
              task_sizes=[10, 10], batch_size=4)
    teacher = {'w': PARAMS['w'] * 0.5, 'b': PARAMS['b'] + 1}
    state = m.init(Snapshot(PARAMS, {}), ctx(0))._replace(
        teacher=Snapshot(teacher, {}),
        has_mean=jnp.array([True, True, False, False]))
    active = jnp.asarray(protocols.active_table('class', [[0, 1], [2, 3]],
                                                outputs))
    c = TaskCtx(jnp.int32(1), jax.random.PRNGKey(7), active)
    x = jnp.array([[1.0, 2.0, 3.0], [0.5, -1.0, 2.0]])
    batch = Batch(x, jnp.array([2, 3]), jnp.array([1, 1]))
    out = {'logits': x @ PARAMS['w'] + PARAMS['b'], 'features': x}
    got = float(m.loss(state, Forward(PARAMS, {}, batch, out, {}), c)[0][
        'bce'])                            # the buffer is empty: current only
    t_logits = np.asarray(x @ teacher['w'] + teacher['b'])
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    z = np.asarray(out['logits'])
    want = 0.0
    for i, y in enumerate([2, 3]):
        target = np.eye(C)[y]
        target[:2] = sig(t_logits[i, :2] / 2.0)
        p = sig(z[i])
        want += -np.sum(target * np.log(p) + (1 - target) * np.log(1 - p))
    np.testing.assert_allclose(got, want / 2, rtol=1e-5)


def test_derpp_loss_by_hand():
    m = derpp(linear_model(), prepare=scale, input_shape=(D,),
              num_outputs=C, size=6, alpha=0.3, beta=0.7, minibatch=4)
    buf = filled_buffer(logits=C)
    c = ctx(1, 'class')
    terms = m.loss(buf, Forward(PARAMS, {}, None, {}, {}), c)[0]
    key = member_key(c, 'derpp')
    w_, b_ = np.asarray(PARAMS['w']), np.asarray(PARAMS['b'])
    s1, _ = buffers.draw(buf, jax.random.fold_in(key, 1), 4)
    z = np.asarray(buf.x)[np.asarray(s1)] / 10 @ w_ + b_
    mse = np.mean((z - np.asarray(buf.logits)[np.asarray(s1)]) ** 2)
    np.testing.assert_allclose(float(terms['logits']), 0.3 * mse, rtol=1e-5)
    s2, _ = buffers.draw(buf, jax.random.fold_in(key, 2), 4)
    s2 = np.asarray(s2)
    z2 = np.asarray(buf.x)[s2] / 10 @ w_ + b_
    mask = np.asarray(c.active)[1][np.asarray(buf.task)[s2]]
    ce = np_ce(z2, np.asarray(buf.y)[s2], mask).mean()
    np.testing.assert_allclose(float(terms['labels']), 0.7 * ce, rtol=1e-5)
    # update stores the step's raw batch with the logits of its forward
    raw = Batch(jnp.ones((2, D), jnp.uint8), jnp.array([1, 2]),
                jnp.array([1, 1]))
    out = {'logits': jnp.arange(8.0).reshape(2, C)}
    empty = m.init(None, None)
    new = m.update(empty, Step(PARAMS, PARAMS, None, {}, None, raw, out, {}),
                   c)
    np.testing.assert_array_equal(new.logits[:2], out['logits'])
    np.testing.assert_array_equal(new.y[:2], [1, 2])
    assert int(new.seen) == 2




@pytest.mark.parametrize('herd', ['herding', 'random'])
def test_icarl_full_capacity_shrinks_every_class_to_its_share(herd):
    """``full_capacity``: per_class 2 over 2 tasks is a budget of 8 for 4
    classes: 4 exemplars per class after task 1, the first 2 of each
    after task 2 (the reference's reduce_memory_sets)."""
    from jcl.core.records import TaskEnd
    rng = np.random.RandomState(0)
    x = rng.randint(0, 10, (24, D)).astype(np.uint8)
    y = np.repeat(np.arange(C), 6)
    proto = protocols.class_split('toy', dict(train_x=x, train_y=y,
                                              test_x=x, test_y=y), 'class',
                                  classes_per_task=2)
    m = icarl(linear_model(), prepare=scale, input_shape=(D,), num_tasks=2,
              classes_per_task=2, num_outputs=C, per_class=2,
              task_sizes=[12, 12], selection=herd, full_capacity=True)
    data = data_lib.to_device(proto.train)
    state = m.init(Snapshot(PARAMS, {}), ctx(0))
    assert state.buffer.valid.shape == (16,)          # 4 classes x 4
    state = m.consolidate(state, TaskEnd(PARAMS, {}, data, scale), ctx(0))
    first = np.asarray(state.buffer.x)[:8].copy()
    assert np.asarray(state.buffer.valid).tolist() == [True] * 8 + \
        [False] * 8
    state = m.consolidate(state, TaskEnd(PARAMS, {}, data, scale), ctx(1))
    valid = np.asarray(state.buffer.valid).reshape(4, 4)
    assert valid.tolist() == [[True, True, False, False]] * 4
    # task 1's classes keep the first two of their four (herding order)
    np.testing.assert_array_equal(np.asarray(state.buffer.x)[:8], first)
    assert np.asarray(state.has_mean).tolist() == [True] * 4
