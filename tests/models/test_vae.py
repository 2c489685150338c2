"""The MLP VAE generator: shapes, initialisation and the per-pixel
negative ELBO."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jcl.models import vae as vae_lib

D, LATENT, HIDDEN = 12, 4, (16,)


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


def pixels(n, seed=1):
    return jax.random.uniform(jax.random.PRNGKey(seed), (n, D))


def test_encode_decode_shapes(gen, gparams):
    mu, logvar = gen.encode(gparams, pixels(5))
    assert mu.shape == logvar.shape == (5, LATENT)
    assert gen.decode_logits(gparams, mu).shape == (5, D)


def test_sample_is_decoded_mean_in_unit_interval(gen, gparams):
    key = jax.random.PRNGKey(3)
    x = gen.sample(gparams, key, 7)
    assert x.shape == (7, D)
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    z = jax.random.normal(key, (7, LATENT))
    np.testing.assert_allclose(
        x, jax.nn.sigmoid(gen.decode_logits(gparams, z)), rtol=1e-6)


def test_layout_and_logvar_head_has_no_bias(gparams):
    assert set(gparams['to_logvar']) == {'kernel'}
    assert set(gparams['to_mu']) == {'kernel', 'bias'}
    assert gparams['enc_0']['kernel'].shape == (D, 16)
    assert gparams['dec_0']['kernel'].shape == (LATENT, 16)
    assert gparams['to_out']['kernel'].shape == (16, D)


def test_init_is_pytorch_uniform():
    big = jitted(vae_lib.vae_generator((64,), latent=32, input_dim=48))
    params = big.init(jax.random.PRNGKey(1))
    for name, layer in params.items():
        fan_in = layer['kernel'].shape[0]
        bound = 1.0 / np.sqrt(fan_in)
        for leaf in layer.values():
            a = np.abs(np.asarray(leaf))
            assert a.max() <= bound, name
            assert a.max() > 0.8 * bound, name  # uses the whole range


def test_negative_elbo_matches_naive_formula():
    k1, k2, k3, k4 = jax.random.split(jax.random.PRNGKey(2), 4)
    logits = 3.0 * jax.random.normal(k1, (3, D))
    x = jax.random.uniform(k2, (3, D))
    mu = jax.random.normal(k3, (3, LATENT))
    logvar = jax.random.normal(k4, (3, LATENT))
    p = 1.0 / (1.0 + np.exp(-np.asarray(logits, np.float64)))
    xn = np.asarray(x, np.float64)
    bce = -np.mean(xn * np.log(p) + (1 - xn) * np.log(1 - p), axis=1)
    mun, lvn = np.asarray(mu, np.float64), np.asarray(logvar, np.float64)
    kl = -0.5 * np.sum(1 + lvn - mun ** 2 - np.exp(lvn), axis=1)
    got = jax.jit(vae_lib.negative_elbo)(logits, x, mu, logvar)
    np.testing.assert_allclose(got, bce + kl / D, rtol=1e-5)


def test_negative_elbo_linear_output_is_half_squared_error():
    out, x = jnp.ones((2, D)), jnp.zeros((2, D))
    zeros = jnp.zeros((2, LATENT))
    got = vae_lib.negative_elbo(out, x, zeros, zeros, output='linear')
    np.testing.assert_allclose(got, 0.5, rtol=1e-6)


def test_loss_uses_one_reparameterised_sample(gen, gparams):
    x, key = pixels(6), jax.random.PRNGKey(5)
    mu, logvar = gen.encode(gparams, x)
    z = mu + jnp.exp(0.5 * logvar) * jax.random.normal(key, mu.shape)
    want = vae_lib.negative_elbo(gen.decode_logits(gparams, z), x, mu,
                                 logvar)
    got = gen.loss(gparams, x, key)
    assert got.shape == (6,)
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_loss_finite_with_saturated_pixels(gen, gparams):
    x = jnp.concatenate([jnp.zeros((2, D)), jnp.ones((2, D))])
    value, grads = jax.jit(jax.value_and_grad(
        lambda g: jnp.mean(gen.loss(g, x, jax.random.PRNGKey(0)))))(gparams)
    assert np.isfinite(float(value))
    assert all(np.isfinite(np.asarray(g)).all()
               for g in jax.tree.leaves(grads))
    # stable BCE with logits: saturated, confidently wrong outputs
    logits = jnp.concatenate([jnp.full((2, D), 200.0),
                              jnp.full((2, D), -200.0)])
    zeros = jnp.zeros((4, LATENT))
    np.testing.assert_allclose(
        vae_lib.negative_elbo(logits, x, zeros, zeros), 200.0, rtol=1e-6)


def test_linear_output_samples_are_raw_decoder_outputs():
    lin = jitted(vae_lib.vae_generator(HIDDEN, latent=LATENT, input_dim=D,
                                       output='linear'))
    params = lin.init(jax.random.PRNGKey(0))
    key = jax.random.PRNGKey(4)
    z = jax.random.normal(key, (3, LATENT))
    np.testing.assert_allclose(lin.sample(params, key, 3),
                               lin.decode_logits(params, z), rtol=1e-6)


def test_unknown_output_is_rejected():
    bad = vae_lib.vae_generator(HIDDEN, latent=LATENT, input_dim=D,
                                output='tanh')
    with pytest.raises(ValueError, match='output'):
        bad.init(jax.random.PRNGKey(0))
