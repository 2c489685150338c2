"""One VAE per class: the model of a generative classifier.

``num_classes`` MLP VAEs (:class:`jcl.models.vae.VAE`) stacked on a
leading class axis. The VAE of class ``c`` is trained on the examples of
class ``c`` alone; an input is classified by the class whose VAE gives it
the highest likelihood, estimated by importance sampling with the VAE's
own posterior as the proposal (the NMI 2022 code,
``models/vae.py: estimate_lls``):

``log p_c(x) ~ logsumexp_s [log p(x|z_s) + log p(z_s) - log q(z_s|x)] -
log S``, ``z_s ~ q(z|x) = N(mu, exp(logvar))``, with the decoder's mean
as a unit-variance Gaussian's (``log p(x|z) = -|x - sigmoid(dec(z))|^2 /
2``; the VAE is trained with the Bernoulli likelihood, the code scores
with the Gaussian one) and the normal densities without their ``2 pi``
constants: every class's estimate lacks the same constant, so the
arg-max is that of the true estimate.

>>> import jax, jax.numpy as jnp
>>> m = class_vaes((8,), num_classes=3, latent=2, input_dim=6)
>>> params, state = m.init(jax.random.PRNGKey(0))
>>> params['to_mu']['kernel'].shape         # [class, in, latent]
(3, 8, 2)
>>> x = jnp.full((4, 6), 0.5)
>>> m.views['log_likelihood'](params, x, jax.random.PRNGKey(1), 5).shape
(4, 3)
"""

from typing import Sequence

import jax
import jax.numpy as jnp

from jcl.core.model import Model, make_model
from jcl.models.vae import VAE, negative_elbo, reparameterize


def log_normal(z, mu, logvar):
    """``log N(z; mu, exp(logvar))`` summed over the last axis, without
    the ``-log(2 pi) / 2`` per dimension (the reference's
    ``log_Normal_diag``)."""
    return -0.5 * jnp.sum(logvar + jnp.square(z - mu) / jnp.exp(logvar),
                          -1)


def importance_log_likelihood(net: VAE, params, x, key, samples: int):
    """One VAE's importance-sampled ``log p(x)`` (up to a constant).

    Args:
      net: the VAE module. params: its parameters. x: ``[B, D]`` inputs
        in [0, 1]. key: PRNG key. samples: ``S`` importance samples
        (static).

    Returns:
      ``[B]`` estimates, ``logsumexp`` over the samples minus ``log S``,
      accumulated one sample at a time (memory ``[B, D]``).
    """
    mu, logvar = net.apply({'params': params}, x, method=VAE.encode)

    def one(carry, k):
        top, total = carry
        z = reparameterize(k, mu, logvar)
        mean = jax.nn.sigmoid(net.apply({'params': params}, z,
                                        method=VAE.decode_logits))
        ll = (-0.5 * jnp.sum(jnp.square(x - mean), -1)
              - 0.5 * jnp.sum(jnp.square(z), -1)
              - log_normal(z, mu, logvar))
        new_top = jnp.maximum(top, ll)
        total = total * jnp.exp(top - new_top) + jnp.exp(ll - new_top)
        return (new_top, total), None

    start = (jnp.full(x.shape[:1], -jnp.inf), jnp.zeros(x.shape[:1]))
    (top, total), _ = jax.lax.scan(one, start,
                                   jax.random.split(key, samples))
    return top + jnp.log(total) - jnp.log(float(samples))


def class_vaes(hidden: Sequence[int], *, num_classes: int, latent: int,
               input_dim: int) -> Model:
    """``num_classes`` VAEs ``input_dim - hidden - latent - hidden[::-1] -
    input_dim`` (sigmoid outputs, PyTorch's initialisation).

    Args:
      hidden: each VAE's encoder hidden sizes (the NMI code on split
        MNIST: ``(85, 85)``).
      num_classes: one VAE per class (output unit).
      latent: size of ``z`` (the NMI code: 5).
      input_dim: size of one flattened input.

    Outputs of ``apply``: ``'logits'`` ``[B, C]``; in evaluation mode each
    class's single-sample estimate at the posterior mean (the code's
    ``S='mean'``: ``log p(x|mu) + log p(mu) - log q(mu|x)``), in training
    mode zeros (a generative classifier's loss uses the views).

    Views:
      ``'class_losses'``: ``(params, xs, key, rows) -> [R, K]`` the
      per-example negative ELBO per input dimension (Bernoulli
      reconstruction + KL, one posterior sample; the training loss) of
      the inputs ``xs[r]`` (``[R, K, D]``) under the VAE of ``rows[r]``
      (int ``[R]``, may be traced); ``'log_likelihood'``: ``(params, x,
      key, samples) -> [B, C]`` the importance-sampled estimate of every
      class.
    """
    net = VAE(tuple(hidden), latent, input_dim, 'sigmoid')

    def one_init(key):
        return net.init(key, jnp.zeros((1, input_dim)))['params']

    def init(key):
        return jax.vmap(one_init)(jax.random.split(key, num_classes)), {}

    def mean_estimate(p, x):
        mu, logvar = net.apply({'params': p}, x, method=VAE.encode)
        mean = net.apply({'params': p}, mu, method=VAE.decode)
        return (-0.5 * jnp.sum(jnp.square(x - mean), -1)
                - 0.5 * jnp.sum(jnp.square(mu), -1)
                + 0.5 * jnp.sum(logvar, -1))

    def apply(params, state, x, task, *, train=False):
        del task  # unused
        if train:
            return {'logits': jnp.zeros((x.shape[0], num_classes))}, state
        return {'logits': jax.vmap(mean_estimate, (0, None), 1)(params, x)
                }, state

    def class_losses(params, xs, key, rows):
        rows = jnp.asarray(rows)
        some = jax.tree.map(lambda a: a[rows], params)

        def one(p, x, k):
            mu, logvar = net.apply({'params': p}, x, method=VAE.encode)
            z = reparameterize(k, mu, logvar)
            out = net.apply({'params': p}, z, method=VAE.decode_logits)
            return negative_elbo(out, x, mu, logvar)

        return jax.vmap(one)(some, xs, jax.random.split(key, rows.shape[0]))

    def log_likelihood(params, x, key, samples):
        keys = jax.random.split(key, num_classes)
        return jax.vmap(
            lambda p, k: importance_log_likelihood(net, p, x, k, samples),
            out_axes=1)(params, keys)

    return make_model(init=init, apply=apply,
                      views={'class_losses': class_losses,
                             'log_likelihood': log_likelihood},
                      name=f'{num_classes} class VAEs {input_dim}-'
                           f'{"-".join(map(str, hidden))}-{latent}')
