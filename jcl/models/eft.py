"""Efficient Feature Transformations (EFT, Verma et al., CVPR 2021).

After a convolution, per task, the feature map ``F`` (``C`` channels) is
replaced by the sum of two grouped convolutions of it, each with a bias:
a 3x3 one (stride 1, padding 1) within groups of ``spatial_group``
channels and a 1x1 one within groups of ``depth_group`` channels, as the
authors' code (vkverma01/EFT, ``ConvAdapt``: groups of 8 and 16, no
residual, no scale) does. The banks ``[T, ...]`` live in the ``'banks'``
collection; each example uses its task's bank, so a batch may mix tasks.
Initialisation is PyTorch's default for ``Conv2d`` (uniform within
``±1/sqrt(fan_in)`` for the kernel and the bias), the same draw for every
task.

>>> import jax, jax.numpy as jnp
>>> x = jax.random.normal(jax.random.PRNGKey(0), (2, 5, 5, 16))
>>> k = jax.random.normal(jax.random.PRNGKey(1), (2, 3, 3, 2, 8, 8))
>>> grouped_conv(x, k).shape
(2, 5, 5, 16)
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

SPATIAL_GROUP = 8    # channels per group of the 3x3 branch (the EFT code)
DEPTH_GROUP = 16     # channels per group of the 1x1 branch


def grouped_conv(x, kernel):
    """A grouped convolution, stride 1, 'same' padding, one kernel per
    example.

    Args:
      x: ``[B, H, W, C]``.
      kernel: ``[B, k, k, G, g, g]`` (``G * g = C``): output channel
        ``o`` of group ``G`` is ``sum_{i, j, c} x[.., G * g + c] *
        kernel[b, i, j, G, c, o]``. PyTorch's ``Conv2d(C, C, k,
        groups=G)`` weight ``w[G * g + o, c, i, j]`` is ``kernel[:, i, j,
        G, c, o]``.
    """
    b, h, w, c = x.shape
    k, groups, g = kernel.shape[1], kernel.shape[3], kernel.shape[4]
    pad = k // 2
    xg = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0))).reshape(
        b, h + 2 * pad, w + 2 * pad, groups, g)
    # the k*k shifted windows side by side, so one contraction over
    # (tap, channel) does the whole conv: one dot per layer (and one per
    # gradient) where a dot per tap made the ResNet's step compile for
    # minutes on XLA:CPU
    taps = jnp.concatenate([xg[:, i:i + h, j:j + w]
                            for i in range(k) for j in range(k)], axis=-1)
    flat = jnp.moveaxis(kernel, 3, 1).reshape(b, groups, k * k * g,
                                              kernel.shape[-1])
    out = jnp.einsum('bhwGc,bGco->bhwGo', taps, flat)
    return out.reshape(b, h, w, c)


def _torch_uniform(fan_in):
    bound = 1.0 / jnp.sqrt(fan_in)
    return lambda key, shape: jax.random.uniform(key, shape, jnp.float32,
                                                 -bound, bound)


class EFT(nn.Module):
    """One EFT layer with a bank per task (see the module docstring).

    Attributes:
      num_banks: ``T``. spatial_group, depth_group: channels per group of
        the 3x3 and the 1x1 branch (the channel count must divide).
    """

    num_banks: int
    spatial_group: int = SPATIAL_GROUP
    depth_group: int = DEPTH_GROUP

    def _branch(self, name, k, g, c):
        if c % g:
            raise ValueError(f'EFT: {c} channels do not split into groups '
                             f'of {g}')
        t, groups = self.num_banks, c // g

        def one(shape, fan_in):
            def init():
                draw = _torch_uniform(fan_in)(self.make_rng('params'), shape)
                return jnp.broadcast_to(draw, (t,) + shape)
            return init
        kernel = self.variable('banks', f'{name}_kernel',
                               one((k, k, groups, g, g), g * k * k))
        bias = self.variable('banks', f'{name}_bias', one((c,), g * k * k))
        return kernel.value, bias.value

    @nn.compact
    def __call__(self, x, task):
        c = x.shape[-1]
        ks, bs = self._branch('spatial', 3, min(self.spatial_group, c), c)
        kd, bd = self._branch('depth', 1, min(self.depth_group, c), c)
        out = (grouped_conv(x, ks[task]) + grouped_conv(x, kd[task]))
        return out + (bs[task] + bd[task])[:, None, None, :]
