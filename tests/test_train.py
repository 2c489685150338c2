"""JAX invariants of compiled training: jit == no-jit, vmap == loop, one
trace across tasks, learning, and what the step hands to a method."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jcl.core import taskdata as data_lib
from jcl.core.method import make_method
from jcl.core.model import FROZEN, logits, make_model
from jcl.core.records import Snapshot
from jcl.methods import supervised
from jcl.models import mlp_classifier
from jcl.sweep.rows import compile_programs, compile_run
from jcl.tasks import protocols
from jcl.training import learner as learner_lib
from jcl.training import task as train_lib
from jcl.training.learner import REINIT


def make_learner(proto, steps=30, batch=32, on_trace=None, method=None,
                 model=None):
    def make_model(hp):
        return model or mlp_classifier((32, 32),
                                       num_outputs=proto.num_outputs,
                                       input_dim=proto.input_shape[0])

    def make_method(hp, model):
        if on_trace is not None:
            on_trace()
        return method or supervised()

    return learner_lib.Learner(make_model, make_method, num_steps=steps,
                             batch_size=batch)


def setup(proto, seeds=2, **kw):
    learner = make_learner(proto, **kw)
    hp = {'lr': jnp.full((seeds,), 1e-3)}
    keys = jax.random.split(jax.random.PRNGKey(0), seeds)
    return (learner, hp, keys, data_lib.to_device(proto.train),
            data_lib.to_device(proto.test), jnp.asarray(proto.active))


def test_jit_equals_no_jit(split_protocol):
    learner, hp, keys, tr, te, act = setup(split_protocol, seeds=1)
    hp1 = {k: v[0] for k, v in hp.items()}
    state = learner_lib.init_state(learner, hp1, keys[0])
    f = functools.partial(train_lib.train_task, learner)
    with jax.disable_jit():
        s1, m1, a1 = f(state, hp1, tr, te, act, jnp.int32(1))
    s2, m2, a2 = jax.jit(f)(state, hp1, tr, te, act, jnp.int32(1))
    # well below one Adam step (lr 1e-3): reassociation noise only
    chex.assert_trees_all_close(s1.params, s2.params, atol=2e-4, rtol=1e-3)
    np.testing.assert_allclose(m1['loss'], m2['loss'], rtol=1e-4,
                               atol=1e-6)
    np.testing.assert_allclose(a1, a2, atol=1e-6)
    np.testing.assert_array_equal(s1.key, s2.key)


def test_vmap_over_seeds_equals_loop_over_seeds(split_protocol):
    learner, hp, keys, tr, te, act = setup(split_protocol, seeds=3)
    init, task, _ = compile_run(learner)
    states = init(hp, keys)
    for t in range(2):
        states, m, acc = task(states, hp, tr, te, act, jnp.int32(t))
    f = jax.jit(functools.partial(train_lib.train_task, learner))
    for s in range(3):
        hps = {k: v[s] for k, v in hp.items()}
        st = learner_lib.init_state(learner, hps, keys[s])
        for t in range(2):
            st, ms, accs = f(st, hps, tr, te, act, jnp.int32(t))
        chex.assert_trees_all_close(
            st.params, jax.tree.map(lambda x: x[s], states.params),
            atol=1e-5, rtol=1e-4)
        np.testing.assert_allclose(accs, acc[s], atol=1e-6)


def test_one_trace_for_all_tasks(arrays):
    proto = protocols.class_split('s', arrays, 'class')
    traces = []
    learner, hp, keys, tr, te, act = setup(
        proto, on_trace=lambda: traces.append(1))
    init, task, _ = compile_run(learner)
    states = init(hp, keys)
    n_init = len(traces)
    for t in range(proto.num_tasks):
        states, _, _ = task(states, hp, tr, te, act, jnp.int32(t))
    # traced once (step, consolidation and evaluation build the method
    # once each), reused for all 5 tasks
    assert len(traces) - n_init == 3


def test_training_learns(arrays):
    proto = protocols.class_split('s', arrays, 'task')
    learner, hp, keys, tr, te, act = setup(proto, steps=60)
    init, task, init_acc = compile_run(learner)
    states = init(hp, keys)
    R0 = np.asarray(init_acc(states, hp, te, act))
    assert R0.shape == (2, 5, 5) and R0.max() < 0.9
    states, m, acc = task(states, hp, tr, te, act, jnp.int32(0))
    assert m['loss'].shape == (2, 60)
    assert float(m['loss'][:, -5:].mean()) < 0.5 * float(
        m['loss'][:, :5].mean())
    assert float(acc[:, 0].min()) > 0.95
    assert int(states.step[0]) == 60


def test_hyperparameters_are_a_vmap_axis(arrays):
    proto = protocols.class_split('s', arrays, 'class')
    learner, _, keys, tr, te, act = setup(proto, seeds=2)
    hp = {'lr': jnp.array([0.0, 1e-3])}
    init, task, _ = compile_run(learner)
    states = init(hp, keys)
    before = jax.tree.map(lambda x: x.copy(), states.params)
    states, _, _ = task(states, hp, tr, te, act, jnp.int32(0))
    chex.assert_trees_all_equal(jax.tree.map(lambda x: x[0], before),
                                jax.tree.map(lambda x: x[0],
                                             states.params))
    moved = jax.tree.map(lambda a, b: float(jnp.abs(a[1] - b[1]).max()),
                         before, states.params)
    assert max(jax.tree.leaves(moved)) > 1e-4


def test_a_task_in_chunks_is_the_whole_task_bit_for_bit(arrays):
    """The loop's chunks (the host between them) against the task as one
    program: the same carry, curves and accuracies, to the bit."""
    from jcl.sweep.chunks import train_in_chunks
    proto = protocols.class_split('s', arrays, 'class')
    learner, hp, keys, tr, te, act = setup(proto, seeds=3, steps=30)
    run = compile_programs(learner)
    whole, chunked = run.init(hp, keys), run.init(hp, keys)
    for t in range(2):
        whole, m1, acc1 = run.task(whole, hp, tr, te, act, jnp.int32(t))
        seen = []
        chunked, _, m2 = train_in_chunks(run, chunked, hp, tr, act, t, 30,
                                         lambda done, m: seen.append(done))
        chunked, acc2 = run.finish(chunked, hp, tr, te, act, jnp.int32(t))
        # chunks of 3 steps; the host hears of each
        assert seen == [3, 6, 9, 12, 15, 18, 21, 24, 27, 30]
        chex.assert_trees_all_equal(whole, chunked)
        for k in m1:
            np.testing.assert_array_equal(np.asarray(m1[k]), m2[k])
        np.testing.assert_array_equal(np.asarray(acc1), np.asarray(acc2))


@pytest.mark.parametrize('n,count', [(2000, 200), (5000, 500), (30, 3),
                                     (97, 97), (1, 1)])
def test_chunk_length_divides_the_task(n, count):
    from jcl.sweep.chunks import chunk_steps
    assert chunk_steps(n) == count and n % count == 0


def test_run_seeds_prints_in_task_progress_only_for_slow_tasks(arrays):
    from jcl.sweep.loop import run_seeds
    proto = protocols.class_split('s', arrays, 'class')
    learner = make_learner(proto, steps=20)
    hp = {'lr': jnp.full((2,), 1e-3)}
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    lines = []
    run_seeds(learner, proto, hp, keys, progress=lines.append, label='[x]',
              heartbeat_after=0.0)
    steps = [ln for ln in lines if 'step' in ln]
    assert len(steps) == 5 * 9
    assert steps[0].startswith('[x] task 1/5  step 2/20')
    assert 'left' in steps[1]
    lines.clear()
    run_seeds(learner, proto, hp, keys, progress=lines.append, label='[x]')
    assert len(lines) == 5 and not any('step' in ln for ln in lines)


def half_frozen(proto):
    """The MLP with its first layer frozen and its output layer in an
    optimiser group of its own."""
    base = mlp_classifier((16,), num_outputs=proto.num_outputs,
                          input_dim=proto.input_shape[0])

    def labels(params):
        return {'Dense_0': {'kernel': FROZEN, 'bias': FROZEN},
                'Dense_1': {'kernel': 'head', 'bias': 'head'}}

    return make_model(init=base.init, apply=base.apply, labels=labels)


def test_frozen_leaves_get_no_gradient_and_stay_bit_identical(arrays):
    proto = protocols.class_split('s', arrays, 'class')
    seen = {}

    def record(mstate, step, ctx):
        seen['frozen'] = step.grads['Dense_0']  # holes: known when traced
        return jnp.abs(step.grads['Dense_1']['kernel']).max()

    method = make_method(loss=supervised().loss, update=record,
                         init=lambda snap, ctx: jnp.float32(0))
    learner = make_learner(proto, steps=5, model=half_frozen(proto),
                           method=method)
    hp = {'lr': 1e-2, 'head.lr': 0.0}
    state = learner_lib.init_state(learner, hp, jax.random.PRNGKey(0))
    new, _, _ = train_lib.train_task(
        learner, state, hp, data_lib.to_device(proto.train),
        data_lib.to_device(proto.test), jnp.asarray(proto.active),
        jnp.int32(0))
    # frozen: bit-identical; the 'head' group has its own rate (0 here)
    chex.assert_trees_all_equal(new.params, state.params)
    assert seen['frozen'] == {'kernel': None, 'bias': None}
    assert float(new.mstate) > 0  # the head got gradients
    hp = {'lr': 1e-2}
    new, _, _ = train_lib.train_task(
        learner, state, hp, data_lib.to_device(proto.train),
        data_lib.to_device(proto.test), jnp.asarray(proto.active),
        jnp.int32(0))
    chex.assert_trees_all_equal(new.params['Dense_0'],
                                state.params['Dense_0'])
    assert float(jnp.abs(new.params['Dense_1']['kernel']
                         - state.params['Dense_1']['kernel']).max()) > 1e-3


def test_epochs_draw_each_example_once_per_epoch():
    """Learner(epochs=2): every step real for the task's full batches,
    each example at most once per epoch, a task's steps follow its size."""
    n = 70
    idx = np.arange(2 * n)
    x = np.stack([idx % 256, idx // 256], 1).astype(np.uint8)
    # task 0: 120 examples (7 full batches of 16), task 1: 20 (1 batch)
    y = np.concatenate([np.repeat([0, 1], [70, 50]), np.repeat([2, 3], 10)])
    pool = dict(train_x=x, train_y=y, test_x=x, test_y=y)
    proto = protocols.class_split('idx', pool, 'task')

    def record(counts, step, ctx):
        i = step.raw.x[:, 0].astype(jnp.int32) + 256 * step.raw.x[:, 1]
        return counts + jnp.zeros_like(counts).at[i].add(1)

    method = make_method(loss=supervised().loss, update=record,
                         init=lambda snap, ctx: jnp.zeros(2 * n, jnp.int32))
    model = mlp_classifier((4,), num_outputs=4, input_dim=2)
    learner = learner_lib.Learner(lambda hp: model, lambda hp, m: method,
                                batch_size=16, epochs=2)
    hp = {'lr': 1e-3}
    state = learner_lib.init_state(learner, hp, jax.random.PRNGKey(0))
    task = jax.jit(functools.partial(train_lib.train_task, learner))
    tr, act = data_lib.to_device(proto.train), jnp.asarray(proto.active)
    for t, count in ((0, 120), (1, 20)):
        before = np.asarray(state.mstate)
        state, m, _ = task(state, hp, tr, None, act, jnp.int32(t))
        used = np.asarray(state.mstate) - before
        assert used.sum() == 2 * (count // 16) * 16
        assert used.max() <= 2 and (used > 0).sum() >= count // 16 * 16
        rows = np.flatnonzero(used)  # only this task's examples
        assert set(y[rows] // 2) == {t}
        assert np.count_nonzero(np.asarray(m['loss'])) == 2 * (count // 16)
    assert int(state.step) == 2 * (120 // 16) + 2 * (20 // 16)


def test_reinit_draws_fresh_trainable_leaves_after_the_first_task(arrays):
    proto = protocols.class_split('s', arrays, 'class')
    learner = make_learner(proto, steps=30, model=half_frozen(proto))
    learner = learner._replace(reinit=True)
    hp = {'lr': 1e-2}
    state = learner_lib.init_state(learner, hp, jax.random.PRNGKey(0))
    state = state._replace(params=jax.tree.map(lambda a: a + 1.0,
                                               state.params))
    # task 0: nothing changes
    same = learner_lib.begin_task(learner, state, hp, jnp.int32(0))
    chex.assert_trees_all_equal(same.params, state.params)
    # later tasks: trainable leaves = the model's init at the reinit key,
    # frozen leaves kept, the optimiser state fresh
    new = learner_lib.begin_task(learner, state, hp, jnp.int32(3))
    fresh, _ = learner.make_model(hp).init(
        jax.random.fold_in(state.key, REINIT))
    chex.assert_trees_all_equal(new.params['Dense_1'], fresh['Dense_1'])
    chex.assert_trees_all_equal(new.params['Dense_0'],
                                state.params['Dense_0'])
    assert not np.allclose(new.params['Dense_1']['kernel'],
                           state.params['Dense_1']['kernel'])
    # the same inside the compiled task: fine-tuning from a fresh network
    # forgets task 1 entirely in Class-IL, and trains task 2
    state = learner_lib.init_state(learner, hp, jax.random.PRNGKey(0))
    args = (data_lib.to_device(proto.train), data_lib.to_device(proto.test),
            jnp.asarray(proto.active))
    state, _, acc0 = train_lib.train_task(learner, state, hp, *args,
                                          jnp.int32(0))
    state, _, acc1 = train_lib.train_task(learner, state, hp, *args,
                                          jnp.int32(1))
    assert float(acc0[0]) > 0.5 and float(acc1[1]) > 0.5
    assert float(acc1[0]) < 0.2


def test_task_progress_prints_a_tick_once_when_several_devices_report_it():
    from jcl.training.progress import TaskProgress
    lines = []
    hook = TaskProgress(lines.append, '[t]', 100, t0=0.0, after=0.0)
    for done in (10, 10, 10, 10, 20, 20):   # 4 devices, then 2
        hook(done)
    assert [line.split()[2] for line in lines] == ['10/100', '20/100']


def test_class_il_runs_are_also_scored_with_each_tasks_own_units(arrays):
    """R_task of a Class-IL run is the same network's accuracy with each
    example's arg-max over its own task's units, computed here by hand
    from the final carry; R itself is the Class-IL score."""
    from jcl.sweep.loop import run_seeds
    proto = protocols.class_split('s', arrays, 'class')
    learner = make_learner(proto, steps=20)
    hp = {'lr': jnp.full((2,), 1e-3)}
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    out = run_seeds(learner, proto, hp, keys, progress=None)
    assert out.R_task.shape == out.R.shape == (2, 5, 5)
    model = learner.make_model(None)
    test = proto.test
    for s in range(2):
        snap = Snapshot(jax.tree.map(lambda a: a[s], out.state.params),
                        jax.tree.map(lambda a: a[s], out.state.model_state))
        x = proto.prepare(jnp.asarray(test.images))
        z = np.asarray(logits(model, snap, x, None))
        for t in range(5):
            idx = test.index[t, :test.count[t]]
            y = test.labels[idx]
            own = np.where(proto.own[t], z[idx], -np.inf).argmax(-1)
            every = z[idx].argmax(-1)      # Class-IL: all 10 units seen
            np.testing.assert_allclose(out.R_task[s, -1, t],
                                       np.mean(own == y), atol=1e-6)
            np.testing.assert_allclose(out.R[s, -1, t],
                                       np.mean(every == y), atol=1e-6)
    # task-masked scoring is never worse than Class-IL's on the same net
    assert np.all(out.R_task >= out.R - 1e-6)
    # Task-IL and Domain-IL runs have no second score
    task = protocols.class_split('s', arrays, 'task')
    assert run_seeds(learner, task, hp, keys, progress=None).R_task is None


@pytest.mark.parametrize('method,scenario', [('bir', 'class'),
                                             ('xdg', 'task'),
                                             ('icarl', 'class')])
def test_init_at_the_lower_optimisation_level_is_the_same(arrays, method,
                                                          scenario):
    """The initialisation program is compiled at LLVM level 1 (half the
    compile time): the same bits as the default level."""
    from jcl.methods import catalog as method_catalog
    from jcl.methods.assemble import build_learner
    from jcl.sweep.rows import INIT_OPTIONS
    from jcl.tasks import catalog
    proto = protocols.class_split('s', arrays, scenario)
    parts = method_catalog.parse(method)
    hp = method_catalog.default_hparams(parts, lr=1e-3, batch=16)
    learner = build_learner(proto, catalog.protocol_spec('split-mnist'),
                            parts, hidden=(32, 16), iters=4, batch=16,
                            static_max=hp)
    hpa = {k: jnp.full((2,), v, jnp.float32) for k, v in hp.items()}
    keys = jax.random.split(jax.random.PRNGKey(3), 2)
    f = jax.vmap(functools.partial(learner_lib.init_state, learner))
    a = jax.jit(f)(hpa, keys)
    b = jax.jit(f, compiler_options=INIT_OPTIONS)(hpa, keys)
    chex.assert_trees_all_equal(a, b)
