"""Supermasks (SupSup, Wortsman et al., NeurIPS 2020): a task's binary
mask over frozen weights, the top fraction of its scores by magnitude.

In SupSup's task-given setting (RAIVNLab/supsup, ``MultitaskMaskConv``
and ``GetSubnet``) each task has real-valued scores shaped like the
weight; the forward pass keeps the weights whose ``|score|`` is among the
top ``density`` of the layer (0.5 by default) and zeroes the rest; the
backward pass hands the mask's gradient straight to ``|score|``.

>>> import jax.numpy as jnp
>>> supermask(jnp.array([0.1, -0.9, 0.5, -0.2]), 0.5).tolist()
[0.0, 1.0, 1.0, 0.0]
"""

import jax
import jax.numpy as jnp

DENSITY = 0.5   # SupSup's default: the fraction of each layer's weights kept


def supermask(scores, density=DENSITY):
    """0/1 mask of ``scores``' shape keeping the top ``density`` of
    ``|scores|`` (the lowest ``int((1 - density) * n)`` are dropped, as
    SupSup's ``GetSubnet``); its gradient is the identity to ``|scores|``
    (straight through)."""
    a = jnp.abs(scores)
    dropped = int((1.0 - density) * a.size)
    threshold = jnp.sort(a.reshape(-1))[min(dropped, a.size - 1)]
    hard = (a >= threshold).astype(a.dtype)
    if dropped == 0:
        hard = jnp.ones_like(a)
    return hard + (a - jax.lax.stop_gradient(a))   # forward: exactly hard
