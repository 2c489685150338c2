"""How good is a generator: metrics on any model's samples (BI-R Fig. 9).

The BI-R paper measures its generators in the embedding of a classifier
trained on the same data (instead of Inception), so that pixel- and
feature-level replay share one embedding. Each function takes arrays
(class probabilities, embeddings) and works for any generator:

* :func:`inception_score`: ``exp E_x KL(p(y|x) || p(y))``;
* :func:`frechet_distance` / :func:`fid`: the Fréchet distance between
  Gaussians fitted to two sets of embeddings;
* :func:`precision_recall`: the precision/recall curve of two sets
  (Sajjadi et al. 2018: histograms over k-means clusters of both);
* :func:`importance_log_likelihood`: ``log p(x)`` of a VAE by importance
  sampling from its posterior;
* :func:`reconstruction_error`: the reconstruction loss through the
  posterior mean;
* :func:`class_samples`: decoded samples of given classes (each from
  its prior mode and gate where the model has them), the set the other
  functions measure.

>>> import jax.numpy as jnp
>>> round(float(inception_score(jnp.full((8, 4), 0.25))), 4)   # uniform
1.0
>>> round(float(inception_score(jnp.eye(4))), 4)   # confident, balanced
4.0
"""

import jax
import jax.numpy as jnp

from jcl.core.losses import log_normal
from jcl.core.model import Model


def inception_score(probs, eps=1e-12):
    """``exp(mean_x KL(p(y|x) || p(y)))`` of class probabilities
    ``[N, C]`` (rows sum to 1); between 1 and ``C``."""
    marginal = jnp.mean(probs, 0)
    kl = jnp.sum(probs * (jnp.log(probs + eps) - jnp.log(marginal + eps)),
                 -1)
    return jnp.exp(jnp.mean(kl))


def _sqrtm_psd(a):
    w, v = jnp.linalg.eigh((a + a.T) / 2)
    return (v * jnp.sqrt(jnp.maximum(w, 0.0))) @ v.T


def frechet_distance(mu1, cov1, mu2, cov2):
    """``|mu1 - mu2|^2 + Tr(C1 + C2 - 2 (C1^1/2 C2 C1^1/2)^1/2)``, the
    Fréchet (2-Wasserstein) distance between two Gaussians."""
    s1 = _sqrtm_psd(cov1)
    cross = _sqrtm_psd(s1 @ cov2 @ s1)
    return (jnp.sum(jnp.square(mu1 - mu2)) + jnp.trace(cov1) +
            jnp.trace(cov2) - 2.0 * jnp.trace(cross))


def fid(a, b):
    """The Fréchet distance between Gaussians fitted to embeddings ``a``
    ``[N, F]`` and ``b`` ``[M, F]`` (means, covariances with ``N - 1``)."""
    def stats(x):
        return jnp.mean(x, 0), jnp.cov(x, rowvar=False)
    return frechet_distance(*stats(a), *stats(b))


def kmeans(key, x, k: int, iters: int = 20):
    """Lloyd's k-means: ``(centres [k, F], assignment [N])``, centres
    started at ``k`` distinct random points."""
    centres = x[jax.random.choice(key, x.shape[0], (k,), replace=False)]

    def step(c, _):
        d = jnp.sum(jnp.square(x[:, None] - c[None]), -1)
        a = jnp.argmin(d, -1)
        onehot = jax.nn.one_hot(a, k)
        counts = onehot.sum(0)
        new = (onehot.T @ x) / jnp.maximum(counts, 1)[:, None]
        return jnp.where(counts[:, None] > 0, new, c), None

    centres, _ = jax.lax.scan(step, centres, None, length=iters)
    return centres, jnp.argmin(jnp.sum(jnp.square(x[:, None] -
                                                  centres[None]), -1), -1)


def precision_recall(key, real, generated, *, clusters: int = 20,
                     angles: int = 1001):
    """The precision/recall curve of ``generated`` against ``real``
    (Sajjadi et al., NeurIPS 2018): cluster the union of both embeddings,
    compare the two cluster histograms ``p`` (real) and ``q``
    (generated); for slopes ``l = tan(angle)``, precision ``sum min(l p,
    q)`` and recall ``sum min(p, q / l)``.

    Returns:
      ``(precision [angles], recall [angles])``; identical sets reach
      (1, 1), disjoint ones stay at 0.
    """
    both = jnp.concatenate([real, generated])
    _, a = kmeans(key, both, clusters)
    n = real.shape[0]
    p = jnp.bincount(a[:n], length=clusters) / n
    q = jnp.bincount(a[n:], length=clusters) / generated.shape[0]
    slopes = jnp.tan(jnp.linspace(1e-6, jnp.pi / 2 - 1e-6, angles))
    precision = jnp.sum(jnp.minimum(slopes[:, None] * p, q), -1)
    recall = precision / slopes
    return jnp.clip(precision, 0, 1), jnp.clip(recall, 0, 1)


def importance_log_likelihood(model: Model, params, model_state, x, key,
                              samples: int = 100, gates=None):
    """``log p(x)`` per example, estimated with ``samples`` draws from the
    posterior: ``logsumexp_s [log p(x|z_s) + log p(z_s) - log q(z_s|x)] -
    log S`` (the prior N(0, I), or the model's mixture with equal
    weights; ``log p(x|z)`` is minus the model's reconstruction loss, so
    a Bernoulli likelihood for pixels). Returns ``[B]`` (nats)."""
    out, _ = model.apply(params, model_state, x, jnp.zeros(x.shape[0], int))
    mu, logvar = out['mu'], out['logvar']
    prior = model.views['prior'](params) if 'prior' in model.views else None

    def one(k):
        z = mu + jnp.exp(0.5 * logvar) * jax.random.normal(k, mu.shape)
        rec = -model.views['reconstruction'](
            model.views['decode'](params, model_state, z, gates), x)
        log_q = log_normal(z, mu, logvar)
        if prior is None:
            log_p = -0.5 * jnp.sum(jnp.square(z), -1)
        else:
            mean, lv = prior
            log_p = jax.scipy.special.logsumexp(
                log_normal(z[:, None], mean[None], lv[None]), -1) - \
                jnp.log(mean.shape[0])
        return rec + log_p - log_q

    # (the 2 pi constants of log p(z) and log q(z|x) cancel)
    per = jax.lax.map(one, jax.random.split(key, samples))   # [S, B]
    return jax.scipy.special.logsumexp(per, 0) - jnp.log(samples)


def reconstruction_error(model: Model, params, model_state, x, gates=None):
    """The reconstruction loss per example of ``x`` decoded from its
    posterior mean (no sampling). Returns ``[B]``."""
    out, _ = model.apply(params, model_state, x, jnp.zeros(x.shape[0], int))
    return model.views['reconstruction'](
        model.views['decode'](params, model_state, out['mu'], gates), x)



def gate_masks_of(model_state):
    """The decoder's per-group gate masks in a model state (a replay-
    through-feedback model's, or a paired generator's), or ``None``."""
    gates = model_state.get('gates')
    if gates is None:
        gates = model_state.get('generator', {}).get('gates')
    return gates


def class_samples(model: Model, params, model_state, key, classes, n: int,
                  group_of=lambda c: c):
    """Decoded samples of each class: ``[len(classes), n, D]``.

    Each class ``c`` draws from its prior mode where the model has a
    mixture prior (else from N(0, I)) and decodes with the gate of group
    ``group_of(c)`` where the decoder is gated (a class, or its task).
    """
    prior = model.views['prior'](params)
    gates = gate_masks_of(model_state)
    rows = []
    for c in classes:
        k = jax.random.fold_in(key, int(c))
        modes = jnp.full((n,), c) if prior is not None else None
        z = model.views['draw'](params, k, n, modes)
        w = None
        if gates is not None:
            w = jax.nn.one_hot(jnp.full((n,), group_of(c)),
                               gates[0].shape[0])
        rows.append(model.views['to_input'](
            model.views['decode'](params, model_state, z, w)))
    return jnp.stack(rows)
