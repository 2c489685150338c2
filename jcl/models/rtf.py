"""Replay-through-feedback: one model that classifies and generates.

The BI-R paper's model (van de Ven et al. 2020): an MLP encoder whose top
hidden layer ``h`` feeds both a classifier head and the latent heads (the
mean with a bias, the log-variance without), and a decoder (the feedback
path) back to the input. Options, each a switch of the BI-R ablation:

* ``num_modes``: a Gaussian mixture prior with one learned mode per class
  (means and log-variances, initialised N(0, 1)) instead of N(0, I);
* ``gate_groups`` and ``gate_prop``: context gates, a fixed random binary
  mask per group (a class or a task) for every hidden decoder layer, each
  unit off with probability ``gate_prop`` (Bernoulli, as the references
  draw them; model state, so the proportion may be a traced grid axis);
  the decoder takes per-example group weights (one-hot, or a softmax
  mixture of masks for replayed data).

All layers use PyTorch's default initialisation.

>>> import jax, jax.numpy as jnp
>>> m = rtf_vae((16, 16), latent=4, input_dim=12, num_outputs=3,
...             num_modes=3, gate_groups=3, gate_prop=0.5)
>>> params, state = m.init(jax.random.PRNGKey(0))
>>> sorted(params), params['prior']['mean'].shape
(['classifier', 'decoder', 'encoder', 'prior'], (3, 4))
>>> out, _ = m.apply(params, state, jnp.ones((2, 12)), jnp.zeros(2, int))
>>> sorted(out), out['logits'].shape
(['features', 'logits', 'logvar', 'mu'], (2, 3))
>>> m.views['decode'](params, state, jnp.zeros((2, 4)),
...                   jax.nn.one_hot(jnp.array([0, 2]), 3)).shape
(2, 12)
"""

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jcl.core import losses
from jcl.core.model import Model, make_model
from jcl.models.init import torch_bias_init, torch_kernel_init


def _dense(features, fan_in, bias=True):
    return nn.Dense(features, use_bias=bias, kernel_init=torch_kernel_init,
                    bias_init=torch_bias_init(fan_in))


class Encoder(nn.Module):
    """``x -> (mu, logvar, h)``: ReLU MLP, then the latent heads."""

    hidden: Sequence[int]
    latent: int

    @nn.compact
    def __call__(self, x):
        for units in self.hidden:
            x = nn.relu(_dense(units, x.shape[-1])(x))
        mu = _dense(self.latent, x.shape[-1])(x)
        logvar = _dense(self.latent, x.shape[-1], bias=False)(x)
        return mu, logvar, x


class Decoder(nn.Module):
    """``(z, gates) -> output logits``: ReLU layers mirroring the encoder,
    each multiplied before its nonlinearity by its gate (``[B, units]``
    or ``None``), then the (ungated) output layer."""

    hidden: Sequence[int]
    out_dim: int

    @nn.compact
    def __call__(self, z, gates=None):
        for layer, units in enumerate(reversed(self.hidden)):
            z = _dense(units, z.shape[-1])(z)
            if gates is not None:
                z = z * gates[layer]
            z = nn.relu(z)
        return _dense(self.out_dim, z.shape[-1])(z)


def gate_masks(key, hidden: Sequence[int], groups: int, prop) -> list:
    """Per hidden decoder layer a ``[groups, units]`` 0/1 mask, each entry
    0 with probability ``prop`` (may be traced)."""
    return [jax.random.bernoulli(jax.random.fold_in(key, i), 1.0 - prop,
                                 (groups, units)).astype(jnp.float32)
            for i, units in enumerate(reversed(hidden))]


def rtf_vae(hidden: Sequence[int], *, latent: int, input_dim: int,
            num_outputs: int, output: str = 'sigmoid', num_modes: int = 0,
            gate_groups: int = 0, gate_prop=0.0,
            decoder_hidden=None) -> Model:
    """The replay-through-feedback VAE as a :class:`jcl.core.model.Model`.

    Args:
      hidden: encoder hidden sizes, e.g. ``(400, 400)``; the decoder
        mirrors them.
      latent: size of ``z``. input_dim: size of one input.
      num_outputs: classifier units.
      output: ``'sigmoid'`` (pixels, binary cross-entropy) or
        ``'linear'`` (features, half the squared error).
      num_modes: modes of the mixture prior (``0``: N(0, I)).
      gate_groups: gate masks (classes or tasks; ``0``: no gates).
      gate_prop: the proportion of units each mask closes.
      decoder_hidden: the decoder's hidden sizes in encoder order (it
        runs them reversed); ``None``: ``hidden``, the mirror.

    Views: ``'decode'`` ``(params, state, z, group_weights) -> logits``
    (weights ``[B, gate_groups]`` mix the masks; ignored without gates);
    ``'prior'`` ``params -> (mean, logvar)`` ``[num_modes, latent]`` or
    ``None``; ``'draw'`` ``(params, key, n, modes) -> z`` (from the modes,
    or N(0, I)); ``'sample'`` (unconditional: z ~ N(0, I) or a uniformly
    chosen mode, its own mask); ``'reconstruction'``; ``'to_input'``
    (output logits -> decoded means).
    """
    enc = Encoder(tuple(hidden), latent)
    dec_hidden = tuple(decoder_hidden or hidden)
    dec = Decoder(dec_hidden, input_dim)
    head = _dense(num_outputs, hidden[-1])

    def init(key):
        k_enc, k_dec, k_head, k_prior, k_gate = jax.random.split(key, 5)
        params = {
            'encoder': enc.init(k_enc, jnp.zeros((1, input_dim)))['params'],
            'decoder': dec.init(k_dec, jnp.zeros((1, latent)))['params'],
            'classifier': head.init(k_head, jnp.zeros((1, hidden[-1])))[
                'params']}
        if num_modes:
            mean, logvar = jax.random.normal(k_prior, (2, num_modes, latent))
            params['prior'] = {'mean': mean, 'logvar': logvar}
        state = {}
        if gate_groups:
            state['gates'] = gate_masks(k_gate, dec_hidden, gate_groups,
                                        gate_prop)
        return params, state

    def apply(params, state, x, task, *, train=False):
        del task, train  # unused
        mu, logvar, h = enc.apply({'params': params['encoder']}, x)
        logits = head.apply({'params': params['classifier']}, h)
        return {'logits': logits, 'features': h, 'mu': mu,
                'logvar': logvar}, state

    def decode(params, state, z, weights=None):
        gates = None
        if gate_groups and weights is not None:
            gates = [weights @ m for m in state['gates']]
        return dec.apply({'params': params['decoder']}, z, gates)

    def to_input(out):
        return jax.nn.sigmoid(out) if output == 'sigmoid' else out

    def reconstruction(out, x):
        if output == 'sigmoid':
            return losses.bernoulli_recon(out, x)
        return 0.5 * losses.gaussian_recon(out, x)

    def prior(params):
        if not num_modes:
            return None
        return params['prior']['mean'], params['prior']['logvar']

    def draw(params, key, n, modes=None):
        eps = jax.random.normal(key, (n, latent))
        if not num_modes or modes is None:
            return eps
        mean, logvar = prior(params)
        return mean[modes] + jnp.exp(0.5 * logvar[modes]) * eps

    def sample(params, state, key, n):
        k_mode, k_z = jax.random.split(key)
        mode = jax.random.randint(k_mode, (n,), 0, max(num_modes,
                                                        gate_groups, 1))
        z = draw(params, k_z, n, mode if num_modes else None)
        weights = (jax.nn.one_hot(mode, gate_groups) if gate_groups
                   else None)
        return to_input(decode(params, state, z, weights))

    own_decoder = ('' if dec_hidden == tuple(hidden) else
                   ' decoder ' + '-'.join(map(str, reversed(dec_hidden))))
    name = (f'rtf-vae {input_dim}-{"-".join(map(str, hidden))}-{latent}'
            f'{own_decoder}'
            f'{" gmm" if num_modes else ""}'
            f'{" gated" if gate_groups else ""}')
    return make_model(init=init, apply=apply,
                      views={'decode': decode, 'prior': prior,
                             'draw': draw, 'sample': sample,
                             'to_input': to_input,
                             'reconstruction': reconstruction},
                      name=name)
