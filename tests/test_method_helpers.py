"""The public helpers of a method author: the finished task's data in
chunks (jcl.over_task), per-example gradients and their weighted powers
(jcl.weighted_powers, jcl.per_example_grads), records through jit."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jcl
from jcl.core import losses
from jcl.core.taskdata import to_device
from jcl.models import mlp_classifier
from jcl.tasks import protocols


@pytest.fixture(scope='module')
def task_end(arrays):
    proto = protocols.class_split('s', arrays, 'class')
    clf = mlp_classifier((7, 5), num_outputs=10, input_dim=784)
    params, state = clf.init(jax.random.PRNGKey(0))
    return clf, proto, jcl.TaskEnd(params, state, to_device(proto.train),
                                   proto.prepare)


def test_over_task_sums_each_example_once(task_end):
    _, proto, end = task_end
    for t in (0, 3):
        ctx = jcl.TaskCtx(jnp.int32(t), jax.random.PRNGKey(2), None)
        count = int(proto.train.count[t])
        entries = np.asarray(proto.train.index[t, :count])
        want = np.asarray(proto.train.images, np.float64)[entries].reshape(
            count, -1).sum(0) / 255
        for chunk in (7, 64, 1000):
            total, n = jax.jit(lambda e, c: jcl.over_task(
                e, c, lambda acc, b, w: acc + w @ b.x,
                jnp.zeros(784), chunk=chunk))(end, ctx)
            assert float(n) == count
            np.testing.assert_allclose(total, want, rtol=1e-5)
        seen, n = jcl.over_task(end, ctx, lambda acc, b, w: acc + jnp.zeros(
            10).at[b.y].add(w), jnp.zeros(10), chunk=8, samples=20)
        assert float(n) == 20 and float(seen.sum()) == 20
        assert set(np.nonzero(np.asarray(seen))[0]) <= set(
            np.asarray(proto.task_classes[t]) if proto.task_classes
            else range(10))


def loop_powers(model, snap, x, task, mask, w, power):
    """The definition, example by example and output by output."""
    total = None
    for i in range(x.shape[0]):
        for k in range(int(mask[i].sum())):
            def out(p, i=i, k=k):
                z = model.apply(p, snap.model_state, x[i:i + 1],
                                task[i:i + 1])[0]['logits']
                logp = jax.nn.log_softmax(losses.mask_logits(z, mask[i]))
                return logp[0, jnp.nonzero(mask[i], size=10)[0][k]]
            g = jax.grad(out)(snap.params)
            p = jnp.exp(out(snap.params))
            term = jax.tree.map(lambda a: w[i] * p * jnp.abs(a) ** power, g)
            total = term if total is None else jax.tree.map(jnp.add, total,
                                                            term)
    return total


@pytest.mark.parametrize('power', [1, 2])
def test_weighted_powers_dense_generic_and_by_hand_agree(task_end, power):
    clf, proto, end = task_end
    snap = jcl.Snapshot(end.params, end.model_state)
    x = proto.prepare(jnp.asarray(proto.train.images[:5]))
    task = jnp.array([0, 0, 1, 2, 2])
    mask = jnp.asarray(proto.active)[2, task]
    w = jnp.array([1.0, 0.0, 1.0, 0.5, 1.0])

    def fn(dense):
        return jcl.weighted_powers(
            clf, snap, x, task,
            lambda z, m: jax.nn.log_softmax(losses.mask_logits(z, m)), mask,
            example_weight=w, output_weight=jnp.exp, power=power,
            dense=dense)

    fast, slow = fn(True), fn(False)
    want = loop_powers(clf, snap, x, task, mask, w, power)
    for got in (fast, slow):
        jax.tree.map(lambda a, b: np.testing.assert_allclose(
            a, b, rtol=2e-4, atol=1e-9), got, want)


def test_per_example_grads_are_the_gradients_of_each_example():
    def loss(p, x):
        return jnp.sum((p['w'] * x) ** 2)
    p = {'w': jnp.array([1.0, 2.0])}
    xs = jnp.array([[1.0, 0.0], [0.0, 3.0]])
    g = jcl.per_example_grads(loss, p, xs)
    np.testing.assert_allclose(g['w'], [[2.0, 0.0], [0.0, 36.0]])


def test_a_task_end_passes_through_jit_and_keeps_prepare(task_end):
    _, _, end = task_end
    f = jax.jit(lambda e: (e.prepare(e.data.images[:2]).sum(),
                           e.replace(params={}).params))
    total, params = f(end)
    assert params == {} and float(total) > 0
