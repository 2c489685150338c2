import jax
import jax.numpy as jnp
import numpy as np

from jcl.core import losses


def test_masked_cross_entropy_is_softmax_over_active_units():
    logits = jnp.array([[2.0, -1.0, 0.5, 3.0]])
    mask = jnp.array([[False, True, True, False]])
    got = losses.cross_entropy(logits, jnp.array([2]), mask)
    sub = np.array([-1.0, 0.5])
    want = -(0.5 - np.log(np.exp(sub).sum()))
    np.testing.assert_allclose(got, [want], rtol=1e-6)


def test_masked_cross_entropy_gradient_is_zero_on_inactive_units():
    logits = jnp.array([[2.0, -1.0, 0.5, 3.0]])
    mask = jnp.array([[False, True, True, False]])
    g = jax.grad(lambda z: losses.cross_entropy(z, jnp.array([1]),
                                                mask).sum())(logits)
    assert g[0, 0] == 0 and g[0, 3] == 0
    p = np.exp([-1.0, 0.5]) / np.exp([-1.0, 0.5]).sum()
    np.testing.assert_allclose(g[0, 1:3], [p[0] - 1.0, p[1]], rtol=1e-6)


def test_distillation_matches_hand_formula_and_is_minimal_at_teacher():
    t = 2.0
    teacher = jnp.array([[1.0, 0.0, -1.0]])
    student = jnp.array([[0.3, 0.2, 0.1]])
    mask = jnp.ones((1, 3), bool)
    p = np.exp(np.array([1.0, 0.0, -1.0]) / t)
    p /= p.sum()
    q = np.array([0.3, 0.2, 0.1]) / t
    logq = q - np.log(np.exp(q).sum())
    want = -t * t * (p * logq).sum()
    got = losses.distillation(student, teacher, mask, t)
    np.testing.assert_allclose(got, [want], rtol=1e-6)
    g = jax.grad(lambda s: losses.distillation(s, teacher, mask, t).sum())
    np.testing.assert_allclose(g(teacher), 0.0, atol=1e-6)
    assert np.abs(g(student)).sum() > 1e-3


def test_distillation_class_mean_divides_by_active_outputs():
    teacher = jnp.array([[1.0, 0.0, -1.0, 5.0], [0.5, 0.1, 0.0, 2.0]])
    student = jnp.array([[0.3, 0.2, 0.1, 9.0], [0.0, 1.0, 0.2, -3.0]])
    mask = jnp.array([True, True, True, False])
    total = losses.distillation(student, teacher, mask, 2.0)
    mean = losses.distillation(student, teacher, mask, 2.0,
                               class_mean=jnp.float32(1.0))
    np.testing.assert_allclose(mean, total / 3, rtol=1e-6)
    # per-example masks count each row's own active outputs
    rows = jnp.array([[True, True, True, False], [True, True, False, False]])
    got = losses.distillation(student, teacher, rows, 2.0, class_mean=1.0)
    want = losses.distillation(student, teacher, rows, 2.0) / jnp.array(
        [3.0, 2.0])
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_gaussian_kl_matches_analytic_value():
    mu = jnp.array([[0.5, -1.0]])
    logvar = jnp.log(jnp.array([[2.0, 0.25]]))
    # KL(N(m, s2) || N(0, 1)) = 0.5 (s2 + m2 - 1 - ln s2)
    want = sum(0.5 * (s2 + m * m - 1 - np.log(s2))
               for m, s2 in [(0.5, 2.0), (-1.0, 0.25)])
    np.testing.assert_allclose(losses.gaussian_kl(mu, logvar), [want],
                               rtol=1e-6)
    np.testing.assert_allclose(
        losses.gaussian_kl(jnp.zeros((1, 3)), jnp.zeros((1, 3))), [0.0])


def test_gaussian_kl_matches_monte_carlo():
    mu, logvar = jnp.array([[0.3, 1.2]]), jnp.array([[0.4, -0.7]])
    z = mu + jnp.exp(0.5 * logvar) * jax.random.normal(
        jax.random.PRNGKey(0), (200_000, 2))
    logq = jax.scipy.stats.norm.logpdf(z, mu, jnp.exp(0.5 * logvar))
    logp = jax.scipy.stats.norm.logpdf(z)
    mc = float(jnp.mean(jnp.sum(logq - logp, -1)))
    np.testing.assert_allclose(losses.gaussian_kl(mu, logvar)[0], mc,
                               rtol=2e-2)


def test_bernoulli_recon_equals_naive_bce():
    logits = jnp.array([[3.0, -2.0, 0.1]])
    x = jnp.array([[1.0, 0.25, 0.0]])
    p = 1 / (1 + np.exp(-np.array([3.0, -2.0, 0.1])))
    xs = np.array([1.0, 0.25, 0.0])
    want = -(xs * np.log(p) + (1 - xs) * np.log(1 - p)).sum()
    np.testing.assert_allclose(losses.bernoulli_recon(logits, x), [want],
                               rtol=1e-5)


def test_accuracy_ignores_inactive_units():
    logits = jnp.array([[5.0, 1.0, 2.0]])
    mask = jnp.array([[False, True, True]])
    np.testing.assert_array_equal(
        losses.accuracy(logits, jnp.array([2]), mask), [1.0])
