"""ER-ACE: the asymmetric cross-entropy and the replay term by hand, the
reservoir and the highest class seen, seeds under vmap and jit, the
command line."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tiny_runs import (
    check_seeds_and_jit,
    layout,
    linear_model,
    make_learner,
    tiny_protocol,
)

import jcl
from jcl import cli
from jcl.core.errors import ConfigError
from jcl.core.method import member_key
from jcl.core.records import Batch, Forward, Step, TaskCtx
from jcl.methods import buffers, catalog
from jcl.methods.asymmetric_replay import AceState, er_ace
from jcl.tasks import protocols

K = 6   # outputs of the hand-computed case: three tasks of two classes


def np_ce(z, y, keep):
    z = np.where(keep, z, -np.inf)
    m = z.max(1, keepdims=True)
    return (np.log(np.exp(z - m).sum(1)) + m[:, 0]
            - z[np.arange(len(y)), y])


def setting(task_id):
    rng = np.random.RandomState(0)
    params = {'w': jnp.asarray(rng.randn(3, K), jnp.float32),
              'b': jnp.asarray(rng.randn(K), jnp.float32)}
    buf = buffers.empty(5, (3,), jnp.uint8)._replace(
        x=jnp.asarray(rng.randint(0, 10, (5, 3)), jnp.uint8),
        y=jnp.asarray([0, 1, 2, 3, 0]), task=jnp.asarray([0, 0, 1, 1, 0]),
        valid=jnp.asarray([True, True, True, False, True]))
    # all units active from the first task (mammoth's seq-mnist)
    active = protocols.active_table('class', [[0, 1], [2, 3], [4, 5]],
                                    class_outputs='all')
    ctx = TaskCtx(jnp.int32(task_id), jax.random.PRNGKey(3),
                  jnp.asarray(active))
    x = jnp.asarray(rng.rand(3, 3), jnp.float32)
    batch = Batch(x, jnp.asarray([2, 2, 2]), jnp.asarray([1, 1, 1]))
    logits = x @ params['w'] + params['b']
    fwd = Forward(params, {}, batch, {'logits': logits}, {})
    return params, AceState(buf, jnp.int32(3)), ctx, fwd


def test_er_ace_loss_by_hand():
    params, state, ctx, fwd = setting(task_id=1)
    m = er_ace(linear_model(), prepare=lambda x: x.astype(jnp.float32) / 10,
               input_shape=(3,), size=5, minibatch=8)
    terms = m.loss(state, fwd, ctx)[0]
    z = np.asarray(fwd.outputs['logits'])
    # class 2 is present; top = max(3, 2) = 3: units 3, 4, 5 stay; the
    # earlier classes 0 and 1 (absent from the batch) are masked out
    keep = np.array([False, False, True, True, True, True])
    want = np_ce(z, np.array([2, 2, 2]), keep[None]).mean()
    np.testing.assert_allclose(float(terms['current']), want, rtol=1e-5)
    # minibatch 8 > 4 filled slots: each filled slot once, all units
    w_, b_ = np.asarray(params['w']), np.asarray(params['b'])
    ids = [0, 1, 2, 4]
    zb = np.asarray(state.buffer.x, np.float32)[ids] / 10 @ w_ + b_
    rep = np_ce(zb, np.asarray(state.buffer.y)[ids], np.ones((4, K), bool))
    np.testing.assert_allclose(float(terms['replay']), rep.mean(),
                               rtol=1e-5)
    # the first task: the plain cross-entropy, nothing replayed
    _, _, ctx0, _ = setting(task_id=0)
    terms0 = m.loss(state, fwd, ctx0)[0]
    np.testing.assert_allclose(
        float(terms0['current']),
        np_ce(z, np.array([2, 2, 2]), np.ones((1, K), bool)).mean(),
        rtol=1e-5)
    assert float(terms0['replay']) == 0.0


def test_er_ace_update_fills_the_reservoir_and_the_top_class():
    params, state, ctx, _ = setting(task_id=1)
    m = er_ace(linear_model(), prepare=lambda x: x, input_shape=(3,), size=4)
    raw = Batch(jnp.ones((2, 3), jnp.uint8), jnp.asarray([5, 4]),
                jnp.asarray([2, 2]))
    new = m.update(m.init(None, None), Step(params, params, None, {}, raw,
                                            raw, {}, {}), ctx)
    assert int(new.top) == 5 and int(new.buffer.seen) == 2
    assert np.asarray(new.buffer.y)[:2].tolist() == [5, 4]
    want = buffers.reservoir_add(buffers.empty(4, (3,), jnp.uint8), raw,
                                 None, member_key(ctx, 'er-ace-store'))
    np.testing.assert_array_equal(new.buffer.valid, want.valid)


def test_er_ace_seeds_under_vmap_equal_a_loop_and_jit_equals_eager():
    proto = tiny_protocol()
    learner = make_learner(lambda hp, model: jcl.compose(
        ('er-ace', er_ace(model, size=6, minibatch=4, **layout(proto))),
        objective=False))
    R = check_seeds_and_jit(learner, proto, {'lr': 1e-2})
    assert R.shape == (3, 2, 2)


def test_er_ace_entry_checks_and_scenarios(tmp_path, capsys):
    with pytest.raises(ConfigError, match='er-ace.budget'):
        catalog.check_hparams(['er-ace'], {'er-ace.budget': [0.0]})
    code = cli.main(['run', '--protocol', 'split-mnist', '--scenario',
                     'domain', '--method', 'er-ace', '--iters', '3',
                     '--out', str(tmp_path / 'no')])
    assert code == 2 and 'defined for' in capsys.readouterr().err


def test_er_ace_through_the_command_line(tmp_path, capsys):
    out = tmp_path / 'ace'
    code = cli.main(['run', '--protocol', 'split-mnist', '--scenario',
                     'class', '--method', 'er-ace+si', '--iters', '20',
                     '--set', 'er-ace.budget=40', '--out', str(out)])
    assert code == 0, capsys.readouterr().err
    s = json.loads((out / 'summary.json').read_text())['er-ace+si']
    assert s['hp']['er-ace.minibatch'] == 128.0
    assert s['avg_acc'][0] > 0.3           # fine-tuning: about 0.2
    with np.load(out / 'results.npz') as f:
        assert 'er-ace+si/loss/ce/loss' not in f      # its own objective
        rep = f['er-ace+si/loss/er-ace/replay']
        assert (rep[:, 0] == 0).all() and (rep[:, 1:] > 0).all()
        assert 'er-ace+si/loss/si/penalty' in f
