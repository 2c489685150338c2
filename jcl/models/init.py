"""PyTorch's default ``nn.Linear`` initialisation, for faithful baselines.

Weights and biases are uniform in ``[-1/sqrt(fan_in), 1/sqrt(fan_in)]``.
"""

import jax
import jax.numpy as jnp


def fast_uniform(key, shape, dtype, low, high):
    """``jax.random.uniform`` (threefry, so ``vmap`` over keys equals a
    loop over keys; the ``rbg`` generators compile faster on XLA:CPU but
    give different numbers under ``vmap``)."""
    return jax.random.uniform(key, shape, dtype, low, high)


def torch_kernel_init(key, shape, dtype=jnp.float32):
    """Uniform(+-1/sqrt(fan_in)) for a ``[fan_in, fan_out]`` kernel."""
    bound = 1.0 / jnp.sqrt(shape[0])
    return fast_uniform(key, shape, dtype, -bound, bound)


def torch_bias_init(fan_in):
    """Uniform(+-1/sqrt(fan_in)) for a bias of a layer with ``fan_in``."""
    def init(key, shape, dtype=jnp.float32):
        bound = 1.0 / jnp.sqrt(fan_in)
        return fast_uniform(key, shape, dtype, -bound, bound)
    return init


def torch_init_tree(key, template):
    """PyTorch-default parameters for a whole Flax parameter tree at once.

    Every leaf of ``template`` (shapes from ``jax.eval_shape`` of the
    module's init) is drawn from ONE flat uniform vector, scaled per leaf
    by ``1/sqrt(fan_in)`` of its layer (the kernel's first dimension, also
    used for the layer's bias). One draw compiles to one threefry kernel
    instead of one per weight matrix, which dominated start-up on XLA:CPU
    (about 1.5 s of compilation per matrix).

    Args:
      key: PRNG key. template: a dict of ``{layer: {'kernel', 'bias'}}``
        shape structs (nested dicts allowed).

    Returns:
      A tree like ``template`` of float32 arrays.
    """
    leaves = []

    def walk(node):
        if 'kernel' in node:
            fan_in = 1
            for d in node['kernel'].shape[:-1]:  # conv: kh * kw * c_in
                fan_in *= int(d)
            for name in sorted(node):
                leaves.append((node[name].shape, 1.0 / fan_in ** 0.5))
            return
        for name in sorted(node):
            walk(node[name])

    walk(template)
    sizes = []
    for shape, _ in leaves:
        size = 1
        for d in shape:
            size *= int(d)
        sizes.append(size)
    flat = fast_uniform(key, (sum(sizes),), jnp.float32, -1.0, 1.0)
    out, start = [], 0
    for (shape, bound), size in zip(leaves, sizes):
        out.append(bound * flat[start:start + size].reshape(shape))
        start += size
    it = iter(out)

    def build(node):
        if 'kernel' in node:
            return {name: next(it) for name in sorted(node)}
        return {name: build(node[name]) for name in sorted(node)}

    return build(template)
