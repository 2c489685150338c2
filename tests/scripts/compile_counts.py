"""Runs ``jcl`` with the given arguments and prints, as JSON, how many
XLA programs the process asked for and how many of them JAX's persistent
compilation cache served (tests/test_compile_cache.py).

    python tests/scripts/compile_counts.py run --protocol ... --out DIR
"""

import json
import sys

import jax

from jcl import cli

counts = {'programs': 0, 'cache_hits': 0}


def on_duration(event, duration, **kw):
    if event == '/jax/core/compile/backend_compile_duration':
        counts['programs'] += 1


def on_event(event, **kw):
    if event == '/jax/compilation_cache/cache_hits':
        counts['cache_hits'] += 1


if __name__ == '__main__':
    jax.monitoring.register_event_duration_secs_listener(on_duration)
    jax.monitoring.register_event_listener(on_event)
    code = cli.main(sys.argv[1:])
    print(json.dumps({**counts, 'exit': code}))
