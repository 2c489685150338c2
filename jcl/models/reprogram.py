"""Channel-wise lightweight reprogramming (CLR, Ge et al., ICCV 2023): a
depthwise 3x3 convolution (one 3x3 kernel per channel, stride 1, padding
1, no bias) initialised to the identity, one kernel bank per task.

:func:`depthwise3x3` takes one kernel ``[3, 3, C]`` for the whole batch
or one per example ``[B, 3, 3, C]`` (each example's task picks its bank).
Two implementations give the same numbers (tested): ``'shift'``, nine
shifted multiply-adds, and ``'lax'``, XLA's grouped convolution. On
XLA:CPU the grouped convolution measured 3-4x slower than the shifts,
so the CPU uses ``'shift'`` and accelerators ``'lax'``. With the Dirac
initialisation the shift form returns its input bit for bit (every other
tap adds an exact zero), so a freshly reprogrammed network *is* its
backbone.

>>> import jax, jax.numpy as jnp
>>> x = jax.random.normal(jax.random.PRNGKey(0), (2, 5, 5, 4))
>>> k = dirac_kernel(4)
>>> bool((depthwise3x3(x, k, 'shift') == x).all())
True
>>> w = jax.random.normal(jax.random.PRNGKey(1), (2, 3, 3, 4))
>>> a, b = depthwise3x3(x, w, 'shift'), depthwise3x3(x, w, 'lax')
>>> bool(jnp.allclose(a, b, atol=1e-5))
True
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

DW_IMPLS = ('shift', 'lax')
KERNEL_SIZE = 3


def default_dw_impl() -> str:
    """``'shift'`` on the CPU, ``'lax'`` on accelerators."""
    return 'shift' if jax.default_backend() == 'cpu' else 'lax'


def dirac_kernel(channels: int, dtype=jnp.float32):
    """The identity depthwise kernel ``[3, 3, C]`` (PyTorch's
    ``nn.init.dirac_`` with ``groups=C``): 1 at the centre tap."""
    return jnp.zeros((3, 3, channels), dtype).at[1, 1].set(1)


def _shift(x, kernel):
    h, w = x.shape[1], x.shape[2]
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    per_example = kernel.ndim == 4
    out = None
    for i in range(3):
        for j in range(3):
            tap = kernel[:, i, j, None, None, :] if per_example \
                else kernel[i, j]
            term = xp[:, i:i + h, j:j + w, :] * tap
            out = term if out is None else out + term
    return out


def _lax_one(x, kernel):
    """``x`` ``[B, H, W, C]``, one kernel ``[3, 3, C]``."""
    c = x.shape[-1]
    return jax.lax.conv_general_dilated(
        x, kernel[:, :, None, :], (1, 1), ((1, 1), (1, 1)),
        dimension_numbers=('NHWC', 'HWIO', 'NHWC'), feature_group_count=c)


def depthwise3x3(x, kernel, impl: str | None = None):
    """Depthwise 3x3 convolution, stride 1, padding 1, no bias.

    Args:
      x: ``[B, H, W, C]``.
      kernel: ``[3, 3, C]`` for every example, or ``[B, 3, 3, C]`` one per
        example. PyTorch's depthwise weight ``[C, 1, 3, 3]`` is
        ``kernel[i, j, c] = weight[c, 0, i, j]``.
      impl: ``'shift'``, ``'lax'`` or ``None`` (the backend's faster one).
    """
    impl = impl or default_dw_impl()
    if impl == 'shift':
        return _shift(x, kernel)
    if impl != 'lax':
        raise ValueError(f'impl must be one of {DW_IMPLS}, got {impl!r}')
    if kernel.ndim == 3:
        return _lax_one(x, kernel)
    return jax.vmap(lambda xi, ki: _lax_one(xi[None], ki)[0])(x, kernel)


class Reprogram(nn.Module):
    """A CLR layer: per task a depthwise 3x3 kernel, Dirac-initialised.

    The kernels ``[T, 3, 3, C]`` live in the ``'banks'`` collection (one
    bank per task, trained only by its task); each example uses the bank
    of its task.

    Attributes:
      num_banks: ``T``, the number of tasks.
      impl: see :func:`depthwise3x3`.
    """

    num_banks: int
    impl: str | None = None

    @nn.compact
    def __call__(self, x, task):
        c = x.shape[-1]
        kernel = self.variable(
            'banks', 'kernel',
            lambda: jnp.broadcast_to(dirac_kernel(c, x.dtype),
                                     (self.num_banks, 3, 3, c)))
        return depthwise3x3(x, kernel.value[task], self.impl)
