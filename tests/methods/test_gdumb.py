"""GDumb: the greedy class-balanced sampler against a plain loop of the
paper's Algorithm 1, the schedule against PyTorch's numbers, training
from scratch on the memory, seeds under vmap and jit, the command line
(alone)."""

import json

import jax
import jax.numpy as jnp
import numpy as np
from tiny_runs import (
    C,
    check_seeds_and_jit,
    layout,
    make_learner,
    tiny_model,
    tiny_protocol,
)

import jcl
from jcl import cli
from jcl.core import losses
from jcl.core import taskdata as data_lib
from jcl.core.records import Batch, Snapshot, Step, TaskCtx, TaskEnd
from jcl.methods import buffers
from jcl.methods.greedy_dumb_learner import (
    GDumbState,
    fit_memory,
    gdumb,
    greedy_add,
    sgdr_rate,
)


def test_greedy_sampler_keeps_classes_balanced_like_algorithm_1():
    """Counts per class after each offer equal a plain loop of the
    paper's sampler (which example of the largest class goes is random,
    so the counts are compared, and the stored labels against them)."""
    size, k = 6, 4
    y = np.array([0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 2, 0, 2, 3, 3, 1, 3, 3])
    state = GDumbState(buffers.empty(size, (1,), jnp.uint8),
                       jnp.zeros(k, jnp.int32), jnp.zeros(k, bool), None)
    counts, seen = np.zeros(k, int), set()
    add = jax.jit(greedy_add)
    for i, label in enumerate(y):
        batch = Batch(jnp.full((1, 1), i, jnp.uint8), jnp.asarray([label]),
                      jnp.zeros(1, jnp.int32))
        state = add(state, batch, jax.random.PRNGKey(i))
        seen.add(label)
        if counts.sum() < size:
            counts[label] += 1
        elif counts[label] < size / len(seen):
            counts[np.argmax(counts)] -= 1
            counts[label] += 1
        np.testing.assert_array_equal(state.counts, counts)
        stored = np.asarray(state.memory.y)[np.asarray(state.memory.valid)]
        np.testing.assert_array_equal(np.bincount(stored, minlength=k),
                                      counts)
    assert counts.tolist() == [1, 2, 1, 2]     # by hand: balanced
    # each stored example is the one offered with its label
    mem = state.memory
    np.testing.assert_array_equal(y[np.asarray(mem.x)[:, 0]],
                                  np.asarray(mem.y))


def test_schedule_is_pytorchs_cosine_with_warm_restarts():
    # torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(T_0=1,
    # T_mult=2, eta_min=5e-4) from 0.05, stepped once per epoch from the
    # third, after one epoch at 0.005: by hand,
    # lr = 5e-4 + (0.05 - 5e-4) * (1 + cos(pi * T_cur / T_i)) / 2
    t_cur = [None, 0, 0, 1, 0, 1, 2, 3, 0]
    t_i = [None, 1, 2, 2, 4, 4, 4, 4, 8]
    want = [0.005] + [5e-4 + 0.0495 * (1 + np.cos(np.pi * c / i)) / 2
                      for c, i in zip(t_cur[1:], t_i[1:])]
    got = [float(sgdr_rate(e, maxlr=0.05, minlr=5e-4)) for e in range(9)]
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_fit_memory_trains_a_fresh_network_by_hand():
    """Two epochs of batch 2 on a memory of 3 (one slot empty): SGD with
    momentum, weight decay and clipping written out with numpy."""
    proto = tiny_protocol('class')
    model = tiny_model()
    data = data_lib.to_device(proto.train)
    raw = data_lib.gather(data, data.index[0, :3], data.origin[0, :3])
    mem = buffers.empty(4, (12,), jnp.uint8)._replace(
        x=jnp.concatenate([raw.x, jnp.zeros((1, 12), jnp.uint8)]),
        y=jnp.concatenate([raw.y, jnp.zeros(1, jnp.int32)]),
        task=jnp.zeros(4, jnp.int32), valid=jnp.asarray([1, 1, 1, 0], bool))
    ctx = TaskCtx(jnp.int32(0), jax.random.PRNGKey(0),
                  jnp.asarray(proto.active))
    key = jax.random.PRNGKey(4)
    kw = dict(maxlr=0.5, minlr=0.01, momentum=0.9, weight_decay=0.01,
              clip=0.05)
    got = fit_memory(model, mem, ctx, key, prepare=proto.prepare, epochs=2,
                     batch=2, **kw)
    k_init, k_order = jax.random.split(key)
    params, _ = model.init(k_init)
    trace = jax.tree.map(jnp.zeros_like, params)

    def ce(p, slots):
        out, _ = model.apply(p, {}, proto.prepare(mem.x[slots]),
                             mem.task[slots], train=True)
        return jnp.mean(losses.cross_entropy(
            out['logits'], mem.y[slots], ctx.mask(mem.task[slots])))

    for e in range(2):
        u = jax.random.uniform(jax.random.fold_in(k_order, e), (4,))
        order = np.argsort(np.where(np.asarray(mem.valid), u, 2.0))
        rate = [0.05, 0.5][e]
        for slots in (order[:2], order[2:3]):     # the last batch: 1 example
            g = jax.grad(ce)(params, jnp.asarray(slots))
            norm = np.sqrt(sum(float(jnp.sum(a ** 2))
                               for a in jax.tree.leaves(g)))
            g = jax.tree.map(lambda a: a * min(1.0, 0.05 / norm), g)
            g = jax.tree.map(lambda a, p: a + 0.01 * p, g, params)
            trace = jax.tree.map(lambda t, a: 0.9 * t + a, trace, g)
            params = jax.tree.map(lambda p, t: p - rate * t, params, trace)
    for a, b in zip(jax.tree.leaves(got.params), jax.tree.leaves(params)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_gdumb_predicts_with_the_network_trained_on_its_memory():
    proto = tiny_protocol('class')
    model = tiny_model()
    m = gdumb(model, num_outputs=C, size=8, epochs=30, batch=4,
              **layout(proto))
    params, state = model.init(jax.random.PRNGKey(0))
    ctx = TaskCtx(jnp.int32(0), jax.random.PRNGKey(1),
                  jnp.asarray(proto.active))
    s = m.init(Snapshot(params, state), ctx)
    data = data_lib.to_device(proto.train)
    raw = data_lib.gather(data, data.index[0, :8], data.origin[0, :8])
    s = m.update(s, Step(params, params, None, state, None, raw, {}, {}),
                 ctx)
    assert int(s.memory.valid.sum()) == 8
    s = m.consolidate(s, TaskEnd(params, state, data, proto.prepare), ctx)
    x = proto.prepare(raw.x)
    scores = m.predict(s, Snapshot(params, state), x, raw.task)
    out, _ = model.apply(s.net.params, s.net.model_state, x, raw.task)
    np.testing.assert_array_equal(scores, out['logits'])
    # trained on those 8 examples: it fits them
    assert (np.argmax(np.asarray(scores)[:, :2], 1) ==
            np.asarray(raw.y)).mean() == 1.0


def test_gdumb_seeds_under_vmap_equal_a_loop_and_jit_equals_eager():
    proto = tiny_protocol()
    learner = make_learner(lambda hp, model: jcl.compose(('gdumb', gdumb(
        model, num_outputs=C, size=8, epochs=3, batch=4,
        maxlr=hp['gdumb.maxlr'], **layout(proto))), objective=False))
    R = check_seeds_and_jit(learner, proto, {'lr': 1e-2,
                                             'gdumb.maxlr': 0.05})
    assert R.shape == (3, 2, 2)


def test_gdumb_through_the_command_line_and_alone(tmp_path, capsys):
    out = tmp_path / 'g'
    code = cli.main(['run', '--protocol', 'split-mnist', '--scenario',
                     'class', '--method', 'gdumb', '--iters', '20', '--set',
                     'gdumb.budget=100', '--set', 'gdumb.epochs=4',
                     '--out', str(out)])
    assert code == 0, capsys.readouterr().err
    s = json.loads((out / 'summary.json').read_text())['gdumb']
    assert s['hp']['gdumb.momentum'] == 0.9
    assert s['avg_acc'][0] > 0.3          # fine-tuning: about 0.2
    code = cli.main(['run', '--protocol', 'split-mnist', '--scenario',
                     'class', '--method', 'gdumb+si', '--iters', '3',
                     '--out', str(tmp_path / 'no')])
    assert code == 2
    assert "gdumb composes with no other part" in capsys.readouterr().err
    code = cli.main(['run', '--protocol', 'split-mnist', '--scenario',
                     'class', '--method', 'gdumb', '--iters', '3', '--set',
                     'gdumb.momentum=1', '--out', str(tmp_path / 'no2')])
    assert code == 2 and 'gdumb.momentum' in capsys.readouterr().err
