"""The MLP variational autoencoder used as the generator of generative
replay (DGR), mirroring the classifier's MLP.

Encoder ``in -> h1 -> h2`` (ReLU) with a mean head (with bias) and a
log-variance head (without bias); decoder ``z -> h2 -> h1 -> out`` (ReLU
on the hidden layers). All layers use PyTorch's default initialisation.

A generator is a :class:`jcl.core.model.Model` whose outputs are the
posterior (``'mu'``, ``'logvar'``) and whose views decode and sample;
:func:`jcl.models.paired.paired` puts one beside a classifier.
"""

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jcl.core import losses
from jcl.core.model import Model, make_model
from jcl.models.init import torch_bias_init, torch_kernel_init

OUTPUTS = ('sigmoid', 'linear')


def _dense(features, fan_in):
    """A dense layer with PyTorch's default initialisation."""
    return nn.Dense(features, kernel_init=torch_kernel_init,
                    bias_init=torch_bias_init(fan_in))


class VAE(nn.Module):
    """An MLP VAE whose decoder returns output logits.

    Attributes:
      hidden: encoder hidden sizes, e.g. ``(400, 400)``; the decoder uses
        them in reverse.
      latent: size of ``z``.
      out_dim: input (and reconstruction) size.
      output: ``'sigmoid'`` (pixels in [0, 1], Bernoulli likelihood) or
        ``'linear'`` (real-valued features, Gaussian likelihood).
    """

    hidden: Sequence[int] = (400, 400)
    latent: int = 100
    out_dim: int = 784
    output: str = 'sigmoid'

    def setup(self):
        if self.output not in OUTPUTS:
            raise ValueError(f'output must be one of {OUTPUTS}, got '
                             f'{self.output!r}')
        enc = (self.out_dim,) + tuple(self.hidden)
        dec = (self.latent,) + tuple(reversed(self.hidden))
        self.enc = [_dense(u, f) for f, u in zip(enc, enc[1:])]
        self.to_mu = _dense(self.latent, enc[-1])
        self.to_logvar = nn.Dense(self.latent, use_bias=False,
                                  kernel_init=torch_kernel_init)
        self.dec = [_dense(u, f) for f, u in zip(dec, dec[1:])]
        self.to_out = _dense(self.out_dim, dec[-1])

    def encode(self, x):
        """Args: x ``[B, out_dim]``. Returns ``(mu, logvar)``, each
        ``[B, latent]``."""
        mu, logvar, _ = self.encode_all(x)
        return mu, logvar

    def encode_all(self, x):
        """``(mu, logvar, h)`` with ``h`` the top hidden layer."""
        for layer in self.enc:
            x = nn.relu(layer(x))
        return self.to_mu(x), self.to_logvar(x), x

    def decode_logits(self, z):
        """Args: z ``[B, latent]``. Returns pre-activation outputs
        ``[B, out_dim]``."""
        for layer in self.dec:
            z = nn.relu(layer(z))
        return self.to_out(z)

    def decode(self, z):
        """Decoded means: ``sigmoid(logits)`` or the linear output."""
        logits = self.decode_logits(z)
        return nn.sigmoid(logits) if self.output == 'sigmoid' else logits

    def __call__(self, x):
        """Reconstruction logits from the posterior mean (used by init)."""
        mu, _ = self.encode(x)
        return self.decode_logits(mu)


def reparameterize(key, mu, logvar):
    """One sample ``z = mu + exp(logvar / 2) * eps``, ``eps ~ N(0, I)``.

    Args:
      key: PRNG key. mu, logvar: ``[B, latent]``.

    Returns:
      ``[B, latent]``, differentiable in ``mu`` and ``logvar``.

    >>> z = reparameterize(jax.random.PRNGKey(0), jnp.zeros((2, 4)),
    ...                    jnp.zeros((2, 4)))
    >>> z.shape
    (2, 4)
    """
    eps = jax.random.normal(key, mu.shape, mu.dtype)
    return mu + jnp.exp(0.5 * logvar) * eps


def negative_elbo(out, x, mu, logvar, output='sigmoid'):
    """Per-example negative ELBO divided by the input size ``D``.

    ``recon / D + KL(N(mu, exp(logvar)) || N(0, I)) / D``, where ``recon``
    is the binary cross-entropy with logits (``output='sigmoid'``) or half
    the squared error (``output='linear'``), summed over inputs. This is
    the reference's mean-over-pixels reconstruction plus KL per pixel.

    Args:
      out: decoder outputs ``[B, D]`` (logits for a sigmoid output).
      x: targets ``[B, D]`` (in [0, 1] for a sigmoid output).
      mu, logvar: posterior parameters ``[B, latent]``.
      output: ``'sigmoid'`` or ``'linear'``.

    Returns:
      ``[B]`` losses.

    BCE of ``p = 1/2`` and a zero KL give ``log 2`` per example:

    >>> l = negative_elbo(jnp.zeros((2, 6)), jnp.ones((2, 6)) / 2,
    ...                   jnp.zeros((2, 3)), jnp.zeros((2, 3)))
    >>> [round(float(v), 4) for v in l]
    [0.6931, 0.6931]
    """
    dim = x.shape[-1]
    if output == 'sigmoid':
        recon = losses.bernoulli_recon(out, x)
    else:
        recon = 0.5 * losses.gaussian_recon(out, x)
    return (recon + losses.gaussian_kl(mu, logvar)) / dim


def vae_model(hidden: Sequence[int], *, latent: int, input_dim: int,
              output: str = 'sigmoid') -> Model:
    """The MLP VAE ``input_dim - hidden - latent - hidden[::-1] -
    input_dim`` as a :class:`jcl.core.model.Model` (a generator: its outputs
    are the posterior ``'mu'``, ``'logvar'`` and the encoder's top hidden
    layer ``'features'``; it has no ``'logits'``).

    Args:
      hidden: encoder hidden sizes, e.g. ``(400, 400)``.
      latent: size of ``z`` (the references use 100).
      input_dim: size of one (flattened) input.
      output: ``'sigmoid'`` (pixels) or ``'linear'`` (features).

    Views:
      ``'decode'``: ``(params, state, z, gates=None) -> [B, D]`` output
      logits (no gates: ``gates`` is ignored); ``'draw'``: ``(params,
      key, n, modes=None) -> z`` from the prior N(0, I); ``'prior'``:
      ``params -> None``; ``'to_input'``: logits -> decoded means;
      ``'sample'``: ``(params, state, key, n) -> [n, D]`` decoded means of
      ``z ~ N(0, I)``; ``'reconstruction'``: ``(logits, x) -> [B]`` the
      summed negative log-likelihood (BCE, or half the squared error).

    >>> import jax
    >>> gen = vae_model((16,), latent=4, input_dim=12)
    >>> g, s = gen.init(jax.random.PRNGKey(0))
    >>> x = gen.views['sample'](g, s, jax.random.PRNGKey(1), 8)
    >>> x.shape, bool((x >= 0).all() & (x <= 1).all())
    ((8, 12), True)
    """
    net = VAE(tuple(hidden), latent, input_dim, output)

    def init(key):
        return net.init(key, jnp.zeros((1, input_dim)))['params'], {}

    def apply(params, state, x, task, *, train=False):
        del task, train  # unused
        mu, logvar, h = net.apply({'params': params}, x,
                                  method=VAE.encode_all)
        return {'mu': mu, 'logvar': logvar, 'features': h}, state

    def decode(params, state, z, gates=None):
        del state, gates  # unused
        return net.apply({'params': params}, z, method=VAE.decode_logits)

    def draw(params, key, n, modes=None):
        del params, modes  # unused: N(0, I)
        return jax.random.normal(key, (n, latent))

    def to_input(logits):
        return jax.nn.sigmoid(logits) if output == 'sigmoid' else logits

    def sample(params, state, key, n):
        return to_input(decode(params, state, draw(params, key, n)))

    def reconstruction(logits, x):
        if output == 'sigmoid':
            return losses.bernoulli_recon(logits, x)
        return 0.5 * losses.gaussian_recon(logits, x)

    return make_model(init=init, apply=apply,
                      views={'decode': decode, 'sample': sample,
                             'draw': draw, 'prior': lambda params: None,
                             'to_input': to_input,
                             'reconstruction': reconstruction},
                      name=f'vae {input_dim}-{"-".join(map(str, hidden))}'
                           f'-{latent}')
