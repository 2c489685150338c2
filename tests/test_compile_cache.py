"""A repeat run compiles nothing: every compiled program (the chunks of a
task included; they hold no host callback) is kept by JAX's persistent
compilation cache and served from it the second time."""

import json
import os
import subprocess
import sys

SCRIPT = os.path.join(os.path.dirname(__file__), 'scripts',
                      'compile_counts.py')


def counts(out, cache):
    env = {**os.environ, 'JAX_COMPILATION_CACHE_DIR': str(cache),
           'JCL_COMPILE_CACHE': '1'}
    run = subprocess.run(
        [sys.executable, SCRIPT, 'run', '--protocol', 'split-mnist',
         '--scenario', 'class', '--method', 'bir', '--seeds', '2',
         '--iters', '40', '--hidden', '32', '--out', str(out)],
        env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    got = json.loads(run.stdout.strip().splitlines()[-1])
    assert got['exit'] == 0
    return got


def test_a_repeat_run_compiles_nothing(tmp_path):
    cache = tmp_path / 'xla'
    first = counts(tmp_path / 'a', cache)
    assert first['programs'] > 5 and first['cache_hits'] == 0
    again = counts(tmp_path / 'b', cache)
    assert again['programs'] == first['programs']
    assert again['cache_hits'] == again['programs'], again
