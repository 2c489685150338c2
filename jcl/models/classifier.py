"""The MLP classifier of the papers, with optional XdG context gating.

Example::

    clf = mlp_classifier((400, 400), num_outputs=10, input_dim=784)
    params = {'classifier': clf.init(key)}
    logits = clf.apply(params, x, task)          # [B, 10]
"""

from typing import Callable, NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jcl.models.init import torch_bias_init, torch_kernel_init


class Dense(nn.Module):
    """``nn.Dense`` with PyTorch's default initialisation."""

    features: int

    @nn.compact
    def __call__(self, x):
        return nn.Dense(self.features, kernel_init=torch_kernel_init,
                        bias_init=torch_bias_init(x.shape[-1]))(x)


class MLP(nn.Module):
    """Fully connected ReLU network.

    Attributes:
      hidden: units of each hidden layer, e.g. ``(400, 400)``.
      num_outputs: output units (0: return the last hidden layer).
    """

    hidden: Sequence[int]
    num_outputs: int

    @nn.compact
    def __call__(self, x, gates=None):
        """Args: x ``[B, D]``; gates: per hidden layer a ``[B, units]``
        multiplicative mask (XdG), or ``None``. Returns ``[B, out]``."""
        for layer, units in enumerate(self.hidden):
            x = nn.relu(Dense(units)(x))
            if gates is not None:
                x = x * gates[layer]
        if self.num_outputs:
            x = Dense(self.num_outputs)(x)
        return x


class Classifier(NamedTuple):
    """A classifier as two pure functions.

    Attributes:
      init: ``key -> params['classifier']``.
      apply: ``(params, x, task) -> logits``; ``params`` is the whole
        parameter dict, so frozen parts (``params['gates']``, the XdG masks
        ``[T, units]`` per layer) are used when present.
      hidden: the hidden layer sizes (for methods that add gates).
    """

    init: Callable
    apply: Callable
    hidden: tuple


def mlp_classifier(hidden: Sequence[int], *, num_outputs: int,
                   input_dim: int) -> Classifier:
    """The MLP classifier ``input_dim - hidden... - num_outputs``."""
    net = MLP(tuple(hidden), num_outputs)

    def init(key):
        return net.init(key, jnp.zeros((1, input_dim)))['params']

    def apply(params, x, task):
        gates = params.get('gates')
        if gates is not None:
            gates = [g[task] for g in gates]
        return net.apply({'params': params['classifier']}, x, gates)

    return Classifier(init, apply, tuple(hidden))


def xdg_gates(key, hidden: Sequence[int], *, num_tasks: int,
              proportion) -> list:
    """XdG masks: per task and hidden layer, a random ``proportion`` of the
    units is gated off (0), the rest kept (1).

    Returns:
      one float32 ``[num_tasks, units]`` array per hidden layer.
    """
    gates = []
    for layer, units in enumerate(hidden):
        k = jax.random.fold_in(key, layer)
        scores = jax.random.uniform(k, (num_tasks, units))
        # exactly round(proportion * units) lowest-scoring units are off
        n_off = jnp.round(proportion * units).astype(jnp.int32)
        ranks = jnp.argsort(jnp.argsort(scores, axis=1), axis=1)
        gates.append((ranks >= n_off).astype(jnp.float32))
    return gates
