"""The streamed path: the same step as the fused path, fed from the host
(epochs without replacement, a learning-rate schedule, evaluation in
chunks)."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jcl.analysis.evaluate import task_accuracies
from jcl.core import taskdata as data_lib
from jcl.core.errors import ConfigError
from jcl.core.method import make_method
from jcl.core.records import Batch
from jcl.methods import si, supervised
from jcl.models import conv_classifier, mlp_classifier
from jcl.sweep import streamed as stream
from jcl.tasks import protocols
from jcl.training import learner as learner_lib
from jcl.training import task as train_lib


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

    return learner_lib.Learner(make_model, make_method,
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
    state = learner_lib.init_state(learner, hp, jax.random.PRNGKey(0))
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
    state = learner_lib.init_state(learner, hp, jax.random.PRNGKey(1))
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


# --- sources, the best epoch, early stopping, max_steps, resume ---------

BATCH = 16


def first_tasks(proto, k):
    """The protocol's first ``k`` tasks."""
    def cut(d):
        return d._replace(index=d.index[:k], count=d.count[:k],
                          origin=d.origin[:k], offset=d.offset[:k],
                          perm=None if d.perm is None else d.perm[:k])
    return proto._replace(train=cut(proto.train), test=cut(proto.test),
                          active=np.asarray(proto.active)[:k, :k])


class Wrapped:
    """A source that is not a TaskData (what an image folder gives)."""

    def __init__(self, data):
        self.data, self.count = data, np.asarray(data.count)

    def gather(self, task, entries):
        return stream.gather_host(self.data, task, np.asarray(entries))


class Scripted:
    """Validation data for :func:`scripted_learner`: ``counts[c]`` examples
    of label ``c``, so that a row with ``shift`` s scores
    ``counts[(e + s) % 10] / sum(counts)`` after epoch ``e``."""

    def __init__(self, counts, tasks):
        self.labels = np.repeat(np.arange(len(counts)), counts)
        self.count = np.full(tasks, len(self.labels))

    def gather(self, task, entries):
        entries = np.asarray(entries)
        return Batch(np.zeros(entries.shape + (784,), np.uint8),
                     self.labels[entries].astype(np.int32),
                     np.full(entries.shape, task, np.int32))


def scripted_learner(proto, per_epoch):
    """A real MLP trained with cross-entropy whose predictions are
    scripted: after epoch ``e`` of a task it predicts class ``(e +
    hp['shift']) % 10`` for every input (a step counter in the method's
    state, reset at each task's end; ``per_epoch[t]`` steps per epoch)."""
    def make_model(hp):
        return mlp_classifier((8,), num_outputs=proto.num_outputs,
                              input_dim=784)

    def make(hp, model):
        def predict(steps, snap, x, task):
            e = steps // jnp.asarray(per_epoch)[task] - 1
            return jax.nn.one_hot((e + hp['shift'].astype(jnp.int32)) % 10,
                                  10)

        return make_method(
            loss=supervised().loss, predict=predict,
            init=lambda snap, ctx: jnp.zeros((), jnp.int32),
            update=lambda steps, step, ctx: steps + 1,
            consolidate=lambda steps, end, ctx: jnp.zeros_like(steps))

    return learner_lib.Learner(make_model, make, prepare=proto.prepare,
                             batch_size=BATCH)


@pytest.fixture(scope='module')
def scripted(arrays):
    """A 2-task class protocol, every output active, its learner, and
    the steps of an epoch of each task."""
    proto = first_tasks(protocols.class_split('flat', arrays, 'class'), 2)
    proto = proto._replace(active=np.ones_like(proto.active))
    per_epoch = np.asarray(proto.train.count) // BATCH
    return proto, scripted_learner(proto, per_epoch), per_epoch


# Accuracies k / 22 per epoch. Patience 2. Shift 0: 1 2 3 4 4 2 1 -> best
# epoch 3 (the tie at 4 keeps 3), stops after epoch 6 (6 - 3 > 2). Shift 5:
# 2 1 1 1 -> best 0, stops after epoch 3; had it run on, epoch 4 (3/22)
# would have been its best.
CURVE = [1, 2, 3, 4, 4, 2, 1, 1, 1, 3]


def run(learner, proto, shifts=(0.0,), seeds=(0,), **kw):
    """``run_streamed`` for rows of these shifts and seeds."""
    keys = jnp.stack([jax.random.PRNGKey(s) for s in seeds])
    hp = {'lr': np.full(len(seeds), 3e-3), 'shift': np.asarray(shifts)}
    schedule = stream.Schedule(**{'epochs': 8, 'batch_size': BATCH,
                                  **kw.pop('schedule', {})})
    kw = {'progress': None, 'epoch_lines_after': 1e9, **kw}
    return stream.run_streamed(learner, proto, hp, keys, schedule,
                               steps_per_call=5, **kw)


def assert_same(a, b):
    """Two results equal bit for bit (the carry, R, losses, extras)."""
    for x, y in zip(jax.tree.leaves((a.state, a.R, a.metrics, a.extras)),
                    jax.tree.leaves((b.state, b.R, b.metrics, b.extras))):
        np.testing.assert_array_equal(x, y)


def test_best_epoch_ties_and_patience_on_a_scripted_curve(scripted):
    """Best epoch 3 (not the tie at 4), stop after epoch 6, 7 epochs run
    (see CURVE); the state kept is epoch 3's, that of a 4-epoch run."""
    proto, learner, per_epoch = scripted
    proto = first_tasks(proto, 1)
    p = int(per_epoch[0])
    lines = []
    best = run(learner, proto, valid=Scripted(CURVE, 1),
               schedule=dict(select_best=True, patience=2),
               progress=lines.append, epoch_lines_after=0)
    assert len(lines) == 8 and 'epoch 3/8  valid acc 13.6%  best epoch 3 ' \
        in lines[2], lines
    assert 'epochs 7  best epoch 4  stopped 1/1' in lines[-1], lines
    assert best.extras['best_epoch'].tolist() == [[3]]
    assert best.extras['epochs'].tolist() == [[7]]
    assert best.extras['steps'].tolist() == [[7 * p]]
    np.testing.assert_array_equal(best.extras['valid_acc'][0, 0],
                                  np.asarray(CURVE[:7] + [np.nan]) / 22)
    assert int(best.state.step[0]) == 4 * p
    loss = best.metrics['loss'][0, 0]
    assert loss.shape == (8 * p,) and (loss[:7 * p] > 0).all()
    assert (loss[7 * p:] == 0).all()
    four_epochs = run(learner, proto, schedule=dict(max_steps=4 * p))
    chex.assert_trees_all_equal(best.state.params, four_epochs.state.params)
    np.testing.assert_array_equal(best.R, four_epochs.R)
    # without select_best a stopped row keeps its state at its stop
    stop = run(learner, proto, valid=Scripted(CURVE, 1),
               schedule=dict(patience=2))
    assert int(stop.state.step[0]) == 7 * p
    seven = run(learner, proto, schedule=dict(max_steps=7 * p))
    chex.assert_trees_all_equal(stop.state.params, seven.state.params)
    # patience 0 stops at the first epoch without improvement
    zero = run(learner, proto, valid=Scripted(CURVE, 1),
               schedule=dict(select_best=True, patience=0))
    assert zero.extras['epochs'].tolist() == [[5]]
    with pytest.raises(ConfigError, match='validation split'):
        run(learner, proto, schedule=dict(select_best=True))


def test_vmapped_rows_equal_each_row_alone(scripted):
    """Rows of different seeds and curves stop at different epochs (row 1
    after epoch 3, row 0 after 6, see CURVE); in one vmapped run each row
    ends bit for bit as it does alone, over two tasks."""
    proto, learner, per_epoch = scripted
    valid = Scripted(CURVE, 2)
    kw = dict(valid=valid, schedule=dict(select_best=True, patience=2))
    both = run(learner, proto, shifts=(0.0, 5.0), seeds=(0, 1), **kw)
    assert both.extras['best_epoch'].tolist() == [[3, 3], [0, 0]]
    assert both.extras['epochs'].tolist() == [[7, 7], [4, 4]]
    for row, (shift, seed) in enumerate([(0.0, 0), (5.0, 1)]):
        alone = run(learner, proto, shifts=(shift,), seeds=(seed,), **kw)
        assert_same(jax.tree.map(lambda a: a[row:row + 1], both), alone)


def test_a_source_that_is_not_task_data_gives_the_same_result(arrays):
    proto = first_tasks(protocols.class_split('flat', arrays, 'task'), 2)
    train, valid = data_lib.holdout(proto.train, 0.2)
    proto = proto._replace(train=train)
    learner = flat_learner(proto)
    kw = dict(schedule=dict(epochs=3, select_best=True, patience=1))
    arrays_run = run(learner, proto, valid=valid, **kw)
    wrapped = proto._replace(train=Wrapped(proto.train),
                             test=Wrapped(proto.test))
    source_run = run(learner, wrapped, valid=Wrapped(valid), **kw)
    assert_same(arrays_run, source_run)
    np.testing.assert_array_equal(arrays_run.R_init, source_run.R_init)
    assert arrays_run.R[0, -1].min() > 0.8


def flat_learner(proto, method='none'):
    def make_model(hp):
        return mlp_classifier((16,), num_outputs=proto.num_outputs,
                              input_dim=784)

    def make(hp, model):
        return si(model, c=1.0) if method == 'si' else supervised()

    return learner_lib.Learner(make_model, make, prepare=proto.prepare,
                             batch_size=BATCH)


def test_max_steps_caps_a_task(scripted):
    proto, learner, per_epoch = scripted
    proto = first_tasks(proto, 1)
    p = int(per_epoch[0])
    lines = []
    capped = run(learner, proto, schedule=dict(max_steps=p + 3),
                 progress=lines.append)
    assert f'{p + 3} steps' in lines[0]
    assert int(capped.state.step[0]) == p + 3
    assert capped.metrics['loss'].shape == (1, 1, p + 3)
    # a cut second epoch is not validated (it would score 2/22 > 1/22)
    best = run(learner, proto, valid=Scripted(CURVE, 1),
               schedule=dict(max_steps=p + 3, select_best=True))
    assert best.extras['epochs'].tolist() == [[1]]
    assert best.extras['steps'].tolist() == [[p + 3]]
    assert int(best.state.step[0]) == p
    # a cut first epoch is, as if complete
    short = run(learner, proto, valid=Scripted(CURVE, 1),
                schedule=dict(max_steps=3, select_best=True))
    assert short.extras['best_epoch'].tolist() == [[0]]
    assert int(short.state.step[0]) == 3
    plain = run(learner, proto, schedule=dict(max_steps=3))
    assert_same(short._replace(extras=None), plain._replace(extras=None))


def test_step_decay_counts_epochs_like_torch_step_lr(scripted):
    """The scale of epoch e is PyTorch's StepLR stepped once per epoch,
    and reaches the run per epoch: with decay 0 after 2 epochs, training
    3 epochs ends where training 2 does."""
    plan = stream.epoch_plan(40, stream.Schedule(
        epochs=60, batch_size=8, decay_every=20, decay=0.1),
        np.random.RandomState(0))
    lr, expected = 1.0, []
    for epoch in range(60):      # torch.optim.lr_scheduler.StepLR
        expected.append(lr)
        if (epoch + 1) % 20 == 0:   # scheduler.step() ends each epoch
            lr *= 0.1
    np.testing.assert_allclose(plan.lr_scale, np.repeat(expected, 5),
                               rtol=1e-6)
    assert plan.lr_scale[19 * 5] == 1 and plan.lr_scale[20 * 5] == 0.1
    proto, learner, per_epoch = scripted
    proto = first_tasks(proto, 1)
    frozen = run(learner, proto, schedule=dict(epochs=3, decay_every=2,
                                               decay=0.0))
    two = run(learner, proto, schedule=dict(max_steps=2 * int(per_epoch[0])))
    chex.assert_trees_all_equal(frozen.state.params, two.state.params)


class Interrupted(Exception):
    pass


def test_killed_run_resumes_after_its_last_task(arrays, tmp_path):
    proto = first_tasks(protocols.class_split('flat', arrays, 'task'), 3)
    train, valid = data_lib.holdout(proto.train, 0.2)
    proto = proto._replace(train=train)
    learner = flat_learner(proto, method='si')
    kw = dict(valid=valid, shifts=(0.0, 0.0), seeds=(0, 1),
              schedule=dict(epochs=3, select_best=True, patience=1))
    whole = run(learner, proto, **kw)
    path = str(tmp_path / 'run.npz')

    def kill(line):
        if 'task 2/3 ' in line and 'avg acc' in line:
            raise Interrupted(line)

    with pytest.raises(Interrupted):
        run(learner, proto, ckpt_path=path, progress=kill, **kw)
    lines = []
    resumed = run(learner, proto, ckpt_path=path, progress=lines.append,
                  **kw)
    assert lines[0].startswith(' resuming after task 2/3'), lines
    assert len(lines) == 2 and len(resumed.seconds) == 3
    assert_same(whole, resumed)
    np.testing.assert_array_equal(whole.R_init, resumed.R_init)


def test_a_run_stopped_inside_a_task_resumes_to_the_same_numbers(
        arrays, tmp_path, monkeypatch):
    """Checkpoints every 3 steps (between device calls of 5 steps and
    after validated epochs): stopped after each of them in turn (inside
    an epoch, after one, before and after the first validation, with rows
    kept at their best epoch and rows stopped early), the run resumes
    from it to the uninterrupted numbers."""
    proto = first_tasks(protocols.class_split('flat', arrays, 'task'), 2)
    train, valid = data_lib.holdout(proto.train, 0.2)
    proto = proto._replace(train=train)
    learner = flat_learner(proto, method='si')
    kw = dict(valid=valid, shifts=(0.0, 0.0), seeds=(0, 1), ckpt_every=3,
              schedule=dict(epochs=4, select_best=True, patience=1))
    real, saves = stream._save_inside, []

    def save_then_stop(*args):
        real(*args)
        saves.append((args[1], args[3]))   # (task, steps done)
        if len(saves) == stop:
            raise Interrupted(stop)

    monkeypatch.setattr(stream, '_save_inside', save_then_stop)
    stop = 0
    whole = run(learner, proto, ckpt_path=str(tmp_path / 'w.npz'), **kw)
    positions = list(saves)
    assert len(positions) >= 5 and {t for t, _ in positions} == {0, 1}
    for stop in range(1, len(positions) + 1):
        path, saves[:] = str(tmp_path / f'{stop}.npz'), []
        with pytest.raises(Interrupted):
            run(learner, proto, ckpt_path=path, **kw)
        lines = []
        resumed = run(learner, proto, ckpt_path=path,
                      progress=lines.append, **kw)
        t, done = positions[stop - 1]
        assert lines[0].startswith(f' resuming after step {done} of task '
                                   f'{t + 1}'), lines[0]
        assert_same(whole, resumed)
