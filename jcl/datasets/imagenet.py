"""ImageNet's input normalisation, as torchvision's ``ToTensor`` and
``Normalize`` apply it (the CLR reference's transform), in one place for
the pre-training, the task sequences and the image-folder loader.

>>> import numpy as np
>>> x = imagenet_prepare(np.zeros((2, 4, 4), np.uint8))
>>> x.shape, [round(float(v), 4) for v in x[0, 0, 0]]
((2, 4, 4, 3), [-2.1179, -2.0357, -1.8044])
"""

import jax.numpy as jnp

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def imagenet_prepare(x):
    """uint8 ``[B, H, W]``, ``[B, H, W, 1]`` or ``[B, H, W, 3]`` ->
    float32 ``[B, H, W, 3]``: ``x / 255``, normalised with ImageNet's
    channel statistics (grey replicated to 3 channels)."""
    x = x.astype(jnp.float32) / 255.0
    if x.ndim == 3:
        x = x[..., None]
    if x.shape[-1] == 1:
        x = jnp.broadcast_to(x, x.shape[:-1] + (3,))
    return (x - jnp.asarray(IMAGENET_MEAN)) / jnp.asarray(IMAGENET_STD)
