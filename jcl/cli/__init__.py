"""``jcl run ...``: the command line (also ``python -m jcl``).

Examples::

    jcl run --protocol split-mnist --scenario all --method none,joint \\
        --seeds 5 --out runs/baselines
    jcl run --protocol split-mnist --scenario class --method si \\
        --set si.c=1.0 --iters 100 --out /tmp/quick

Errors a user can cause print one line, ``jcl: error: ...``, and exit 2.
An error found before training (a bad name or value, missing or corrupt
data, an unwritable folder) leaves nothing behind.
"""

import json
import os
import sys

from jcl.cli.args import parser
from jcl.cli.config import config_hash, resolve
from jcl.errors import JclError, OutputError


def compilation_cache():
    """Persistent XLA cache, so a resumed or repeated run skips compiling.

    ``$JAX_COMPILATION_CACHE_DIR`` wins; otherwise ``~/.cache/jcl/xla``
    (never inside a data folder); ``JCL_COMPILE_CACHE=0`` turns it off.
    Called only once a run is about to train.
    """
    import jax
    if os.environ.get('JCL_COMPILE_CACHE', '1') == '0':
        return
    if 'JAX_COMPILATION_CACHE_DIR' not in os.environ:
        jax.config.update('jax_compilation_cache_dir', os.path.join(
            os.path.expanduser('~'), '.cache', 'jcl', 'xla'))
    jax.config.update('jax_persistent_cache_min_compile_time_secs', 1.0)


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == 'report':
            return report(args.folder)
        if args.command == 'pretrain':
            from jcl.cli import pretrain
            compilation_cache()
            return pretrain.run(args, log=lambda s: print(s, flush=True))
        from jcl.cli import driver, folders
        cfg = resolve(args)
        folder = args.out or os.path.join(
            'runs', f'{cfg["protocol"]}-{config_hash(cfg)}')
        folders.check_writable(folder)
        arrays = driver.load_arrays(cfg, log=lambda s: print(s, flush=True))
        resuming = folders.prepare_folder(folder, cfg, args.overwrite)
        compilation_cache()
        print(f'jcl: {"resuming" if resuming else "writing"} {folder}',
              flush=True)
        driver.run_config(cfg, folder, log=lambda s: print(s, flush=True),
                          arrays=arrays)
        print(f'jcl: results in {folder}', flush=True)
        return 0
    except JclError as e:
        print(f'jcl: error: {e}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print('jcl: interrupted; run the same command again to resume',
              file=sys.stderr)
        return 130


def report(folder):
    """Rebuilds the summaries and plots of a results folder."""
    from jcl.cli import driver
    cfg_path = os.path.join(folder, 'config.json')
    if not os.path.exists(cfg_path):
        raise OutputError(f'{folder} is not a jcl results folder')
    with open(cfg_path) as f:
        cfg = json.load(f)
    for s in cfg['scenarios']:
        done = driver.finished_results(folder, cfg, s)
        if done:
            driver.write_scenario(folder, cfg, s, done)
    print(f'jcl: rebuilt the summaries in {folder}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
