"""SupSup's per-layer threshold: a sort of the layer's |scores| against
:func:`jcl.models.supermask.kth_smallest` (bisection over the float bit
range), on the largest ResNet-18 layer, one thread.

    python experiments/bench_supermask.py        # prints ms per layer
"""

import time

from one_thread import pin

pin(1)  # before jax is imported

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from jcl.models.supermask import kth_smallest  # noqa: E402


def main(shape=(3, 3, 512, 512), calls=5):
    a = jnp.abs(jax.random.normal(jax.random.PRNGKey(0), shape))
    k = a.size // 2
    ways = {'sort': jax.jit(lambda a: jnp.sort(a.reshape(-1))[k]),
            'bisection': jax.jit(lambda a: kth_smallest(a, k))}
    values = {}
    for name, f in ways.items():
        values[name] = float(f(a))                  # compile apart
        t = time.perf_counter()
        for _ in range(calls):
            f(a).block_until_ready()
        ms = (time.perf_counter() - t) / calls * 1000
        print(f'{name}: {ms:.1f} ms per layer ({a.size:,} scores)')
    assert values['sort'] == values['bisection'], values


if __name__ == '__main__':
    main()
