"""Oracles of the generative classifier: the class VAEs' training loss and
importance-sampled likelihood by hand, the per-class loss, jit vs no-jit,
vmap over seeds vs a loop, the catalogue's schedule and refusals, and a
run from the command line."""


import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tiny_runs import assert_rows_equal_loop

from jcl import cli
from jcl.core.errors import ConfigError
from jcl.core.method import member_key
from jcl.core.records import Batch, Forward, Snapshot, TaskCtx
from jcl.methods import catalog
from jcl.methods.generative_classifier import first_of_each, gen_classifier
from jcl.models.class_vaes import class_vaes
from jcl.tasks import catalog as protocols_catalog
from jcl.tasks import protocols
from jcl.training import learner as learner_lib

D, H, Z, C = 6, 5, 2, 4
MODEL = class_vaes((H,), num_classes=C, latent=Z, input_dim=D)
PARAMS, _ = MODEL.init(jax.random.PRNGKey(0))
X = np.random.RandomState(0).uniform(0, 1, (3, D)).astype(np.float32)


def np_vae(c):
    """Class ``c``'s VAE in numpy: encode, decode (sigmoid means)."""
    p = jax.tree.map(lambda a: np.asarray(a[c], np.float64), PARAMS)

    def dense(layer, x):
        return x @ layer['kernel'] + layer.get('bias', 0.0)

    def encode(x):
        h = np.maximum(dense(p['enc_0'], x), 0)
        return dense(p['to_mu'], h), h @ p['to_logvar']['kernel']

    def decode(z):
        h = np.maximum(dense(p['dec_0'], z), 0)
        return 1 / (1 + np.exp(-dense(p['to_out'], h)))

    return encode, decode


def test_training_loss_by_hand():
    """Bernoulli reconstruction and KL, both per input dimension, with the
    posterior sample the view draws."""
    rows = jnp.array([1, 3])
    key = jax.random.PRNGKey(5)
    xs = jnp.stack([X, X[::-1]])
    got = np.asarray(MODEL.views['class_losses'](PARAMS, xs, key, rows))
    for r, c in enumerate([1, 3]):
        encode, decode = np_vae(c)
        x = np.asarray(xs[r], np.float64)
        mu, logvar = encode(x)
        eps = np.asarray(jax.random.normal(jax.random.split(key, 2)[r],
                                           mu.shape))
        out = decode(mu + np.exp(logvar / 2) * eps)
        bce = -np.sum(x * np.log(out) + (1 - x) * np.log(1 - out), 1)
        kl = -0.5 * np.sum(1 + logvar - mu ** 2 - np.exp(logvar), 1)
        np.testing.assert_allclose(got[r], (bce + kl) / D, rtol=1e-4)


def test_importance_sampled_likelihood_by_hand():
    """``logsumexp_s [log N(x; dec(z_s), I) + log N(z_s; 0, I) - log
    q(z_s|x)] - log S`` without the 2 pi constants (the reference's)."""
    key, S = jax.random.PRNGKey(3), 4
    got = np.asarray(MODEL.views['log_likelihood'](PARAMS, jnp.asarray(X),
                                                   key, S))
    x = X.astype(np.float64)
    for c, kc in enumerate(jax.random.split(key, C)):
        encode, decode = np_vae(c)
        mu, logvar = encode(x)
        lls = []
        for ks in jax.random.split(kc, S):
            z = mu + np.exp(logvar / 2) * np.asarray(
                jax.random.normal(ks, mu.shape))
            lls.append(-0.5 * np.sum((x - decode(z)) ** 2, 1)
                       - 0.5 * np.sum(z ** 2, 1)
                       + 0.5 * np.sum(logvar + (z - mu) ** 2
                                      / np.exp(logvar), 1))
        lls = np.stack(lls)
        top = lls.max(0)
        want = top + np.log(np.exp(lls - top).sum(0)) - np.log(S)
        np.testing.assert_allclose(got[:, c], want, rtol=1e-4, atol=1e-4)


def test_first_examples_of_each_class():
    y = jnp.array([5, 4, 5, 5, 4, 5])
    picks, ok = first_of_each(y, jnp.array([4, 5]), 3)
    assert picks.tolist() == [[1, 4, 0], [0, 2, 3]]
    assert ok.tolist() == [[True, True, False], [True, True, True]]


def test_loss_is_each_class_mean_under_its_own_vae():
    """Task 1 (classes 2, 3): class 2's VAE on its example, class 3's on
    the mean of its two; no other VAE gets a gradient."""
    m = gen_classifier(MODEL, classes_per_task=2, class_batch=2)
    ctx = TaskCtx(jnp.int32(1), jax.random.PRNGKey(1), None)
    batch = Batch(jnp.asarray(X), jnp.array([3, 2, 3]), jnp.ones(3, jnp.int32))

    def total(p):
        return m.loss((), Forward(p, {}, batch, {}, {}), ctx)[0]['loss']

    xs = jnp.stack([jnp.asarray(X)[jnp.array([1, 0])],
                    jnp.asarray(X)[jnp.array([0, 2])]])
    per = MODEL.views['class_losses'](PARAMS, xs,
                                      member_key(ctx, 'gen-classifier'),
                                      jnp.array([2, 3]))
    np.testing.assert_allclose(float(total(PARAMS)),
                               float(per[0, 0] + per[1].mean()), rtol=1e-6)
    g = jax.grad(total)(PARAMS)
    norms = np.asarray(sum(jnp.abs(a).reshape(C, -1).sum(1)
                           for a in jax.tree.leaves(g)))
    assert (norms[[0, 1]] == 0).all() and (norms[[2, 3]] > 0).all()


def test_prediction_is_the_most_likely_class():
    m = gen_classifier(MODEL, classes_per_task=2, samples=3)
    key = jax.random.PRNGKey(9)
    scores = m.predict(key, Snapshot(PARAMS, {}), jnp.asarray(X), None)
    want = MODEL.views['log_likelihood'](PARAMS, jnp.asarray(X), key, 3)
    np.testing.assert_allclose(scores, want)


def tiny_protocol():
    from conftest import synthetic_arrays
    return protocols.class_split('s', synthetic_arrays(100, 30), 'class')


def small_learner(proto, steps=6):
    model = class_vaes((8,), num_classes=proto.num_outputs, latent=2,
                       input_dim=proto.input_shape[0])
    return learner_lib.Learner(
        lambda hp: model,
        lambda hp, model: gen_classifier(model, classes_per_task=2,
                                         class_batch=4, samples=2),
        num_steps=steps, batch_size=12, reset_optimizer=True)


def test_jit_equals_no_jit():
    """The loss, its gradient and the prediction, traced or eager."""
    m = gen_classifier(MODEL, classes_per_task=2, class_batch=2, samples=3)
    ctx = TaskCtx(jnp.int32(1), jax.random.PRNGKey(1), None)
    batch = Batch(jnp.asarray(X), jnp.array([3, 2, 3]), jnp.ones(3, jnp.int32))

    def run(p):
        total = jax.value_and_grad(lambda q: m.loss(
            (), Forward(q, {}, batch, {}, {}), ctx)[0]['loss'])(p)
        return total, m.predict(jax.random.PRNGKey(2), Snapshot(p, {}),
                                jnp.asarray(X), None)

    with jax.disable_jit():
        eager = run(PARAMS)
    chex.assert_trees_all_close(eager, jax.jit(run)(PARAMS), atol=1e-5,
                                rtol=1e-4)


def test_vmap_over_seeds_equals_loop():
    proto = tiny_protocol()
    learner = small_learner(proto)
    hp = {'lr': jnp.full((2,), 1e-3)}
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    assert_rows_equal_loop(learner, proto, hp, keys)

def test_schedule_is_the_codes_per_class_training():
    spec = protocols_catalog.protocol_spec('split-mnist')
    got = catalog.schedule(['gen-classifier'], spec)
    assert got == {'iters': 1000, 'batch': 384, 'lr': 1e-3}
    hp = catalog.default_hparams(['gen-classifier'], lr=1e-3,
                                 protocol='split-mnist', scenario='class')
    assert hp['gen-classifier.class_batch'] == 128.0
    assert hp['gen-classifier.samples'] == 50.0


def test_composition_and_bad_values_are_refused():
    with pytest.raises(ConfigError, match='composes with no other part'):
        catalog.check_scenario(['gen-classifier', 'si'], 'class')
    with pytest.raises(ConfigError, match='task-incremental|class-'):
        catalog.check_scenario(['gen-classifier'], 'task')
    for name, v in (('samples', 0), ('samples', 2.5), ('class_batch', 0)):
        with pytest.raises(ConfigError, match='must be a whole number'):
            catalog.check_hparams(['gen-classifier'],
                                  {f'gen-classifier.{name}': v})


def test_runs_from_the_command_line(tmp_path, capsys):
    """Its own schedule unless --iters / --batch are given; a run learns
    the first task."""
    out = tmp_path / 'gc'
    code = cli.main(['run', '--protocol', 'split-mnist', '--scenario',
                     'class', '--method', 'gen-classifier', '--iters', '3',
                     '--set', 'gen-classifier.samples=1', '--set',
                     'gen-classifier.class_batch=8', '--out', str(out)])
    assert code == 0, capsys.readouterr().err
    import json
    cfg = json.loads((out / 'config.json').read_text())
    assert cfg['schedules'] == {'gen-classifier': {'batch': 384,
                                                   'lr': 0.001}}
    summary = json.loads((out / 'summary.json').read_text())
    assert np.asarray(summary['gen-classifier']['R'])[0][0][0] > 0.6
    code = cli.main(['run', '--protocol', 'split-mnist', '--scenario',
                     'class', '--method', 'gen-classifier+si', '--iters',
                     '3', '--out', str(tmp_path / 'x')])
    assert code == 2
    assert 'composes with no other part' in capsys.readouterr().err
