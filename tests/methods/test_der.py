"""DER (DER++ without the label term): its loss by hand, one draw per
step, seeds under vmap and jit, the command line."""

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
    tiny_protocol,
)

import jcl
from jcl import cli
from jcl.core.errors import ConfigError
from jcl.core.records import Forward, TaskCtx
from jcl.methods import buffers, catalog
from jcl.methods.dark_experience_replay import der, derpp
from jcl.tasks import protocols


def test_der_loss_by_hand_and_equal_to_derpp_logit_term():
    rng = np.random.RandomState(0)
    params = {'w': jnp.asarray(rng.randn(3, C), jnp.float32),
              'b': jnp.asarray(rng.randn(C), jnp.float32)}
    buf = buffers.empty(5, (3,), jnp.uint8, C)._replace(
        x=jnp.asarray(rng.randint(0, 10, (5, 3)), jnp.uint8),
        y=jnp.asarray([0, 1, 2, 3, 0]), task=jnp.asarray([0, 0, 1, 1, 0]),
        logits=jnp.asarray(rng.randn(5, C), jnp.float32),
        valid=jnp.asarray([True, True, True, False, True]))
    active = protocols.active_table('class', [[0, 1], [2, 3]])
    ctx = TaskCtx(jnp.int32(1), jax.random.PRNGKey(3), jnp.asarray(active))
    kw = dict(prepare=lambda x: x.astype(jnp.float32) / 10,
              input_shape=(3,), num_outputs=C, size=5, minibatch=8)
    fwd = Forward(params, {}, None, {}, {})
    terms = der(linear_model(), alpha=0.4, **kw).loss(buf, fwd, ctx)[0]
    assert set(terms) == {'logits'}
    # minibatch 8 > 4 filled slots: every filled slot once, the empty one
    # weighs nothing
    x = np.asarray(buf.x, np.float32)[[0, 1, 2, 4]] / 10
    z = x @ np.asarray(params['w']) + np.asarray(params['b'])
    want = 0.4 * np.mean((z - np.asarray(buf.logits)[[0, 1, 2, 4]]) ** 2)
    np.testing.assert_allclose(float(terms['logits']), want, rtol=1e-5)
    # the same draw as DER++'s first one when keyed by the same name
    plus = derpp(linear_model(), alpha=0.4, beta=0.0, name='der', **kw)
    np.testing.assert_allclose(
        float(plus.loss(buf, fwd, ctx)[0]['logits']), want, rtol=1e-5)


def test_der_seeds_under_vmap_equal_a_loop_and_jit_equals_eager():
    proto = tiny_protocol()
    learner = make_learner(lambda hp, model: jcl.compose(('der', der(
        model, num_outputs=C, size=6, minibatch=4, alpha=hp['der.alpha'],
        **layout(proto)))))
    R = check_seeds_and_jit(learner, proto, {'lr': 1e-2, 'der.alpha': 0.5})
    assert R.shape == (3, 2, 2)


def test_der_entry_defaults_and_checks():
    hp = catalog.default_hparams(['der'], lr=0.03, protocol='seq-mnist',
                                 scenario='class', batch=10)
    assert hp == {'lr': 0.03, 'der.budget': 200.0, 'der.minibatch': 10.0,
                  'der.alpha': 0.2}
    with pytest.raises(ConfigError, match='der.alpha'):
        catalog.check_hparams(['der'], {'der.alpha': [-1.0]})
    with pytest.raises(ConfigError, match='der.budget'):
        catalog.check_hparams(['der'], {'der.budget': [0.5]})


def test_der_through_the_command_line(tmp_path, capsys):
    out = tmp_path / 'der'
    code = cli.main(['run', '--protocol', 'split-mnist', '--scenario',
                     'class', '--method', 'der', '--iters', '20', '--set',
                     'der.budget=40', '--set', 'der.minibatch=8', '--out',
                     str(out)])
    assert code == 0, capsys.readouterr().err
    s = json.loads((out / 'summary.json').read_text())['der']
    assert s['hp']['der.alpha'] == 0.2
    with np.load(out / 'results.npz') as f:
        assert 'der/loss/der/logits' in f and 'der/loss/der/labels' not in f
        assert (f['der/loss/der/logits'][:, 1:, 1:] > 0).all()
