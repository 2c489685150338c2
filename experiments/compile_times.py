"""Where a run's compile time goes: every program a ``jcl run`` command
compiles, with its tracing, lowering and XLA compile seconds and whether
JAX's persistent compilation cache served it.

Runs the command in this process (the ``jcl`` on ``PYTHONPATH``, so an
older checkout can be measured the same way) with the cache in
``--cache`` (empty: a cold run; run it again: a repeat run)::

    python experiments/compile_times.py --cache /tmp/xla -- \\
        run --protocol split-mnist --scenario class --method bir \\
        --iters 500 --out /tmp/bir500

Prints a Markdown table (programs with at least 0.05 s, by XLA compile
time), the totals, and the process's wall time.
"""

import argparse
import collections
import os
import sys
import time

T0 = time.time()

EVENTS = {'/jax/core/compile/jaxpr_trace_duration': 'trace',
          '/jax/core/compile/jaxpr_to_mlir_module_duration': 'lower',
          '/jax/core/compile/backend_compile_duration': 'compile'}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--cache', required=True, help='compilation cache folder')
    p.add_argument('argv', nargs=argparse.REMAINDER,
                   help='-- then the jcl command line')
    args = p.parse_args()
    argv = args.argv[1:] if args.argv[:1] == ['--'] else args.argv
    os.environ['JAX_COMPILATION_CACHE_DIR'] = os.path.abspath(args.cache)
    import jax

    from jcl import cli

    seconds = collections.defaultdict(lambda: collections.Counter())
    hits = []

    def on_duration(event, duration, **kw):
        if event in EVENTS:
            seconds[kw.get('fun_name', '?')][EVENTS[event]] += duration

    def on_event(event, **kw):
        if event == '/jax/compilation_cache/cache_hits':
            hits.append(1)

    jax.monitoring.register_event_duration_secs_listener(on_duration)
    jax.monitoring.register_event_listener(on_event)
    code = cli.main(argv)
    wall = time.time() - T0
    rows = sorted(seconds.items(), key=lambda kv: -kv[1]['compile'])
    print('\n| program | trace s | lower s | XLA compile s |')
    print('|---|---|---|---|')
    for name, c in rows:
        if sum(c.values()) >= 0.05:
            print(f"| {name} | {c['trace']:.2f} | {c['lower']:.2f} | "
                  f"{c['compile']:.2f} |")
    total = sum((c for c in seconds.values()), collections.Counter())
    print(f"| all {len(seconds)} | {total['trace']:.2f} | "
          f"{total['lower']:.2f} | {total['compile']:.2f} |")
    print(f'\ncache hits: {len(hits)}; whole process {wall:.1f} s; '
          f'exit {code}')
    return code


if __name__ == '__main__':
    sys.exit(main())
