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

import os
import sys

from jcl.cli.args import parser
from jcl.cli.config import resolve
from jcl.cli.identity import config_hash
from jcl.core.errors import JclError, OutputError


def compilation_cache():
    """Persistent XLA cache, so a resumed or repeated run skips compiling.

    ``$JAX_COMPILATION_CACHE_DIR`` wins; otherwise ``~/.cache/jcl/xla``
    (never inside a data folder); ``JCL_COMPILE_CACHE=0`` turns it off.
    Called once a run's configuration is valid, before any computation.
    """
    import jax
    if os.environ.get('JCL_COMPILE_CACHE', '1') == '0':
        return
    if 'JAX_COMPILATION_CACHE_DIR' not in os.environ:
        jax.config.update('jax_compilation_cache_dir', os.path.join(
            os.path.expanduser('~'), '.cache', 'jcl', 'xla'))
    # every program, however quick to compile: a repeat run compiles nothing
    jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.0)


def main(argv=None) -> int:
    from jcl.cli import rerun
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        argv = rerun.expand_argv(argv)
    except JclError as e:
        print(f'jcl: error: {e}', file=sys.stderr)
        return 2
    args = parser().parse_args(argv)
    try:
        if args.command == 'report':
            from jcl.cli.report import report
            return report(args.folders, args.out)
        if args.command == 'methods':
            return list_methods(args.plugin)
        if args.command == 'pretrain':
            from jcl.cli import pretrain
            compilation_cache()
            return pretrain.run(args, log=lambda s: print(s, flush=True))
        from jcl.cli import driver
        from jcl.sweep import distributed
        dist = distributed.settings(args.coordinator, args.num_processes,
                                    args.process_id, args.distributed)
        load_plugins(args.plugin)
        cfg = resolve(args)
        cfg['command'] = rerun.record(argv[1:])
        compilation_cache()
        folder = args.out or os.path.join(
            'runs', f'{cfg["protocol"]}-{config_hash(cfg)}')
        if dist:
            distributed.initialize(dist)
        from jcl.sweep.rows import mesh_for
        mesh = mesh_for(args.devices)
        main = distributed.is_main()
        log = (lambda s: print(s, flush=True)) if main else (lambda s: None)
        arrays = driver.load_arrays(cfg, log=log)
        weights = driver.load_backbone(cfg)
        driver.check_config(cfg, arrays, weights)
        fresh = not os.path.exists(folder)
        resuming = claim_folder(folder, cfg, args.overwrite)
        log(f'jcl: {"resuming" if resuming else "writing"} {folder}' + (
            f' ({mesh.devices.size} devices)' if mesh is not None else ''))
        from jcl.cli import folders
        try:
            driver.run_config(cfg, folder, log=log, arrays=arrays,
                              mesh=mesh, weights=weights)
        except JclError:
            if main:
                folders.release(folder, fresh=fresh, ok=False)
            raise
        if main:
            folders.release(folder, fresh=fresh, ok=True)
        log(f'jcl: results in {folder}')
        return 0
    except JclError as e:
        print(f'jcl: error: {e}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print('jcl: interrupted; run the same command again to resume',
              file=sys.stderr)
        return 130


def load_plugins(modules):
    """Imports the ``--plugin`` modules (each registers methods)."""
    from jcl.methods import catalog
    for m in modules:
        catalog.load_plugin(m)


def list_methods(plugins):
    """``jcl methods``: every method, one line each, and its
    hyperparameters with their split MNIST Class-IL defaults."""
    from jcl.methods import catalog
    load_plugins(plugins)
    for name, e in sorted(catalog.entries().items()):
        print(f'{name:12s} {e.summary}')
        hp = e.default_values('split-mnist', e.scenarios[-1], 128)
        if hp:
            print(' ' * 13 + ', '.join(f'{k}={v:g}' for k, v in hp.items()))
    return 0


def claim_folder(folder, cfg, overwrite) -> bool:
    """Process 0 checks and prepares the results folder (the others wait
    for its verdict); returns True when resuming."""
    from jcl.cli import folders
    from jcl.sweep import distributed
    status, error = -1, None
    if distributed.is_main():
        try:
            folders.check_writable(folder)
            status = int(folders.prepare_folder(folder, cfg, overwrite))
        except JclError as e:
            error = e
    status = distributed.broadcast(status)
    if error is not None:
        raise error
    if status < 0:
        raise OutputError(f'process 0 refused {folder} (its message says '
                          'why)')
    return bool(status)


if __name__ == '__main__':
    sys.exit(main())
