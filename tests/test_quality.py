"""Oracles of the generator-quality metrics."""

import jax
import jax.numpy as jnp
import numpy as np

from jcl.analysis import quality
from jcl.core.model import make_model


def test_inception_score_bounds():
    np.testing.assert_allclose(
        quality.inception_score(jnp.full((10, 5), 0.2)), 1.0, rtol=1e-6)
    one_class = jax.nn.one_hot(jnp.zeros(6, int), 3)
    np.testing.assert_allclose(quality.inception_score(one_class), 1.0,
                               rtol=1e-5)
    balanced = jax.nn.one_hot(jnp.arange(6) % 3, 3)
    np.testing.assert_allclose(quality.inception_score(balanced), 3.0,
                               rtol=1e-5)


def test_frechet_distance_closed_forms():
    x = jax.random.normal(jax.random.PRNGKey(0), (500, 4)) @ jnp.array(
        [[1.0, 0.5, 0, 0], [0, 1, 0.2, 0], [0, 0, 2, 0], [0, 0, 0, 0.3]])
    assert abs(float(quality.fid(x, x))) < 1e-3
    # diagonal Gaussians: |m1 - m2|^2 + sum (sqrt(a) - sqrt(b))^2
    m1, m2 = jnp.array([0.0, 1.0, 2.0]), jnp.array([1.0, 1.0, -1.0])
    a, b = jnp.array([1.0, 4.0, 0.25]), jnp.array([9.0, 1.0, 0.25])
    got = quality.frechet_distance(m1, jnp.diag(a), m2, jnp.diag(b))
    want = 1 + 0 + 9 + (1 - 3) ** 2 + (2 - 1) ** 2 + 0
    np.testing.assert_allclose(got, want, rtol=1e-5)
    # a general pair against scipy's matrix square root formula
    rng = np.random.RandomState(1)
    c1, c2 = (np.cov(rng.randn(3, 50)) for _ in range(2))
    from scipy.linalg import sqrtm
    want = np.trace(c1 + c2 - 2 * sqrtm(c1 @ c2).real)
    got = quality.frechet_distance(jnp.zeros(3), jnp.asarray(c1),
                                   jnp.zeros(3), jnp.asarray(c2))
    np.testing.assert_allclose(got, want, rtol=1e-4)


def test_precision_recall_on_known_overlap():
    key = jax.random.PRNGKey(0)
    centres = 10.0 * jnp.eye(4)
    real = centres[jnp.arange(400) % 4] + 0.1 * jax.random.normal(
        key, (400, 4))
    p, r = quality.precision_recall(key, real, real[::-1], clusters=4)
    assert float(p.max()) > 0.99 and float(r.max()) > 0.99
    assert float(jnp.max(jnp.minimum(p, r))) > 0.99
    # generated covers only half the modes: recall at most 1/2,
    # precision can reach 1
    half = real[(jnp.arange(400) % 4) < 2]
    p, r = quality.precision_recall(key, real, half, clusters=4)
    assert float(p.max()) > 0.99 and float(r.max()) < 0.51
    far = real + 100.0                      # disjoint: nothing matches
    p, r = quality.precision_recall(key, real, far, clusters=4)
    assert float(p.max()) < 1e-6 and float(r.max()) < 1e-6


def stub_vae(mu_scale=0.0):
    """mu = mu_scale * x, logvar = 0, a decoder that ignores z: p(x) is
    the reconstruction likelihood of the constant output exactly."""
    def apply(p, s, x, task, train=False):
        return {'mu': mu_scale * x[:, :2], 'logvar': jnp.zeros((len(x), 2))}, s

    def decode(p, s, z, gates=None):
        return jnp.zeros((z.shape[0], 3)) + p['out']

    def reconstruction(out, x):
        return jnp.sum(jnp.maximum(out, 0) - out * x
                       + jnp.log1p(jnp.exp(-jnp.abs(out))), -1)

    return make_model(init=None, apply=apply, views={
        'decode': decode, 'reconstruction': reconstruction,
        'prior': lambda p: None})


def test_importance_log_likelihood_is_exact_when_q_is_the_prior():
    m = stub_vae(0.0)
    params = {'out': jnp.array([0.5, -1.0, 2.0])}
    x = jnp.array([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    ll = quality.importance_log_likelihood(m, params, {}, x,
                                           jax.random.PRNGKey(0), 16)
    pr = jax.nn.sigmoid(params['out'])
    want = np.sum(np.log(np.where(x == 1, pr, 1 - pr)), -1)
    np.testing.assert_allclose(ll, want, rtol=1e-5)
    np.testing.assert_allclose(
        quality.reconstruction_error(m, params, {}, x), -want, rtol=1e-5)
    # q away from the prior: an unbiased estimate of the same p(x)
    far = quality.importance_log_likelihood(stub_vae(0.5), params, {}, x,
                                            jax.random.PRNGKey(1), 4000)
    np.testing.assert_allclose(far, want, atol=0.05)
