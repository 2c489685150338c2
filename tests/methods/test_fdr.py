"""FDR: the function distance by hand, the end-of-task store (equal
shares, the earlier tasks shrunk, logits of the network then), seeds
under vmap and jit, the command line."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tiny_runs import (
    C,
    check_seeds_and_jit,
    layout,
    linear_model,
    make_learner,
    tiny_model,
    tiny_protocol,
)

import jcl
from jcl import cli
from jcl.core import taskdata as data_lib
from jcl.core.errors import ConfigError
from jcl.core.records import Forward, Snapshot, Step, TaskCtx, TaskEnd
from jcl.methods import buffers, catalog
from jcl.methods.function_distance import fdr
from jcl.tasks import protocols
from jcl.training.optim import sgd


def np_softmax(z, mask):
    z = np.where(mask, z, -np.inf)
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


@pytest.mark.parametrize('outputs', ['seen', 'all'])
def test_fdr_loss_by_hand(outputs):
    rng = np.random.RandomState(0)
    params = {'w': jnp.asarray(rng.randn(3, C), jnp.float32),
              'b': jnp.asarray(rng.randn(C), jnp.float32)}
    buf = buffers.empty(5, (3,), jnp.uint8, C)._replace(
        x=jnp.asarray(rng.randint(0, 10, (5, 3)), jnp.uint8),
        y=jnp.asarray([0, 1, 2, 3, 0]), task=jnp.asarray([0, 0, 1, 1, 0]),
        logits=jnp.asarray(rng.randn(5, C), jnp.float32),
        valid=jnp.asarray([True, True, True, False, True]))
    active = protocols.active_table('class', [[0, 1], [2, 3]],
                                    class_outputs=outputs)
    ctx = TaskCtx(jnp.int32(1), jax.random.PRNGKey(3), jnp.asarray(active))
    m = fdr(linear_model(), prepare=lambda x: x.astype(jnp.float32) / 10,
            input_shape=(3,), num_outputs=C, num_tasks=2, size=5,
            minibatch=8, alpha=0.7)
    got = float(m.loss(buf, Forward(params, {}, None, {}, {}), ctx)[0]
                ['function'])
    ids = [0, 1, 2, 4]          # every filled slot once
    z = np.asarray(buf.x, np.float32)[ids] / 10 @ np.asarray(params['w']) \
        + np.asarray(params['b'])
    # each example over the units active when it was stored: 'seen'
    # gives task 1's examples units 0-1 and task 2's units 0-3
    mask = active[np.asarray(buf.task)[ids], np.asarray(buf.task)[ids]]
    d = np.sqrt(np.sum((np_softmax(z, mask) - np_softmax(
        np.asarray(buf.logits)[ids], mask)) ** 2, axis=1) + 1e-8)
    np.testing.assert_allclose(got, 0.7 * d.mean(), rtol=1e-5)


def test_fdr_stores_equal_shares_with_the_logits_then():
    proto = tiny_protocol('class')
    model = tiny_model()
    params, state = model.init(jax.random.PRNGKey(0))
    m = fdr(model, num_outputs=C, num_tasks=2, size=10, **layout(proto))
    data = data_lib.to_device(proto.train)
    active = jnp.asarray(proto.active)
    buf = m.init(None, None)
    end = TaskEnd(params, state, data, proto.prepare)
    buf = m.consolidate(buf, end, TaskCtx(jnp.int32(0),
                                          jax.random.PRNGKey(1), active))
    assert np.asarray(buf.valid).all() and (np.asarray(buf.task) == 0).all()
    assert set(np.asarray(buf.y).tolist()) <= {0, 1}
    assert len({bytes(r) for r in np.asarray(buf.x)}) == 10   # distinct
    out, _ = model.apply(params, state, proto.prepare(buf.x), buf.task)
    np.testing.assert_allclose(buf.logits, out['logits'], rtol=1e-5)
    first = np.asarray(buf.x)[:5].copy()
    # task 2 with other parameters: task 1 keeps its first five, task 2
    # fills the other five with the logits of the new parameters
    params2, _ = model.init(jax.random.PRNGKey(9))
    buf = m.consolidate(buf, TaskEnd(params2, state, data, proto.prepare),
                        TaskCtx(jnp.int32(1), jax.random.PRNGKey(2),
                                active))
    assert np.asarray(buf.valid).all()
    task = np.asarray(buf.task)
    assert (task == 0).sum() == 5 and (task == 1).sum() == 5
    np.testing.assert_array_equal(np.asarray(buf.x)[task == 0], first)
    assert set(np.asarray(buf.y)[task == 1].tolist()) <= {2, 3}
    new = task == 1
    out2, _ = model.apply(params2, state, proto.prepare(buf.x[new]),
                          buf.task[new])
    np.testing.assert_allclose(buf.logits[new], out2['logits'], rtol=1e-5)
    np.testing.assert_allclose(buf.logits[~new], out['logits'][:5],
                               rtol=1e-5)


def test_fdr_is_zero_at_the_stored_function():
    proto = tiny_protocol('class')
    model = tiny_model()
    params, state = model.init(jax.random.PRNGKey(0))
    m = fdr(model, num_outputs=C, num_tasks=2, size=6, **layout(proto))
    ctx = TaskCtx(jnp.int32(0), jax.random.PRNGKey(1),
                  jnp.asarray(proto.active))
    buf = m.consolidate(m.init(Snapshot(params, state), ctx), TaskEnd(
        params, state, data_lib.to_device(proto.train), proto.prepare), ctx)
    fwd = Forward(params, state, None, {}, {})
    loss = jax.value_and_grad(lambda p: m.loss(buf, fwd._replace(params=p),
                                               ctx)[0]['function'])
    value, grad = loss(params)
    assert float(value) < 2e-4              # sqrt(eps) = 1e-4
    # the smoothed norm's gradient vanishes there (the exact norm's would
    # be a unit vector along rounding errors)
    assert max(float(jnp.abs(g).max()) for g in jax.tree.leaves(grad)) \
        < 1e-3


def test_fdr_seeds_under_vmap_equal_a_loop_and_jit_equals_eager():
    proto = tiny_protocol()
    # plain SGD, FDR's optimiser: the step checked starts at the stored
    # function, where the distance's gradient is the direction of a
    # vanishing difference, which Adam's normalisation would magnify
    learner = make_learner(lambda hp, model: jcl.compose(('fdr', fdr(
        model, num_outputs=C, num_tasks=2, size=6, minibatch=4,
        alpha=hp['fdr.alpha'], sgd_lr=hp['lr'], **layout(proto)))),
        optimizer=sgd)
    R = check_seeds_and_jit(learner, proto, {'lr': 0.1, 'fdr.alpha': 1.0})
    assert R.shape == (3, 2, 2)


def test_fdr_entry_checks():
    hp = catalog.default_hparams(['fdr'], lr=0.1, protocol='seq-mnist',
                                 scenario='class', batch=128)
    assert hp['fdr.alpha'] == 1.0 and hp['fdr.minibatch'] == 128.0
    with pytest.raises(ConfigError, match='fdr.alpha'):
        catalog.check_hparams(['fdr'], {'fdr.alpha': [-0.5]})


def test_fdr_through_the_command_line(tmp_path, capsys):
    out = tmp_path / 'fdr'
    code = cli.main(['run', '--protocol', 'split-mnist', '--scenario',
                     'task', '--method', 'fdr', '--iters', '20', '--set',
                     'fdr.budget=40', '--out', str(out)])
    assert code == 0, capsys.readouterr().err
    s = json.loads((out / 'summary.json').read_text())['fdr']
    assert s['hp']['fdr.budget'] == 40.0
    with np.load(out / 'results.npz') as f:
        fd = f['fdr/loss/fdr/function']
    # nothing stored during task 1; a distance on every later step but
    # the first after each store (the network is still the stored one)
    assert (fd[:, 0] == 0).all() and (fd[:, 1:, 1:] > 0).all()


def test_fdr_sgd_step_is_mammoths_two_steps():
    """With ``sgd_lr`` an SGD step on the gradient stage's output is a
    step on the other terms' gradient followed by a step on the
    distance's gradient at the parameters it reached."""
    rng = np.random.RandomState(2)
    params = {'w': jnp.asarray(rng.randn(3, C), jnp.float32),
              'b': jnp.asarray(rng.randn(C), jnp.float32)}
    buf = buffers.empty(4, (3,), jnp.uint8, C)._replace(
        x=jnp.asarray(rng.randint(0, 10, (4, 3)), jnp.uint8),
        y=jnp.asarray([0, 1, 2, 3]), task=jnp.asarray([0, 0, 1, 1]),
        logits=jnp.asarray(rng.randn(4, C), jnp.float32),
        valid=jnp.ones(4, bool))
    active = protocols.active_table('class', [[0, 1], [2, 3]],
                                    class_outputs='all')
    ctx = TaskCtx(jnp.int32(1), jax.random.PRNGKey(3), jnp.asarray(active))
    kw = dict(prepare=lambda x: x.astype(jnp.float32) / 10,
              input_shape=(3,), num_outputs=C, num_tasks=2, size=4,
              minibatch=4, alpha=0.8)
    lr = 0.3
    m = fdr(linear_model(), sgd_lr=lr, **kw)
    plain = fdr(linear_model(), **kw)
    g = {'w': jnp.asarray(rng.randn(3, C), jnp.float32),
         'b': jnp.asarray(rng.randn(C), jnp.float32)}   # the CE's gradient
    got = m.grads(buf, Step(params, params, g, {}, None, None, {}, {}), ctx)
    one = jax.tree.map(lambda p, d: p - lr * d, params, got)
    moved = jax.tree.map(lambda p, d: p - lr * d, params, g)
    fd = jax.grad(lambda p: plain.loss(
        buf, Forward(p, {}, None, {}, {}), ctx)[0]['function'])(moved)
    two = jax.tree.map(lambda p, d: p - lr * d, moved, fd)
    for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(two)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # the term is logged, not differentiated, in the loss
    grad = jax.grad(lambda p: m.loss(buf, Forward(p, {}, None, {}, {}),
                                     ctx)[0]['function'])(params)
    assert all(float(jnp.abs(a).max()) == 0 for a in jax.tree.leaves(grad))
