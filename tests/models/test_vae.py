"""The MLP VAE generator: its outputs and views against hand-written
layers, initialisation, and the per-pixel negative ELBO (the formula, and
the generator loss of a step with one reparameterised sample)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jcl.core.method import member_key
from jcl.core.records import Batch, Forward, TaskCtx
from jcl.methods import generator_objective as generative
from jcl.methods.generator_objective import generator_loss
from jcl.models import vae as vae_lib
from jcl.models.classifier import mlp_classifier
from jcl.models.paired import paired

D, LATENT, HIDDEN, B = 12, 4, (16,), 6

NELBO = jax.jit(vae_lib.negative_elbo, static_argnames='output')
GEN = vae_lib.vae_model(HIDDEN, latent=LATENT, input_dim=D)
TASK = jnp.zeros(B, jnp.int32)


def apply(model):
    return jax.jit(lambda p, s, x: model.apply(p, s, x, TASK[:x.shape[0]],
                                               train=True))


APPLY = apply(GEN)
DECODE = jax.jit(GEN.views['decode'])
SAMPLE = jax.jit(GEN.views['sample'], static_argnums=3)


@pytest.fixture(scope='module')
def gparams():
    params, state = jax.jit(GEN.init)(jax.random.PRNGKey(0))
    assert state == {}
    return params


def pixels(seed=1):
    return jax.random.uniform(jax.random.PRNGKey(seed), (B, D))


def np_layers(gparams):
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), gparams)

    def dense(name, x):
        out = x @ p[name]['kernel']
        return out + p[name]['bias'] if 'bias' in p[name] else out

    def encode(x):
        h = np.maximum(dense('enc_0', x), 0)
        return dense('to_mu', h), dense('to_logvar', h), h

    def decode(z):
        return dense('to_out', np.maximum(dense('dec_0', z), 0))

    return encode, decode


def test_outputs_and_decode_by_hand(gparams):
    x = pixels()
    out, state = APPLY(gparams, {}, x)
    assert state == {}
    assert set(out) == {'mu', 'logvar', 'features'}
    encode, decode = np_layers(gparams)
    mu, logvar, h = encode(np.asarray(x, np.float64))
    np.testing.assert_allclose(out['mu'], mu, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out['logvar'], logvar, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out['features'], h, rtol=1e-5, atol=1e-6)
    assert out['mu'].shape == out['logvar'].shape == (B, LATENT)
    z = np.asarray(out['mu'])
    np.testing.assert_allclose(DECODE(gparams, {}, z), decode(z),
                               rtol=1e-5, atol=1e-6)


def test_sample_is_decoded_mean_in_unit_interval(gparams):
    key = jax.random.PRNGKey(3)
    x = SAMPLE(gparams, {}, key, B)
    assert x.shape == (B, D)
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    z = jax.random.normal(key, (B, LATENT))
    np.testing.assert_allclose(
        x, jax.nn.sigmoid(DECODE(gparams, {}, z)), rtol=1e-6)
    _, decode = np_layers(gparams)
    np.testing.assert_allclose(
        x, 1 / (1 + np.exp(-decode(np.asarray(z, np.float64)))), rtol=1e-5)


def test_layout_and_logvar_head_has_no_bias(gparams):
    assert set(gparams) == {'enc_0', 'to_mu', 'to_logvar', 'dec_0',
                            'to_out'}
    assert set(gparams['to_logvar']) == {'kernel'}
    assert set(gparams['to_mu']) == {'kernel', 'bias'}
    assert gparams['enc_0']['kernel'].shape == (D, 16)
    assert gparams['dec_0']['kernel'].shape == (LATENT, 16)
    assert gparams['to_out']['kernel'].shape == (16, D)


def test_init_is_pytorch_uniform(gparams):
    for name, layer in gparams.items():
        fan_in = layer['kernel'].shape[0]
        bound = 1.0 / np.sqrt(fan_in)
        for leaf in layer.values():
            a = np.abs(np.asarray(leaf))
            assert a.max() <= bound, name
            if a.size >= 64:
                assert a.max() > 0.8 * bound, name  # the whole range


def test_negative_elbo_matches_naive_formula():
    rng = np.random.RandomState(2)
    logits = 3.0 * rng.randn(B, D)
    x = rng.rand(B, D)
    mu, logvar = rng.randn(B, LATENT), rng.randn(B, LATENT)
    p = 1.0 / (1.0 + np.exp(-logits))
    bce = -np.mean(x * np.log(p) + (1 - x) * np.log(1 - p), axis=1)
    kl = -0.5 * np.sum(1 + logvar - mu ** 2 - np.exp(logvar), axis=1)
    f32 = [np.float32(a) for a in (logits, x, mu, logvar)]
    got = NELBO(*f32)
    np.testing.assert_allclose(got, bce + kl / D, rtol=1e-5)


def test_negative_elbo_linear_output_is_half_squared_error():
    out, x = np.ones((B, D), np.float32), np.zeros((B, D), np.float32)
    zeros = np.zeros((B, LATENT), np.float32)
    got = NELBO(out, x, zeros, zeros, output='linear')
    np.testing.assert_allclose(got, 0.5, rtol=1e-6)
    lin = vae_lib.vae_model(HIDDEN, latent=LATENT, input_dim=D,
                            output='linear')
    np.testing.assert_allclose(
        lin.views['reconstruction'](jnp.asarray(out), jnp.asarray(x)),
        0.5 * D, rtol=1e-6)


def ctx(seed=5):
    return TaskCtx(jnp.int32(0), jax.random.PRNGKey(seed), None)


def gen_loss(model, params, x, c):
    out, state = model.apply(params, {}, x, TASK[:x.shape[0]], train=True)
    fwd = Forward(params, state, Batch(x, None, None), out, {})
    terms, aux = generator_loss(model).loss((), fwd, c)
    assert set(terms) == {'loss'} and aux == {}
    return terms['loss']


def test_loss_uses_one_reparameterised_sample(gparams):
    x, c = pixels(), ctx()
    key = member_key(c, 'gen')

    @jax.jit
    def by_hand(g):
        out, _ = GEN.apply(g, {}, x, TASK, train=True)
        mu, logvar = out['mu'], out['logvar']
        z = mu + jnp.exp(0.5 * logvar) * jax.random.normal(key, mu.shape)
        return vae_lib.negative_elbo(GEN.views['decode'](g, {}, z), x, mu,
                                     logvar)

    want = by_hand(gparams)
    assert want.shape == (B,)
    per = jax.jit(lambda g: generative.negative_elbo(
        GEN, g, {}, APPLY(g, {}, x)[0], x, key))(gparams)
    np.testing.assert_allclose(per, want, rtol=1e-5)
    got = jax.jit(lambda g: gen_loss(GEN, g, x, c))(gparams)
    np.testing.assert_allclose(got, np.mean(want), rtol=1e-5)
    # another step key draws another latent sample
    other = jax.jit(lambda g: gen_loss(GEN, g, x, ctx(6)))(gparams)
    assert not np.isclose(float(other), float(got), rtol=1e-6)


def test_paired_model_trains_the_generator_on_its_part(gparams):
    """A classifier paired with the VAE: the generator loss reads the
    posterior from the shared forward pass and the generator's parameters
    only."""
    model = paired(mlp_classifier((8,), num_outputs=3, input_dim=D), GEN)
    params, state = jax.jit(model.init)(jax.random.PRNGKey(1))
    params = {**params, 'generator': gparams}
    x, c = pixels(), ctx()
    out, _ = apply(model)(params, state, x)
    assert set(out) == {'logits', 'features', 'mu', 'logvar'}
    np.testing.assert_allclose(out['mu'], APPLY(gparams, {}, x)[0]['mu'],
                               rtol=1e-6)
    fwd = Forward(params, state, Batch(x, None, None), out, {})

    def loss(p):
        o, _ = model.apply(p, state, x, TASK, train=True)
        return generator_loss(model).loss((), fwd._replace(
            params=p, outputs=o), c)[0]['loss']

    value, grads = jax.jit(jax.value_and_grad(loss))(params)
    np.testing.assert_allclose(
        value, jax.jit(lambda g: gen_loss(GEN, g, x, c))(gparams),
        rtol=1e-6)
    assert all(np.all(np.asarray(g) == 0)
               for g in jax.tree.leaves(grads['classifier']))
    assert all(np.any(np.asarray(g) != 0)
               for g in jax.tree.leaves(grads['generator']))


def test_loss_finite_with_saturated_pixels(gparams):
    x = jnp.concatenate([jnp.zeros((3, D)), jnp.ones((3, D))])
    c = ctx(0)
    value, grads = jax.jit(jax.value_and_grad(
        lambda g: gen_loss(GEN, g, x, c)))(gparams)
    # the same loss from the stable formula on the same latent draw
    out, _ = APPLY(gparams, {}, x)
    mu, logvar = out['mu'], out['logvar']
    z = mu + jnp.exp(0.5 * logvar) * jax.random.normal(member_key(c, 'gen'),
                                                       mu.shape)
    np.testing.assert_allclose(
        value, np.mean(NELBO(DECODE(gparams, {}, z), x, mu, logvar)),
        rtol=1e-5)
    assert np.isfinite(float(value))
    assert all(np.isfinite(np.asarray(g)).all()
               for g in jax.tree.leaves(grads))
    assert all(np.any(np.asarray(g) != 0) for g in jax.tree.leaves(grads))
    # stable BCE with logits: saturated, confidently wrong outputs
    logits = jnp.concatenate([jnp.full((3, D), 200.0),
                              jnp.full((3, D), -200.0)])
    zeros = jnp.zeros((B, LATENT))
    np.testing.assert_allclose(NELBO(logits, x, zeros, zeros), 200.0,
                               rtol=1e-6)
    np.testing.assert_allclose(GEN.views['reconstruction'](logits, x),
                               200.0 * D, rtol=1e-6)


def test_linear_output_samples_are_raw_decoder_outputs():
    lin = vae_lib.vae_model(HIDDEN, latent=LATENT, input_dim=D,
                            output='linear')
    key = jax.random.PRNGKey(4)

    @jax.jit
    def both(k):
        params, state = lin.init(k)
        z = jax.random.normal(key, (3, LATENT))
        return (lin.views['sample'](params, state, key, 3),
                lin.views['decode'](params, state, z))

    sample, decoded = both(jax.random.PRNGKey(0))
    np.testing.assert_allclose(sample, decoded, rtol=1e-6)
    assert float(jnp.abs(sample).max()) > 0.0
    assert float(sample.min()) < 0.0 or float(sample.max()) > 1.0


def test_unknown_output_is_rejected():
    bad = vae_lib.vae_model(HIDDEN, latent=LATENT, input_dim=D,
                            output='tanh')
    with pytest.raises(ValueError, match='output'):
        bad.init(jax.random.PRNGKey(0))
