"""PyTorch's ``BatchNorm2d`` in Flax, with optional per-task banks.

PyTorch's conventions, so imported torchvision statistics mean the same
here: ``momentum`` 0.1 weighs the new batch, the running variance is the
unbiased batch variance, the batch is normalised with the biased one,
``eps`` 1e-5.

With ``num_banks = T`` the affine parameters ``[T, C]`` live in the
``'banks'`` collection and the statistics ``[T, C]`` in ``'batch_stats'``:
each example is normalised with its task's statistics and parameters. In
training mode a batch's statistics are taken per task (a batch of one
task, the usual case, is ordinary BatchNorm) and only the banks of the
tasks present are updated, so training one task leaves every other
task's bank untouched.

>>> import jax, jax.numpy as jnp
>>> bn = TorchBatchNorm(num_banks=3)
>>> x = jax.random.normal(jax.random.PRNGKey(0), (4, 2, 2, 5))
>>> task = jnp.full(4, 1)
>>> v = bn.init(jax.random.PRNGKey(1), x, task, train=False)
>>> v['banks']['scale'].shape, v['batch_stats']['mean'].shape
((3, 5), (3, 5))
>>> y, new = bn.apply(v, x, task, train=True, mutable=['batch_stats'])
>>> moved = jnp.abs(new['batch_stats']['mean'] - 0).sum(-1) > 0
>>> moved.tolist()                    # only task 1's statistics moved
[False, True, False]
"""

import flax.linen as nn
import jax
import jax.numpy as jnp


class TorchBatchNorm(nn.Module):
    """BatchNorm over ``[B, H, W, C]`` (or ``[B, C]``) with PyTorch's
    semantics and optional per-task banks.

    Attributes:
      num_banks: 0 for one shared set (``'params'``: ``scale``, ``bias``
        ``[C]``), else ``T`` banks (``'banks'``: ``[T, C]``).
      momentum: PyTorch's momentum (the new batch's weight).
      epsilon: added to the variance.
      frozen_stats: always normalise with the running statistics, also
        in training mode (a frozen backbone's BatchNorm).
    """

    num_banks: int = 0
    momentum: float = 0.1
    epsilon: float = 1e-5
    frozen_stats: bool = False

    @nn.compact
    def __call__(self, x, task, train: bool):
        c, banks = x.shape[-1], self.num_banks
        shape = (banks, c) if banks else (c,)
        col = 'banks' if banks else 'params'
        scale = self.variable(col, 'scale', jnp.ones, shape, x.dtype)
        bias = self.variable(col, 'bias', jnp.zeros, shape, x.dtype)
        mean = self.variable('batch_stats', 'mean', jnp.zeros, shape,
                             x.dtype)
        var = self.variable('batch_stats', 'var', jnp.ones, shape, x.dtype)
        lead = (slice(None),) + (None,) * (x.ndim - 2)

        def pick(a):
            """Per example ``[B, 1, .., C]`` (banks) or ``[C]``."""
            return a[task][lead] if banks else a

        if not train or self.frozen_stats:
            mu, v = pick(mean.value), pick(var.value)
        else:
            mu, v, batch_mean, batch_var, n = _batch_stats(
                x, task if banks else jnp.zeros(x.shape[0], jnp.int32),
                max(banks, 1))
            if banks:
                mu, v = mu[lead], v[lead]
            else:
                mu, v = mu[0], v[0]
            if not self.is_initializing():
                seen = (n > 0)[:, None]
                unbiased = batch_var * (n / jnp.maximum(n - 1, 1))[:, None]
                m = self.momentum
                new_mean = jnp.where(seen, (1 - m) * _rows(mean.value)
                                     + m * batch_mean, _rows(mean.value))
                new_var = jnp.where(seen, (1 - m) * _rows(var.value)
                                    + m * unbiased, _rows(var.value))
                mean.value = new_mean.reshape(shape)
                var.value = new_var.reshape(shape)
        mul = jax.lax.rsqrt(v + self.epsilon) * pick(scale.value)
        return (x - mu) * mul + pick(bias.value)


def _rows(a):
    return a if a.ndim == 2 else a[None]


def _batch_stats(x, task, groups):
    """Each group's (task's) mean and biased variance over the batch and
    space: per example ``[B, C]`` (``[G, C]`` when there is one group),
    per group ``[G, C]``, and the counts ``[G]``."""
    axes = tuple(range(1, x.ndim - 1))
    per_ex = x.shape[1:-1]
    size = 1
    for d in per_ex:
        size *= d
    if groups == 1:
        m = x.mean((0,) + axes)
        d = x - m
        v = (d * d).mean((0,) + axes)
        n = jnp.full((1,), x.shape[0] * size, x.dtype)
        return m[None], v[None], m[None], v[None], n
    onehot = jax.nn.one_hot(task, groups, dtype=x.dtype)       # [B, G]
    n = onehot.sum(0) * size
    inv = 1.0 / jnp.maximum(n, 1)[:, None]
    group_mean = jnp.einsum('bg,bc->gc', onehot, x.sum(axes)) * inv
    mu = group_mean[task]
    d = x - mu[(slice(None),) + (None,) * len(axes)]
    group_var = jnp.einsum('bg,bc->gc', onehot, (d * d).sum(axes)) * inv
    return mu, group_var[task], group_mean, group_var, n
