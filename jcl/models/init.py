"""PyTorch's default ``nn.Linear`` initialisation, for faithful baselines.

Weights and biases are uniform in ``[-1/sqrt(fan_in), 1/sqrt(fan_in)]``.
"""

import jax
import jax.numpy as jnp


def torch_kernel_init(key, shape, dtype=jnp.float32):
    """Uniform(+-1/sqrt(fan_in)) for a ``[fan_in, fan_out]`` kernel."""
    bound = 1.0 / jnp.sqrt(shape[0])
    return jax.random.uniform(key, shape, dtype, -bound, bound)


def torch_bias_init(fan_in):
    """Uniform(+-1/sqrt(fan_in)) for a bias of a layer with ``fan_in``."""
    def init(key, shape, dtype=jnp.float32):
        bound = 1.0 / jnp.sqrt(fan_in)
        return jax.random.uniform(key, shape, dtype, -bound, bound)
    return init
