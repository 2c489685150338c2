"""The MLP VAE generator: shapes, initialisation and the per-pixel
negative ELBO."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jcl.models import vae as vae_lib

D, LATENT, HIDDEN, B = 12, 4, (16,), 6


NELBO = jax.jit(vae_lib.negative_elbo, static_argnames='output')


def jitted(gen):
    """The generator with every function compiled (fast under load)."""
    return vae_lib.Generator(
        jax.jit(gen.init), jax.jit(gen.encode), jax.jit(gen.decode_logits),
        jax.jit(gen.sample, static_argnums=2), jax.jit(gen.loss))


@pytest.fixture(scope='module')
def gen():
    return jitted(vae_lib.vae_generator(HIDDEN, latent=LATENT, input_dim=D))


@pytest.fixture(scope='module')
def gparams(gen):
    return gen.init(jax.random.PRNGKey(0))


def pixels(seed=1):
    return jax.random.uniform(jax.random.PRNGKey(seed), (B, D))


def test_encode_decode_shapes(gen, gparams):
    mu, logvar = gen.encode(gparams, pixels())
    assert mu.shape == logvar.shape == (B, LATENT)
    assert gen.decode_logits(gparams, mu).shape == (B, D)


def test_sample_is_decoded_mean_in_unit_interval(gen, gparams):
    key = jax.random.PRNGKey(3)
    x = gen.sample(gparams, key, B)
    assert x.shape == (B, D)
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    z = jax.random.normal(key, (B, LATENT))
    np.testing.assert_allclose(
        x, jax.nn.sigmoid(gen.decode_logits(gparams, z)), rtol=1e-6)


def test_layout_and_logvar_head_has_no_bias(gparams):
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


def test_loss_uses_one_reparameterised_sample(gen, gparams):
    x, key = pixels(), jax.random.PRNGKey(5)

    @jax.jit
    def by_hand(g):
        mu, logvar = gen.encode(g, x)
        z = mu + jnp.exp(0.5 * logvar) * jax.random.normal(key, mu.shape)
        return vae_lib.negative_elbo(gen.decode_logits(g, z), x, mu, logvar)

    got = gen.loss(gparams, x, key)
    assert got.shape == (B,)
    np.testing.assert_allclose(got, by_hand(gparams), rtol=1e-5)


def test_loss_finite_with_saturated_pixels(gen, gparams):
    x = jnp.concatenate([jnp.zeros((3, D)), jnp.ones((3, D))])
    value, grads = jax.jit(jax.value_and_grad(
        lambda g: jnp.mean(gen.loss(g, x, jax.random.PRNGKey(0)))))(gparams)
    assert np.isfinite(float(value))
    assert all(np.isfinite(np.asarray(g)).all()
               for g in jax.tree.leaves(grads))
    # stable BCE with logits: saturated, confidently wrong outputs
    logits = jnp.concatenate([jnp.full((3, D), 200.0),
                              jnp.full((3, D), -200.0)])
    zeros = jnp.zeros((B, LATENT))
    np.testing.assert_allclose(NELBO(logits, x, zeros, zeros), 200.0,
                               rtol=1e-6)


def test_linear_output_samples_are_raw_decoder_outputs():
    lin = vae_lib.vae_generator(HIDDEN, latent=LATENT, input_dim=D,
                                output='linear')
    key = jax.random.PRNGKey(4)

    @jax.jit
    def both(k):
        params = lin.init(k)
        z = jax.random.normal(key, (3, LATENT))
        return lin.sample(params, key, 3), lin.decode_logits(params, z)

    sample, decoded = both(jax.random.PRNGKey(0))
    np.testing.assert_allclose(sample, decoded, rtol=1e-6)
    assert float(jnp.abs(sample).max()) > 0.0


def test_unknown_output_is_rejected():
    bad = vae_lib.vae_generator(HIDDEN, latent=LATENT, input_dim=D,
                                output='tanh')
    with pytest.raises(ValueError, match='output'):
        bad.init(jax.random.PRNGKey(0))
