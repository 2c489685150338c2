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


def kth_smallest(a, k: int):
    """The ``k``-th smallest (0-based) entry of a non-negative float32
    array, exactly.

    Non-negative float32 values order as their bit patterns (as int32)
    do, so 31 halvings of the bit range ``[0, +inf]``, each one count of
    the entries at or below the midpoint, find it: a few passes over the
    array where a sort of every layer's scores at every step was the
    main cost of a SupSup step on XLA:CPU.

    >>> float(kth_smallest(jnp.array([3., 0., 2., 2., 5.]), 2))
    2.0
    """
    bits = jax.lax.bitcast_convert_type(a.reshape(-1), jnp.int32)

    def halve(_, bounds):
        lo, hi = bounds                      # the answer lies in [lo, hi]
        mid = lo + (hi - lo) // 2
        enough = jnp.sum(bits <= mid) > k
        return jnp.where(enough, lo, mid + 1), jnp.where(enough, mid, hi)

    lo, _ = jax.lax.fori_loop(0, 31, halve,
                              (jnp.int32(0), jnp.int32(0x7F800000)))
    return jax.lax.bitcast_convert_type(lo, jnp.float32)


def supermask(scores, density=DENSITY):
    """0/1 mask of ``scores``' shape keeping the top ``density`` of
    ``|scores|`` (the lowest ``int((1 - density) * n)`` are dropped, as
    SupSup's ``GetSubnet``); its gradient is the identity to ``|scores|``
    (straight through). Ties at the threshold are all kept, as a sort's
    threshold keeps them."""
    a = jnp.abs(scores)
    dropped = int((1.0 - density) * a.size)
    if dropped == 0:
        hard = jnp.ones_like(a)
    else:
        k = min(dropped, a.size - 1)
        threshold = (kth_smallest(a, k) if a.dtype == jnp.float32 else
                     jnp.sort(a.reshape(-1))[k])
        hard = (a >= jax.lax.stop_gradient(threshold)).astype(a.dtype)
    return hard + (a - jax.lax.stop_gradient(a))   # forward: exactly hard
