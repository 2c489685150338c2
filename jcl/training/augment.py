"""Data augmentation inside the compiled step (pre-training only: the
continual-learning protocols of the references use none).

>>> import jax, jax.numpy as jnp
>>> x = jnp.arange(2 * 4 * 4 * 1, dtype=jnp.float32).reshape(2, 4, 4, 1)
>>> crop_and_flip(jax.random.PRNGKey(0), x, pad=1).shape
(2, 4, 4, 1)
"""

import jax
import jax.numpy as jnp


def crop_and_flip(key, x, pad: int = 4):
    """Random crops of the images ``[B, H, W, C]`` zero-padded by ``pad``
    on every side (the CIFAR recipe: ``RandomCrop(32, padding=4)``) and a
    random horizontal flip of each, independently per image."""
    b, h, w, _ = x.shape
    k_y, k_x, k_f = jax.random.split(key, 3)
    padded = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    dy = jax.random.randint(k_y, (b,), 0, 2 * pad + 1)
    dx = jax.random.randint(k_x, (b,), 0, 2 * pad + 1)

    def crop(img, i, j):
        return jax.lax.dynamic_slice(img, (i, j, 0), (h, w, img.shape[-1]))

    out = jax.vmap(crop)(padded, dy, dx)
    flip = jax.random.bernoulli(k_f, 0.5, (b,))
    return jnp.where(flip[:, None, None, None], out[:, :, ::-1], out)
