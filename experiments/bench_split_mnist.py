"""Speed of jcl on the split MNIST protocol, and its arithmetic floor.

Measures, for one method (default ``none``, Class-IL):
  * compile time (first task, reported apart),
  * steady-state time per optimisation step,
  * whole-protocol wall time (5 tasks x ITERS steps, evaluation included),
for 1 seed and for N seeds vmapped, plus the machine's float32 matmul rate
and the floor = FLOPs per step / that rate.

Usage (one thread, pinned to one core, as in BUILD_NOTES.md)::

    taskset -c 1 python experiments/bench_split_mnist.py --threads 1
    python experiments/bench_split_mnist.py --threads 2 --seeds 1,8

Prints a Markdown table and writes JSON to ``--json`` if given.
"""

import argparse
import json
import sys
import time

from one_thread import pin


def parse():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--seeds', default='1,8', help='comma list of seed counts')
    p.add_argument('--iters', type=int, default=2000)
    p.add_argument('--method', default='none')
    p.add_argument('--scenario', default='class')
    p.add_argument('--json', default=None)
    return p.parse_args()


ARGS = parse()
pin(ARGS.threads)  # before jax is imported

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from jcl.core import taskdata as data_lib  # noqa: E402
from jcl.methods import catalog as method_catalog  # noqa: E402
from jcl.methods.assemble import build_learner  # noqa: E402
from jcl.sweep.rows import compile_run  # noqa: E402
from jcl.tasks import catalog  # noqa: E402


def matmul_rate():
    """Float32 GFLOP/s: the best over the MLP's own GEMM shapes (forward,
    weight-gradient and input-gradient layouts) and a square 1024^3 GEMM.
    Returns ``(best, per_shape)``; ``per_shape[:3]`` are the MLP's."""
    rates = []
    for m, k, n in [(128, 784, 400), (128, 400, 400), (400, 128, 784),
                    (1024, 1024, 1024)]:
        a = jnp.ones((m, k), jnp.float32)
        b = jnp.ones((k, n), jnp.float32)
        f = jax.jit(lambda a, b: a @ b)
        f(a, b).block_until_ready()
        reps = max(10, int(2e10 / (2 * m * k * n)))
        t = time.perf_counter()
        for _ in range(reps):
            r = f(a, b)
        r.block_until_ready()
        rates.append(2 * m * k * n * reps / (time.perf_counter() - t) / 1e9)
    return max(rates), rates


def mlp_flops(batch, dims):
    """Forward + backward FLOPs of one step of the MLP (no input grad of
    the first layer): 2*B*sum(fan_in*fan_out) * 3 - first-layer input grad.
    """
    macs = [a * b for a, b in zip(dims[:-1], dims[1:])]
    fwd = 2 * batch * sum(macs)
    return 3 * fwd - 2 * batch * macs[0]


def bench(proto, parts, seeds, iters):
    hp = method_catalog.default_hparams(parts, lr=1e-3)
    learner = build_learner(
        proto, catalog.protocol_spec('split-mnist'), parts,
        hidden=(400, 400), iters=iters, batch=128, static_max=hp)
    hp = {k: jnp.full((seeds,), v, jnp.float32) for k, v in hp.items()}
    keys = jnp.stack([jax.random.PRNGKey(s) for s in range(seeds)])
    train = data_lib.to_device(proto.train)
    test = data_lib.to_device(proto.test)
    active = jnp.asarray(proto.active)
    t_start = time.perf_counter()
    init, task, _ = compile_run(learner)
    state = init(hp, keys)
    jax.block_until_ready(state)
    t0 = time.perf_counter()
    compiled = task.lower(state, hp, train, test, active,
                          jnp.int32(0)).compile()
    compile_s = time.perf_counter() - t0
    cost = compiled.cost_analysis()
    if isinstance(cost, list):
        cost = cost[0]
    xla_flops = float(cost.get('flops', float('nan'))) if cost else None
    times = []
    for t in range(proto.num_tasks):
        t0 = time.perf_counter()
        state, m, acc = compiled(state, hp, train, test, active,
                                 jnp.int32(t))
        jax.block_until_ready(acc)
        times.append(time.perf_counter() - t0)
    total = time.perf_counter() - t_start
    steps = iters * proto.num_tasks
    return {
        'seeds': seeds, 'compile_s': compile_s, 'task_s': times,
        'train_s': sum(times), 'wall_s': total,
        'ms_per_step': 1e3 * sum(times) / steps,
        'ms_per_seed_step': 1e3 * sum(times) / steps / seeds,
        'wall_per_seed_s': total / seeds,
        'xla_flops_per_task_call': xla_flops,
        'final_avg_acc': float(np.mean(np.asarray(acc)[:, :].mean(-1))),
    }


def main():
    rate, rates = matmul_rate()
    mlp_rate = max(rates[:3])
    proto = catalog.load_protocol('split-mnist', ARGS.scenario)
    parts = method_catalog.parse(ARGS.method)
    flops = mlp_flops(128, [784, 400, 400, proto.num_outputs])
    floor_ms = flops / (rate * 1e9) * 1e3
    mlp_floor_ms = flops / (mlp_rate * 1e9) * 1e3
    rows = [bench(proto, parts, int(s), ARGS.iters)
            for s in ARGS.seeds.split(',')]
    out = {'threads': ARGS.threads, 'matmul_gflops': rate,
           'matmul_gflops_all': rates, 'flops_per_step': flops,
           'floor_ms_per_step': floor_ms,
           'mlp_shape_gflops': mlp_rate,
           'mlp_shape_floor_ms_per_step': mlp_floor_ms, 'runs': rows,
           'method': ARGS.method, 'scenario': ARGS.scenario,
           'iters': ARGS.iters, 'jax': jax.__version__,
           'device': str(jax.devices()[0])}
    print(f'matmul rate {rate:.1f} GFLOP/s best, {mlp_rate:.1f} at the '
          f'MLP\'s shapes ({ARGS.threads} thread(s)); '
          f'{flops / 1e6:.1f} MFLOP/step -> floor {floor_ms:.3f} ms/step '
          f'(at MLP shapes {mlp_floor_ms:.3f})', flush=True)
    print('| seeds | compile s | train s | wall s | wall/seed s '
          '| ms/step/seed | x floor | x MLP-shape floor |')
    print('|---|---|---|---|---|---|---|---|')
    for r in rows:
        print(f"| {r['seeds']} | {r['compile_s']:.1f} | {r['train_s']:.1f} "
              f"| {r['wall_s']:.1f} | {r['wall_per_seed_s']:.1f} | "
              f"{r['ms_per_seed_step']:.3f} | "
              f"{r['ms_per_seed_step'] / floor_ms:.2f} | "
              f"{r['ms_per_seed_step'] / mlp_floor_ms:.2f} |", flush=True)
    if ARGS.json:
        with open(ARGS.json, 'w') as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
