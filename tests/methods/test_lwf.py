"""LwF: the distillation term against hand formulas for Class-, Task- and
Domain-IL tables, its zero gradient at the teacher, the teacher snapshot,
and its task weight (which the combinator applies, not LwF)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jcl.core import combine, losses
from jcl.core.model import make_model
from jcl.core.records import Batch, Forward, Snapshot, TaskCtx, TaskEnd
from jcl.methods.learning_without_forgetting import (
    lwf as weighted_lwf,  # the method: replayed, 1 - 1/t
)
from jcl.methods.learning_without_forgetting import (
    teacher_distillation as lwf,  # its unweighted term, tested here
)
from jcl.methods.objective import compose, supervised
from jcl.tasks.protocols import active_table

D, B, T = 3, 5, 2.0


def _apply(params, state, x, task, *, train=False):
    """Linear logits plus a per-task bias (a parameter: ``task`` matters,
    as with XdG) plus a per-task shift held in the model state."""
    del train  # unused
    logits = x @ params['w'] + params['bias'][task] + state['shift'][task]
    return {'logits': logits}, state


MODEL = make_model(init=None, apply=_apply)


def make_params(seed, num_tasks, outputs):
    rng = np.random.RandomState(seed)
    return {'w': jnp.asarray(rng.randn(D, outputs), jnp.float32),
            'bias': jnp.asarray(rng.randn(num_tasks, outputs), jnp.float32)}


def zero_state(params):
    return {'shift': jnp.zeros_like(params['bias'])}


def snap(params, state=None):
    return Snapshot(params, zero_state(params) if state is None else state)


def table(scenario, num_tasks):
    if scenario == 'domain':
        units = [[0, 1]] * num_tasks
    else:
        units = [[2 * t, 2 * t + 1] for t in range(num_tasks)]
    return jnp.asarray(active_table(scenario, units))


def batch_for(task_id, labels=None):
    x = np.random.RandomState(7).rand(B, D).astype(np.float32)
    y = np.zeros(B, np.int32) if labels is None else labels
    return Batch(jnp.asarray(x), jnp.asarray(y, jnp.int32),
                 jnp.full(B, task_id, jnp.int32))


def forward(params, state, batch):
    out, _ = _apply(params, state, batch.x, batch.task, train=True)
    return Forward(params, state, batch, out, {})


def np_logits(params, x, task, state=None):
    shift = 0.0 if state is None else np.asarray(state['shift'])[task]
    return (x @ np.asarray(params['w']) + np.asarray(params['bias'])[task]
            + shift)


def np_kd(student, teacher, s_units, t_units, temp=T):
    """``T**2 * mean_b sum_c -q_c log p_c``: q the teacher's softmax over
    ``t_units`` (0 elsewhere), p the student's over ``s_units``."""
    q = np.zeros_like(teacher)
    zt = teacher[:, t_units] / temp
    q[:, t_units] = np.exp(zt - zt.max(1, keepdims=True))
    q /= q.sum(1, keepdims=True)
    zs = student[:, s_units] / temp
    logp = zs - zs.max(1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(1, keepdims=True))
    return float(np.mean(-temp ** 2 * (q[:, s_units] * logp).sum(1)))


def distill_and_grad(method, params, teacher, ctx, batch, state=None):
    state = zero_state(params) if state is None else state

    def f(p):
        terms, aux = method.loss(teacher, forward(p, state, batch), ctx)
        assert set(terms) == {'distill'} and aux == {}
        return terms['distill']

    value, grad = jax.jit(jax.value_and_grad(f))(params)
    return float(value), grad


def ctx_at(task_id, active):
    return TaskCtx(jnp.int32(task_id), jax.random.PRNGKey(0), active)


def test_class_il_teacher_over_old_classes_student_over_classes_so_far():
    student, teacher = make_params(0, 2, 4), make_params(1, 2, 4)
    m = lwf(MODEL, temperature=T)
    batch = batch_for(1)
    got, grad = distill_and_grad(m, student, m.init(snap(teacher), None),
                                 ctx_at(1, table('class', 2)), batch)
    x = np.asarray(batch.x)
    # head 0 only (tasks before t = 1), unweighted
    want = np_kd(np_logits(student, x, 0), np_logits(teacher, x, 0),
                 [0, 1, 2, 3], [0, 1])
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert np.abs(np.asarray(grad['w'])).sum() > 1e-3
    # the gradient only flows through head 0's task bias
    np.testing.assert_allclose(grad['bias'][1], 0.0, atol=1e-7)
    assert np.abs(np.asarray(grad['bias'][0])).sum() > 1e-3


def test_task_il_averages_over_previous_heads():
    student, teacher = make_params(2, 3, 6), make_params(3, 3, 6)
    m = lwf(MODEL, temperature=T)
    batch = batch_for(2)
    got, _ = distill_and_grad(m, student, m.init(snap(teacher), None),
                              ctx_at(2, table('task', 3)), batch)
    x = np.asarray(batch.x)
    heads = [np_kd(np_logits(student, x, j), np_logits(teacher, x, j),
                   [2 * j, 2 * j + 1], [2 * j, 2 * j + 1]) for j in (0, 1)]
    np.testing.assert_allclose(got, np.mean(heads), rtol=1e-5)


@pytest.mark.parametrize('scenario', ['task', 'domain'])
def test_zero_gradient_when_student_is_the_teacher(scenario):
    params = make_params(4, 3, 6 if scenario == 'task' else 2)
    m = lwf(MODEL, temperature=T)
    ctx = ctx_at(2, table(scenario, 3))
    got, grad = distill_and_grad(m, params, m.init(snap(params), None), ctx,
                                 batch_for(2))
    assert got > 0  # the cross-entropy form keeps the teacher's entropy
    for g in jax.tree.leaves(grad):
        np.testing.assert_allclose(g, 0.0, atol=1e-6)
    # a different student does get a gradient
    _, grad = distill_and_grad(m, make_params(5, 3, params['bias'].shape[1]),
                               m.init(snap(params), None), ctx, batch_for(2))
    assert sum(float(jnp.abs(g).sum()) for g in jax.tree.leaves(grad)) > 1e-3


def test_domain_il_single_shared_head():
    student, teacher = make_params(6, 2, 2), make_params(7, 2, 2)
    m = lwf(MODEL, temperature=T)
    batch = batch_for(1)
    got, _ = distill_and_grad(m, student, m.init(snap(teacher), None),
                              ctx_at(1, table('domain', 2)), batch)
    x = np.asarray(batch.x)
    want = np_kd(np_logits(student, x, 0), np_logits(teacher, x, 0),
                 [0, 1], [0, 1])
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_zero_on_the_first_task():
    student, teacher = make_params(0, 2, 4), make_params(1, 2, 4)
    m = lwf(MODEL, temperature=T)
    got, grad = distill_and_grad(m, student, m.init(snap(teacher), None),
                                 ctx_at(0, table('class', 2)), batch_for(0))
    assert got == 0.0
    for g in jax.tree.leaves(grad):
        np.testing.assert_array_equal(g, 0.0)


def test_replay_weighted_applies_one_minus_one_over_t():
    """LwF returns the plain mean of its heads; ``replay_weighted`` weighs
    it by ``1 - 1/t`` and the current cross-entropy by ``1/t``."""
    student, teacher = make_params(2, 3, 6), make_params(3, 3, 6)
    state = zero_state(student)
    labels = np.array([0, 1, 1, 0, 1])
    m = combine.replay_weighted(current=[('ce', supervised())],
                                replay=[('lwf', lwf(MODEL, temperature=T))])
    composed = compose(('lwf', weighted_lwf(MODEL, temperature=T)))
    mstate = m.init(snap(teacher), None)
    assert set(mstate) == {'ce', 'lwf'}
    loss, loss2 = jax.jit(m.loss), jax.jit(composed.loss)
    for scenario in ('task', 'class'):
        active = table(scenario, 3)
        for task_id in (0, 1, 2):
            batch = batch_for(task_id, 2 * task_id + labels)
            ctx = ctx_at(task_id, active)
            terms, aux = loss(mstate, forward(student, state, batch), ctx)
            assert set(terms) == {'ce/loss', 'lwf/distill'}
            assert set(aux) == {'ce', 'lwf'}
            x = np.asarray(batch.x)
            z = np_logits(student, x, task_id)
            units = np.flatnonzero(np.asarray(active[task_id, task_id]))
            sub = z[:, units]
            lse = np.log(np.exp(sub - sub.max(1, keepdims=True)).sum(1))
            ce = np.mean(lse + sub.max(1)
                         - z[np.arange(B), 2 * task_id + labels])
            heads = [np_kd(np_logits(student, x, j),
                           np_logits(teacher, x, j),
                           np.flatnonzero(np.asarray(active[task_id, j])),
                           np.flatnonzero(np.asarray(
                               active[max(task_id - 1, 0), j])))
                     for j in range(task_id)]
            kd = np.mean(heads) if heads else 0.0
            t = task_id + 1
            weight = 1.0 / t if task_id else 1.0
            np.testing.assert_allclose(terms['ce/loss'], weight * ce,
                                       rtol=1e-5)
            np.testing.assert_allclose(terms['lwf/distill'],
                                       (1 - 1 / t) * kd, rtol=1e-5,
                                       atol=1e-7)
            # jcl's lwf weighs itself: compose gives the same terms
            same, _ = loss2(mstate, forward(student, state, batch), ctx)
            for k in terms:
                np.testing.assert_array_equal(same[k], terms[k])
            # the member alone is unweighted
            alone, _ = distill_and_grad(lwf(MODEL, temperature=T), student,
                                        snap(teacher), ctx, batch)
            np.testing.assert_allclose(alone, kd, rtol=1e-5, atol=1e-7)


def test_consolidate_snapshots_params_and_model_state():
    """The teacher is the end-of-task params and model state; the student
    runs with its own model state (XdG gates and BatchNorm statistics are
    model state, so the teacher keeps its own)."""
    student, old = make_params(0, 2, 4), make_params(1, 2, 4)
    rng = np.random.RandomState(11)
    old_state = {'shift': jnp.asarray(rng.randn(2, 4), jnp.float32)}
    own_state = {'shift': jnp.asarray(rng.randn(2, 4), jnp.float32)}
    m = lwf(MODEL)
    teacher = m.consolidate(m.init(snap(student), None),
                            TaskEnd(old, old_state, None, None), None)
    assert isinstance(teacher, Snapshot)
    assert teacher.params is old and teacher.model_state is old_state
    batch = batch_for(1)
    got, _ = distill_and_grad(m, student, teacher,
                              ctx_at(1, table('class', 2)), batch,
                              state=own_state)
    x = np.asarray(batch.x)
    want = np_kd(np_logits(student, x, 0, own_state),
                 np_logits(old, x, 0, old_state), [0, 1, 2, 3], [0, 1])
    np.testing.assert_allclose(got, want, rtol=1e-5)
    # ... and not the student's state for the teacher
    wrong = np_kd(np_logits(student, x, 0, own_state),
                  np_logits(old, x, 0, own_state), [0, 1, 2, 3], [0, 1])
    assert not np.isclose(got, wrong, rtol=1e-3)


def test_temperature_may_be_a_vmapped_tracer():
    student, teacher = make_params(0, 2, 4), make_params(1, 2, 4)
    batch, ctx = batch_for(1), ctx_at(1, table('class', 2))
    fwd = forward(student, zero_state(student), batch)

    def run(temp):
        m = lwf(MODEL, temperature=temp)
        return m.loss(m.init(snap(teacher), None), fwd, ctx)[0]['distill']

    temps = [1.0, 3.0]
    got = np.asarray(jax.jit(jax.vmap(run))(jnp.array(temps)))
    x = np.asarray(batch.x)
    want = [np_kd(np_logits(student, x, 0), np_logits(teacher, x, 0),
                  [0, 1, 2, 3], [0, 1], temp) for temp in temps]
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_distillation_teacher_mask_gives_zero_target_on_new_outputs():
    student = jnp.array([[0.3, 0.2, 0.1, -0.4]])
    teacher = jnp.array([[1.0, 0.0, 5.0, 9.0]])
    mask = jnp.ones((1, 4), bool)
    old = jnp.array([[True, True, False, False]])
    got = losses.distillation(student, teacher, mask, 2.0, teacher_mask=old)
    want = np_kd(np.asarray(student), np.asarray(teacher), [0, 1, 2, 3],
                 [0, 1], 2.0)
    np.testing.assert_allclose(got, [want], rtol=1e-6)
    same = losses.distillation(student, teacher, old, 2.0)
    np.testing.assert_allclose(
        same, [np_kd(np.asarray(student), np.asarray(teacher), [0, 1],
                     [0, 1], 2.0)], rtol=1e-6)
    np.testing.assert_allclose(
        losses.distillation(student, teacher, old, 2.0, teacher_mask=old),
        same, rtol=1e-7)


@pytest.mark.parametrize('scenario', ['task', 'class', 'domain'])
def test_class_mean_divides_each_head_by_its_active_outputs(scenario):
    # the NMI code before May 2019: mean over classes instead of the sum
    outputs = 2 if scenario == 'domain' else 6
    student, teacher = make_params(8, 3, outputs), make_params(9, 3, outputs)
    active = table(scenario, 3)
    batch = batch_for(2)
    ctx = ctx_at(2, active)
    got_sum, _ = distill_and_grad(lwf(MODEL, temperature=T), student,
                                  snap(teacher), ctx, batch)
    got_mean, _ = distill_and_grad(
        lwf(MODEL, temperature=T, class_mean=jnp.float32(1.0)), student,
        snap(teacher), ctx, batch)
    x = np.asarray(batch.x)
    heads = []
    for j in (0, 1):
        s_units = np.flatnonzero(np.asarray(active[2, j]))
        t_units = np.flatnonzero(np.asarray(active[1, j]))
        kd = np_kd(np_logits(student, x, j), np_logits(teacher, x, j),
                   s_units, t_units)
        heads.append((kd, len(s_units)))
    np.testing.assert_allclose(got_sum, np.mean([k for k, _ in heads]),
                               rtol=1e-5)
    np.testing.assert_allclose(
        got_mean, np.mean([k / n for k, n in heads]), rtol=1e-5)
