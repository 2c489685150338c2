"""The MLP variational autoencoder used as the generator of generative
replay (DGR), mirroring the classifier's MLP.

Encoder ``in -> h1 -> h2`` (ReLU) with a mean head (with bias) and a
log-variance head (without bias); decoder ``z -> h2 -> h1 -> out`` (ReLU
on the hidden layers). All layers use PyTorch's default initialisation.

Example::

    gen = vae_generator((400, 400), latent=100, input_dim=784)
    params = {'generator': gen.init(key)}
    x_rep = gen.sample(params['generator'], key, 128)       # [128, 784]
    nelbo = gen.loss(params['generator'], x, key)           # [B]
"""

from typing import Callable, NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jcl import losses
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
        for layer in self.enc:
            x = nn.relu(layer(x))
        return self.to_mu(x), self.to_logvar(x)

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


class Generator(NamedTuple):
    """An unconditional generator as pure functions of its parameters.

    Attributes:
      init: ``key -> params['generator']``.
      encode: ``(gparams, x) -> (mu, logvar)``, each ``[B, latent]``.
      decode_logits: ``(gparams, z) -> [B, D]`` output logits.
      sample: ``(gparams, key, n) -> [n, D]`` decoded means of
        ``z ~ N(0, I)`` (in [0, 1] for a sigmoid output).
      loss: ``(gparams, x, key) -> [B]`` negative ELBO per input dimension.
    """

    init: Callable
    encode: Callable
    decode_logits: Callable
    sample: Callable
    loss: Callable


def reparameterize(key, mu, logvar):
    """One sample ``z = mu + exp(logvar / 2) * eps``, ``eps ~ N(0, I)``.

    Args:
      key: PRNG key. mu, logvar: ``[B, latent]``.

    Returns:
      ``[B, latent]``, differentiable in ``mu`` and ``logvar``.

    Example::

        z = reparameterize(key, jnp.zeros((2, 4)), jnp.zeros((2, 4)))
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

    Example::

        l = negative_elbo(jnp.zeros((2, 6)), jnp.ones((2, 6)) / 2,
                          jnp.zeros((2, 3)), jnp.zeros((2, 3)))
        # = log(2) each: BCE of p = 1/2, and a zero KL
    """
    dim = x.shape[-1]
    if output == 'sigmoid':
        recon = losses.bernoulli_recon(out, x)
    else:
        recon = 0.5 * losses.gaussian_recon(out, x)
    return (recon + losses.gaussian_kl(mu, logvar)) / dim


def vae_generator(hidden: Sequence[int], *, latent: int, input_dim: int,
                  output: str = 'sigmoid') -> Generator:
    """The MLP VAE ``input_dim - hidden - latent - hidden[::-1] -
    input_dim`` as a :class:`Generator`.

    Args:
      hidden: encoder hidden sizes, e.g. ``(400, 400)``.
      latent: size of ``z`` (the references use 100).
      input_dim: size of one (flattened) input.
      output: ``'sigmoid'`` (pixels) or ``'linear'`` (features).

    Returns:
      A :class:`Generator`.

    Example::

        gen = vae_generator((16,), latent=4, input_dim=12)
        g = gen.init(jax.random.PRNGKey(0))
        x = gen.sample(g, jax.random.PRNGKey(1), 8)     # [8, 12] in [0, 1]
        l = gen.loss(g, x, jax.random.PRNGKey(2))       # [8]
    """
    net = VAE(tuple(hidden), latent, input_dim, output)

    def init(key):
        return net.init(key, jnp.zeros((1, input_dim)))['params']

    def encode(gparams, x):
        return net.apply({'params': gparams}, x, method=VAE.encode)

    def decode_logits(gparams, z):
        return net.apply({'params': gparams}, z, method=VAE.decode_logits)

    def sample(gparams, key, n):
        z = jax.random.normal(key, (n, latent))
        return net.apply({'params': gparams}, z, method=VAE.decode)

    def loss(gparams, x, key):
        mu, logvar = encode(gparams, x)
        out = decode_logits(gparams, reparameterize(key, mu, logvar))
        return negative_elbo(out, x, mu, logvar, output)

    return Generator(init, encode, decode_logits, sample, loss)
