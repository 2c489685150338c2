"""LwF: the distillation term against hand formulas for Class-, Task- and
Domain-IL tables, its zero gradient at the teacher, and its task weight."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jcl import data as data_lib
from jcl import losses
from jcl.methods.lwf import lwf
from jcl.types import Batch, TaskCtx

D, B, T = 3, 5, 2.0


def model(params, x, task):
    """Linear logits plus a per-task bias (``task`` matters, as XdG)."""
    return x @ params['classifier']['w'] + params['gates'][task]


def make_params(seed, num_tasks, outputs):
    rng = np.random.RandomState(seed)
    return {'classifier': {'w': jnp.asarray(rng.randn(D, outputs),
                                            jnp.float32)},
            'gates': jnp.asarray(rng.randn(num_tasks, outputs),
                                 jnp.float32)}


def table(scenario, num_tasks):
    if scenario == 'domain':
        units = [[0, 1]] * num_tasks
    else:
        units = [[2 * t, 2 * t + 1] for t in range(num_tasks)]
    return jnp.asarray(data_lib.active_table(scenario, units))


def batch_for(task_id):
    x = np.random.RandomState(7).rand(B, D).astype(np.float32)
    return Batch(jnp.asarray(x), jnp.zeros(B, jnp.int32),
                 jnp.full(B, task_id, jnp.int32))


def np_logits(params, x, task):
    return x @ np.asarray(params['classifier']['w']) + np.asarray(
        params['gates'])[task]


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


def distill_and_grad(method, params, teacher, ctx, batch):
    def f(p):
        return method.loss(p, teacher, batch, ctx)['distill']
    value, grad = jax.jit(jax.value_and_grad(f))(params)
    return float(value), grad


def ctx_at(task_id, active):
    return TaskCtx(jnp.int32(task_id), jax.random.PRNGKey(0), active)


def test_class_il_teacher_over_old_classes_student_over_classes_so_far():
    student, teacher = make_params(0, 2, 4), make_params(1, 2, 4)
    m = lwf(model, temperature=T)
    batch = batch_for(1)
    got, grad = distill_and_grad(m, student, m.init(teacher, None),
                                 ctx_at(1, table('class', 2)), batch)
    x = np.asarray(batch.x)
    # head 0 only (tasks before t = 1); weight 1 - 1/2
    want = 0.5 * np_kd(np_logits(student, x, 0), np_logits(teacher, x, 0),
                       [0, 1, 2, 3], [0, 1])
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert np.abs(np.asarray(grad['classifier']['w'])).sum() > 1e-3
    # the gradient only flows through head 0's task bias
    np.testing.assert_allclose(grad['gates'][1], 0.0, atol=1e-7)
    assert np.abs(np.asarray(grad['gates'][0])).sum() > 1e-3


def test_task_il_averages_over_previous_heads():
    student, teacher = make_params(2, 3, 6), make_params(3, 3, 6)
    m = lwf(model, temperature=T)
    batch = batch_for(2)
    got, _ = distill_and_grad(m, student, m.init(teacher, None),
                              ctx_at(2, table('task', 3)), batch)
    x = np.asarray(batch.x)
    heads = [np_kd(np_logits(student, x, j), np_logits(teacher, x, j),
                   [2 * j, 2 * j + 1], [2 * j, 2 * j + 1]) for j in (0, 1)]
    np.testing.assert_allclose(got, (1 - 1 / 3) * np.mean(heads), rtol=1e-5)


@pytest.mark.parametrize('scenario', ['task', 'domain'])
def test_zero_gradient_when_student_is_the_teacher(scenario):
    params = make_params(4, 3, 6 if scenario == 'task' else 2)
    m = lwf(model, temperature=T)
    ctx = ctx_at(2, table(scenario, 3))
    got, grad = distill_and_grad(m, params, m.init(params, None), ctx,
                                 batch_for(2))
    assert got > 0  # the cross-entropy form keeps the teacher's entropy
    for g in jax.tree.leaves(grad):
        np.testing.assert_allclose(g, 0.0, atol=1e-6)
    # a different student does get a gradient
    _, grad = distill_and_grad(m, make_params(5, 3, params['gates'].shape[1]),
                               m.init(params, None), ctx, batch_for(2))
    assert sum(float(jnp.abs(g).sum()) for g in jax.tree.leaves(grad)) > 1e-3


def test_domain_il_single_shared_head():
    student, teacher = make_params(6, 2, 2), make_params(7, 2, 2)
    m = lwf(model, temperature=T)
    batch = batch_for(1)
    got, _ = distill_and_grad(m, student, m.init(teacher, None),
                              ctx_at(1, table('domain', 2)), batch)
    x = np.asarray(batch.x)
    want = 0.5 * np_kd(np_logits(student, x, 0), np_logits(teacher, x, 0),
                       [0, 1], [0, 1])
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_weight_is_zero_on_the_first_task():
    student, teacher = make_params(0, 2, 4), make_params(1, 2, 4)
    m = lwf(model, temperature=T)
    got, grad = distill_and_grad(m, student, m.init(teacher, None),
                                 ctx_at(0, table('class', 2)), batch_for(0))
    assert got == 0.0
    for g in jax.tree.leaves(grad):
        np.testing.assert_array_equal(g, 0.0)


def test_consolidate_snapshots_and_select_teacher_shares_the_rest():
    student, old = make_params(0, 2, 4), make_params(1, 2, 4)
    m = lwf(model, select_teacher=lambda p: {'classifier': p['classifier']})
    state = m.consolidate(m.init(student, None), old, None, None)
    assert set(state) == {'classifier'}
    np.testing.assert_array_equal(state['classifier']['w'],
                                  old['classifier']['w'])
    batch = batch_for(1)
    got, _ = distill_and_grad(m, student, state,
                              ctx_at(1, table('class', 2)), batch)
    x = np.asarray(batch.x)
    teacher = {**student, 'classifier': old['classifier']}  # own gates
    want = 0.5 * np_kd(np_logits(student, x, 0), np_logits(teacher, x, 0),
                       [0, 1, 2, 3], [0, 1])
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_temperature_may_be_a_vmapped_tracer():
    student, teacher = make_params(0, 2, 4), make_params(1, 2, 4)
    batch, ctx = batch_for(1), ctx_at(1, table('class', 2))

    def run(temp):
        m = lwf(model, temperature=temp)
        return m.loss(student, m.init(teacher, None), batch, ctx)['distill']

    temps = [1.0, 3.0]
    got = np.asarray(jax.jit(jax.vmap(run))(jnp.array(temps)))
    x = np.asarray(batch.x)
    want = [0.5 * np_kd(np_logits(student, x, 0), np_logits(teacher, x, 0),
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
    got_sum, _ = distill_and_grad(lwf(model, temperature=T), student,
                                  teacher, ctx, batch)
    got_mean, _ = distill_and_grad(
        lwf(model, temperature=T, class_mean=jnp.float32(1.0)), student,
        teacher, ctx, batch)
    x = np.asarray(batch.x)
    heads = []
    for j in (0, 1):
        s_units = np.flatnonzero(np.asarray(active[2, j]))
        t_units = np.flatnonzero(np.asarray(active[1, j]))
        kd = np_kd(np_logits(student, x, j), np_logits(teacher, x, j),
                   s_units, t_units)
        heads.append((kd, len(s_units)))
    np.testing.assert_allclose(
        got_sum, (1 - 1 / 3) * np.mean([k for k, _ in heads]), rtol=1e-5)
    np.testing.assert_allclose(
        got_mean, (1 - 1 / 3) * np.mean([k / n for k, n in heads]),
        rtol=1e-5)
