"""Oracles of the replay buffers: reservoir probabilities, class-balanced
selection, draws."""

import jax
import jax.numpy as jnp
import numpy as np

from jcl.core.records import Batch
from jcl.methods import buffers
from jcl.tasks import protocols


def stream_of(n, start=0):
    x = (start + np.arange(n)).astype(np.int32)
    return Batch(jnp.asarray(x)[:, None], jnp.asarray(x),
                 jnp.zeros(n, jnp.int32))


def test_reservoir_keeps_each_item_with_probability_size_over_n():
    """Offer 60 items in batches of 6 to a buffer of 10, 2000 times with
    different keys: every item is kept with probability 10/60. The bound
    (5 binomial SDs, per item and overall) fails for a biased sampler,
    e.g. one that keeps the latest items."""
    size, n, reps = 10, 60, 2000

    @jax.jit
    def run(key):
        buf = buffers.empty(size, (1,), jnp.int32)
        for b in range(n // 6):
            buf = buffers.reservoir_add(buf, stream_of(6, 6 * b), None,
                                        jax.random.fold_in(key, b))
        return buf.y, buf.valid, buf.seen

    ys, valid, seen = jax.vmap(run)(jax.random.split(jax.random.PRNGKey(0),
                                                     reps))
    assert np.all(np.asarray(seen) == n) and np.asarray(valid).all()
    ys = np.asarray(ys)
    for row in ys:  # each run keeps 10 distinct items
        assert len(set(row.tolist())) == size
    counts = np.bincount(ys.ravel(), minlength=n)
    p = size / n
    sd = np.sqrt(reps * p * (1 - p))
    assert np.abs(counts - reps * p).max() < 5 * sd, counts
    # the first and the last six items: the same rate within the bound
    assert abs(counts[:6].mean() - counts[-6:].mean()) < 5 * sd / np.sqrt(6)


def test_reservoir_fills_in_order_and_stores_logits():
    buf = buffers.empty(5, (1,), jnp.int32, logits=2)
    logits = jnp.arange(8.0).reshape(4, 2)
    buf = buffers.reservoir_add(buf, stream_of(4), logits,
                                jax.random.PRNGKey(1))
    np.testing.assert_array_equal(buf.y, [0, 1, 2, 3, 0])
    np.testing.assert_array_equal(buf.valid, [1, 1, 1, 1, 0])
    np.testing.assert_array_equal(buf.logits[:4], logits)


def test_class_balanced_selection_counts(arrays, scenario):
    proto = protocols.class_split('s', arrays, scenario)
    data = jax.tree.map(jnp.asarray, proto.train)
    k, per = proto.classes_per_task, 7
    assert k == 2
    buf = buffers.empty(proto.num_tasks * k * per, (784,))
    for t in (0, 3):
        buf = buffers.store_task(buf, data, t, jax.random.PRNGKey(t),
                                 classes_per_task=k, per_class=per)
    valid, task, y = (np.asarray(buf.valid), np.asarray(buf.task),
                      np.asarray(buf.y))
    assert valid.sum() == 2 * k * per
    for t in (0, 3):
        for r in range(k):
            block = slice((t * k + r) * per, (t * k + r + 1) * per)
            assert valid[block].all() and (task[block] == t).all()
            assert (y[block] % k == r).all()
            # distinct real examples of that class
            rows = [np.flatnonzero((arrays['train_x'].reshape(-1, 784)
                                    == x).all(1))
                    for x in np.asarray(buf.x[block])]
            assert all(len(r_) >= 1 for r_ in rows)
            assert {arrays['train_y'][r_[0]] for r_ in rows} == {2 * t + r}
            assert len({r_[0] for r_ in rows}) == per
    assert not valid[k * per:3 * k * per].any()  # tasks 1, 2 not stored


def test_draws_are_distinct_and_stay_in_eligible_slots():
    buf = buffers.empty(6, (1,), jnp.int32)
    buf = buffers.reservoir_add(buf, stream_of(4), None,
                                jax.random.PRNGKey(0))
    slots, w = buffers.draw(buf, jax.random.PRNGKey(1), 3)
    assert len(set(np.asarray(slots).tolist())) == 3
    assert np.asarray(buf.valid)[np.asarray(slots)].all() and w.sum() == 3
    slots, w = buffers.draw(buf, jax.random.PRNGKey(1), 6)  # only 4 filled
    np.testing.assert_array_equal(np.sort(np.asarray(w)), [0, 0, 1, 1, 1, 1])
    assert set(np.asarray(slots)[np.asarray(w) > 0].tolist()) == {0, 1, 2, 3}


def test_draw_by_task_splits_evenly_and_weighs_tasks_equally():
    buf = buffers.empty(9, (1,), jnp.int32)
    buf = buf._replace(task=jnp.array([0, 0, 0, 1, 1, 2, 2, 2, 2]),
                       valid=jnp.ones(9, bool).at[8].set(False))
    slots, w = buffers.draw_by_task(buf, jax.random.PRNGKey(0), 8, 2)
    task = np.asarray(buf.task)[np.asarray(slots)]
    np.testing.assert_array_equal(task, [0, 1, 0, 1, 0, 1, 0, 1])
    np.testing.assert_allclose(np.asarray(w), 1 / 8)
    slots, w = buffers.draw_by_task(buf, jax.random.PRNGKey(0), 7, 3)
    w, task = np.asarray(w), np.asarray(buf.task)[np.asarray(slots)]
    for j in range(3):  # each task's weights sum to 1/3
        np.testing.assert_allclose(w[task == j].sum(), 1 / 3, rtol=1e-6)
    assert np.asarray(buf.valid)[np.asarray(slots)].all()


def test_draw_by_task_is_uniform_over_a_tasks_filled_slots():
    # task 0 holds slots 1, 4, 6 (5 is task 0 but empty); task 1 slot 2
    buf = buffers.empty(8, (1,), jnp.int32)
    buf = buf._replace(task=jnp.array([1, 0, 1, 2, 0, 0, 0, 2]),
                       valid=jnp.array([False, True, True, False, True,
                                        False, True, False]))
    draws = jax.vmap(lambda k: buffers.draw_by_task(buf, k, 2, 2)[0])(
        jax.random.split(jax.random.PRNGKey(3), 6000))
    first, second = np.asarray(draws[:, 0]), np.asarray(draws[:, 1])
    assert set(second.tolist()) == {2}
    freq = np.bincount(first, minlength=8) / len(first)
    np.testing.assert_allclose(freq[[1, 4, 6]], 1 / 3, atol=0.025)
    assert freq[[0, 2, 3, 5, 7]].sum() == 0
    # a task with nothing stored gets weight 0 (and any slot)
    _, w = buffers.draw_by_task(buf._replace(valid=buf.valid & (buf.task
                                                                != 1)),
                                jax.random.PRNGKey(0), 2, 2)
    np.testing.assert_allclose(np.asarray(w), [0.5, 0.0])
