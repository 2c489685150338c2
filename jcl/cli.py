"""``jcl run ...``: the command line (also ``python -m jcl``).

Examples::

    jcl run --protocol split-mnist --scenario all --method none,joint \
        --seeds 5 --out runs/baselines
    jcl run --protocol split-mnist --scenario class --method si \
        --set si.c=1.0 --iters 100 --out /tmp/quick

Errors a user can cause print one line, ``jcl: error: ...``, and exit 2.
"""

import argparse
import hashlib
import json
import os
import shutil
import sys
import time

import numpy as np

from jcl.errors import ConfigError, JclError, OutputError

SCENARIO_CHOICES = ('task', 'domain', 'class')


def _parser():
    p = argparse.ArgumentParser(
        prog='jcl', description='Continual learning in JAX.')
    sub = p.add_subparsers(dest='command', required=True)
    r = sub.add_parser('run', help='train and evaluate on a protocol')
    r.add_argument('--protocol', required=True,
                   help='split-mnist, split-fashion-mnist, permuted-mnist, '
                   'split-cifar10, split-cifar100')
    r.add_argument('--scenario', required=True,
                   help='task, domain, class, a comma list, or all')
    r.add_argument('--method', required=True,
                   help='comma list of methods; + combines (e.g. none,joint)')
    r.add_argument('--seeds', type=int, default=1,
                   help='number of seeds (0..N-1), trained at once')
    r.add_argument('--first-seed', type=int, default=0,
                   help='seeds are FIRST..FIRST+N-1 (the NMI code reports '
                   'seeds 2..21 with --class-order shuffled)')
    r.add_argument('--iters', type=int, default=None,
                   help='iterations per task (default: the paper value)')
    r.add_argument('--batch', type=int, default=None,
                   help='minibatch size (default: the paper value)')
    r.add_argument('--lr', type=float, default=None,
                   help='learning rate (default: the paper value)')
    r.add_argument('--permutations', type=int, default=None,
                   help='permuted MNIST: number of tasks (default 10)')
    r.add_argument('--class-order', choices=('fixed', 'shuffled'),
                   default='fixed',
                   help='split protocols: the papers\' fixed order, or the '
                   'NMI code\'s order shuffled per seed')
    r.add_argument('--set', action='append', default=[], metavar='NAME=V',
                   help='a method hyperparameter, e.g. ewc.lambda=1e5')
    r.add_argument('--grid', action='append', default=[],
                   metavar='NAME=SPEC',
                   help='search a hyperparameter: V1,V2,... or START:STOP:N '
                   '(log-spaced), e.g. ewc.lambda=1:1e12:13; several '
                   '--grid flags form a product; all points and seeds run '
                   'as one vmapped program')
    r.add_argument('--validation', type=float, default=None,
                   help='fraction of each task\'s training data held out '
                   'to choose grid points (default 0.1 with --grid)')
    r.add_argument('--data-dir', default=None,
                   help='folder of Fashion-MNIST IDX / CIFAR python files')
    r.add_argument('--seed-chunk', type=int, default=None,
                   help='seeds per compiled group (default: all)')
    r.add_argument('--out', default=None, help='results folder')
    r.add_argument('--overwrite', action='store_true',
                   help='replace a finished results folder')
    rep = sub.add_parser('report', help='rebuild summaries and plots')
    rep.add_argument('folder')
    return p


def _parse_sets(items):
    hp = {}
    for item in items:
        name, sep, value = item.partition('=')
        if not sep or not name:
            raise ConfigError(f'--set {item!r}: expected NAME=VALUE')
        try:
            hp[name.strip()] = float(value)
        except ValueError:
            raise ConfigError(f'--set {item!r}: {value!r} is not a '
                              'number') from None
    return hp


def _parse_grid(items):
    grid = {}
    for item in items:
        name, sep, spec = item.partition('=')
        name = name.strip()
        if not sep or not name or not spec:
            raise ConfigError(f'--grid {item!r}: expected NAME=V1,V2,... or '
                              'NAME=START:STOP:N')
        try:
            if ':' in spec:
                a, b, n = spec.split(':')
                a, b, n = float(a), float(b), int(n)
                if a <= 0 or b <= 0 or n < 2:
                    raise ValueError
                values = np.logspace(np.log10(a), np.log10(b), n)
            else:
                values = np.array([float(v) for v in spec.split(',')])
        except ValueError:
            raise ConfigError(f'--grid {item!r}: values must be numbers '
                              '(START:STOP:N needs START, STOP > 0 and '
                              'N >= 2)') from None
        if name in grid:
            raise ConfigError(f'--grid {name} given twice')
        grid[name] = [float(v) for v in values]
    return grid


def grid_points(grid: dict) -> list:
    """The cartesian product of a grid as a list of ``{name: value}``."""
    points = [{}]
    for name, values in grid.items():
        points = [{**p, name: v} for p in points for v in values]
    return points


def resolve(args) -> dict:
    """Turns arguments into the full, validated run configuration."""
    from jcl import recipes
    spec = recipes.protocol_spec(args.protocol)
    if args.scenario == 'all':
        scenarios = list(SCENARIO_CHOICES)
    else:
        scenarios = [s.strip() for s in args.scenario.split(',')]
        for s in scenarios:
            if s not in SCENARIO_CHOICES:
                raise ConfigError(f'unknown scenario {s!r}; choose from '
                                  'task, domain, class, all')
    methods = [m.strip() for m in args.method.split(',') if m.strip()]
    if not methods:
        raise ConfigError('--method: give at least one method')
    if args.seeds < 1:
        raise ConfigError(f'--seeds must be >= 1, got {args.seeds}')
    if args.first_seed < 0:
        raise ConfigError(f'--first-seed must be >= 0, got '
                          f'{args.first_seed}')
    iters = spec.iters if args.iters is None else args.iters
    batch = spec.batch if args.batch is None else args.batch
    lr = spec.lr if args.lr is None else args.lr
    if iters < 1:
        raise ConfigError(f'--iters must be >= 1, got {iters}')
    if batch < 1:
        raise ConfigError(f'--batch must be >= 1, got {batch}')
    if args.permutations is not None and args.permutations < 1:
        raise ConfigError('--permutations must be >= 1')
    sets = _parse_sets(args.set)
    grid = _parse_grid(args.grid)
    validation = args.validation
    if validation is None:
        validation = 0.1 if grid else 0.0
    if validation and not 0.0 < validation < 1.0:
        raise ConfigError(f'--validation must be in (0, 1), got '
                          f'{validation}')
    hps = {}
    for m in methods:
        parts = recipes.parse_method(m)
        for s in scenarios:
            recipes.check_scenario(parts, s)
            hp = recipes.default_hparams(parts, lr=lr,
                                         protocol=args.protocol,
                                         scenario=s, batch=batch)
            hp.update({k: v for k, v in sets.items() if k in hp})
            recipes.check_hparams(parts, hp)
            for k, values in grid.items():
                if k in hp:
                    if k in recipes.static_hparams(parts):
                        raise ConfigError(
                            f'--grid {k}: it sets a shape, so it takes one '
                            'value per run (use --set)')
                    recipes.check_hparams(parts, {k: np.array(values)})
            hps[f'{s}/{m}'] = hp
    used = set().union(*(set(h) for h in hps.values()))
    for k in list(sets) + list(grid):
        if k not in used:
            raise ConfigError(f'--set {k}: no selected method has this '
                              f'hyperparameter (known: '
                              f'{", ".join(sorted(used))})')
    chunk = args.seed_chunk or args.seeds
    return {
        'protocol': args.protocol, 'scenarios': scenarios,
        'methods': methods, 'hparams': hps, 'seeds': args.seeds,
        'iters': iters, 'batch': batch, 'hidden': list(spec.hidden),
        'num_tasks': (args.permutations or spec.num_tasks),
        'class_order': args.class_order, 'data_dir': args.data_dir,
        'seed_chunk': chunk, 'grid': grid, 'validation': validation,
        'first_seed': args.first_seed,
    }


def config_hash(cfg) -> str:
    text = json.dumps({k: v for k, v in cfg.items() if k != 'data_dir'},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _config_diff(old, new, most=3) -> str:
    """The first few settings in which two configs differ, as
    ``key: old -> new`` (nested keys joined with '.')."""
    def flat(d, prefix=''):
        out = {}
        for k, v in d.items():
            if isinstance(v, dict):
                out.update(flat(v, f'{prefix}{k}.'))
            else:
                out[f'{prefix}{k}'] = v
        return out
    a = flat({k: v for k, v in old.items() if k not in ('hash', 'data_dir')})
    b = flat({k: v for k, v in new.items() if k != 'data_dir'})
    keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    parts = [f'{k}: {a.get(k, "unset")} -> {b.get(k, "unset")}'
             for k in keys[:most]]
    if len(keys) > most:
        parts.append(f'and {len(keys) - most} more')
    return ', '.join(parts)


def prepare_folder(folder, cfg, overwrite) -> bool:
    """Creates or checks the results folder; returns True when resuming.

    Never silently overwrites: a finished folder needs ``--overwrite``, a
    folder of a different configuration is refused.
    """
    cfg_path = os.path.join(folder, 'config.json')
    if os.path.exists(cfg_path):
        try:
            with open(cfg_path) as f:
                old = json.load(f)
        except (OSError, ValueError):
            raise OutputError(f'{cfg_path} is unreadable; use another --out '
                              'or --overwrite') from None
        finished = all(os.path.exists(p) for p in _result_paths(folder, old))
        if overwrite:
            shutil.rmtree(folder)
        elif old.get('hash') != config_hash(cfg):
            diff = _config_diff(old, cfg)
            raise OutputError(
                f'{folder} holds a different run (config hash '
                f'{old.get("hash")}{"; differs in " + diff if diff else ""}'
                '); use another --out or --overwrite')
        elif finished:
            raise OutputError(f'{folder} is already finished; pass '
                              '--overwrite to run it again')
        else:
            return True
    elif os.path.isdir(folder) and os.listdir(folder):
        raise OutputError(f'{folder} exists and is not a jcl results '
                          'folder; choose an empty or new --out')
    try:
        os.makedirs(folder, exist_ok=True)
        probe = os.path.join(folder, '.write-test')
        with open(probe, 'w') as f:
            f.write('ok')
        os.remove(probe)
    except OSError as e:
        raise OutputError(f'cannot write to {folder}: '
                          f'{e.strerror or e}') from None
    with open(cfg_path, 'w') as f:
        json.dump({**cfg, 'hash': config_hash(cfg)}, f, indent=1)
    return False


def _scenario_folder(folder, cfg, scenario):
    return (folder if len(cfg['scenarios']) == 1
            else os.path.join(folder, scenario))


def _run_folder(folder, cfg, scenario, method):
    return os.path.join(_scenario_folder(folder, cfg, scenario), 'runs',
                        method.replace('+', '_plus_'))


def _result_paths(folder, cfg):
    return [os.path.join(_run_folder(folder, cfg, s, m), 'result.npz')
            for s in cfg['scenarios'] for m in cfg['methods']]


def run_config(cfg, folder, log=print):
    """Runs every (scenario, method) of ``cfg``; resumable at task ends."""
    import jax

    from jcl import recipes, results
    from jcl.runner import run_seeds
    by_scenario = {}
    for scenario in cfg['scenarios']:
        sfolder = _scenario_folder(folder, cfg, scenario)
        proto = None  # loaded once per scenario (per seed if shuffled)
        done = {}
        for method in cfg['methods']:
            rfolder = _run_folder(folder, cfg, scenario, method)
            rpath = os.path.join(rfolder, 'result.npz')
            if os.path.exists(rpath):
                with np.load(rpath) as f:
                    done[method] = dict(f)
                log(f'[{scenario}/{method}] finished earlier, kept')
                continue
            os.makedirs(rfolder, exist_ok=True)
            parts = recipes.parse_method(method)
            hp = cfg['hparams'][f'{scenario}/{method}']
            points = grid_points({k: v for k, v in
                                  cfg.get('grid', {}).items() if k in hp})
            seed0 = cfg.get('first_seed', 0)
            rows = [({**hp, **pt}, s) for pt in points
                    for s in range(seed0, seed0 + cfg['seeds'])]
            chunk = cfg['seed_chunk'] * len(points)
            groups = [rows[i:i + chunk] for i in range(0, len(rows), chunk)]
            outs = []
            t0 = time.time()
            for gi, group in enumerate(groups):
                seeds = [s for _, s in group]
                proto = _protocols(cfg, scenario, seeds, proto)
                first = proto[0] if isinstance(proto, list) else proto
                learner = recipes.build_learner(
                    first, parts, hidden=tuple(cfg['hidden']),
                    iters=cfg['iters'], batch=cfg['batch'],
                    static_max={k: max(h[k] for h, _ in rows)
                                for k in hp})
                keys = jax.numpy.stack([jax.random.PRNGKey(s)
                                        for s in seeds])
                hpa = {k: np.array([h[k] for h, _ in group], np.float32)
                       for k in hp}
                label = (f'[{scenario}/{method}] seeds '
                         f'{min(seeds)}-{max(seeds)}' +
                         (f' x {len(points)} grid points'
                          if len(points) > 1 else ''))
                outs.append(run_seeds(
                    learner, proto, hpa, keys,
                    joint=recipes.is_joint(parts),
                    ckpt_path=os.path.join(rfolder, f'ckpt-{gi}.npz'),
                    progress=log, label=label))
            result = {
                'R': np.concatenate([o.R for o in outs]),
                'R_init': np.concatenate([o.R_init for o in outs]),
                'seeds': np.array([s for _, s in rows]),
                'seconds': np.sum([o.seconds for o in outs], 0),
                'hp_names': np.asarray(sorted(hp)),
                'hp_values': np.asarray([[h[k] for k in sorted(hp)]
                                         for h, _ in rows]).T,
            }
            if outs[0].R_valid is not None:
                result['R_valid'] = np.concatenate(
                    [o.R_valid for o in outs])
            for k in outs[0].metrics:
                result[f'loss/{k}'] = np.concatenate(
                    [o.metrics[k] for o in outs])
            np.savez(rpath + '.tmp.npz', **result)
            os.replace(rpath + '.tmp.npz', rpath)
            for gi in range(len(groups)):
                ck = os.path.join(rfolder, f'ckpt-{gi}.npz')
                if os.path.exists(ck):
                    os.remove(ck)
            done[method] = result
            log(f'[{scenario}/{method}] done in {time.time() - t0:.0f}s')
            results.write_all(sfolder, results.expand_grid(done),
                              _meta(cfg, scenario))
        summary = results.write_all(sfolder, results.expand_grid(done),
                                    _meta(cfg, scenario))
        if cfg.get('grid'):
            results.write_grid(sfolder, done, cfg['grid'])
        by_scenario[scenario] = summary
        _print_summary(summary, scenario, log)
    if len(cfg['scenarios']) > 1:
        results.plot_curves(by_scenario,
                            os.path.join(folder, 'accuracy.png'),
                            title=cfg['protocol'])
        with open(os.path.join(folder, 'summary.md'), 'w') as f:
            for s in cfg['scenarios']:
                with open(os.path.join(folder, s, 'summary.md')) as g:
                    f.write(g.read() + '\n')
    return by_scenario


def _protocols(cfg, scenario, seeds, cached):
    """The protocol of a seed group: one shared protocol, or one per seed
    when the task order depends on the seed (shuffled class order, or the
    permutations of permuted MNIST, which are drawn from the seed)."""
    from jcl import recipes
    spec = recipes.protocol_spec(cfg['protocol'])
    kw = dict(num_tasks=cfg['num_tasks'], data_dir=cfg['data_dir'],
              validation=cfg.get('validation', 0.0))
    if spec.kind == 'permuted':
        return [recipes.load_protocol(cfg['protocol'], scenario,
                                      perm_seed=s, **kw) for s in seeds]
    if cfg['class_order'] == 'shuffled':
        return [recipes.load_protocol(cfg['protocol'], scenario,
                                      class_order=_shuffled_order(spec, s),
                                      **kw) for s in seeds]
    if cached is None or isinstance(cached, list):
        return recipes.load_protocol(cfg['protocol'], scenario, **kw)
    return cached


def _shuffled_order(spec, seed):
    """The NMI code's per-seed class order (numpy seeded by the seed)."""
    classes = {'mnist': 10, 'fashion-mnist': 10, 'cifar10': 10,
               'cifar100': 100}[spec.dataset]
    return np.random.RandomState(seed).permutation(classes)


def _meta(cfg, scenario):
    return {'protocol': cfg['protocol'], 'scenario': scenario,
            'note': f"{cfg['iters']} iterations/task, batch {cfg['batch']}, "
                    f"class order {cfg['class_order']}"}


def _print_summary(summary, scenario, log):
    from jcl.evaluate import average_accuracy
    for name, s in summary.items():
        R = np.asarray(s['R'])
        log(f'\n{scenario}-incremental / {name}: average accuracy '
            f'{100 * s["avg_acc_mean"]:.2f} ± {100 * s["avg_acc_sem"]:.2f}%'
            f' over {R.shape[0]} seeds')
        Rm = R.mean(0)
        log('  R[i, j] (mean over seeds, %), row i = after task i+1:')
        for i, row in enumerate(Rm):
            log('   ' + ' '.join(f'{100 * v:6.2f}' for v in row) +
                f'   | avg {100 * average_accuracy(Rm)[i]:6.2f}')


def _compilation_cache():
    """Persistent XLA cache, so a resumed or repeated run skips compiling.

    ``$JAX_COMPILATION_CACHE_DIR`` wins; otherwise ``$JCL_DATA_DIR/xla``
    (default ``~/.cache/jcl/xla``); ``JCL_COMPILE_CACHE=0`` turns it off.
    """
    import jax
    if os.environ.get('JCL_COMPILE_CACHE', '1') == '0':
        return
    if 'JAX_COMPILATION_CACHE_DIR' not in os.environ:
        base = os.environ.get('JCL_DATA_DIR',
                              os.path.join(os.path.expanduser('~'),
                                           '.cache', 'jcl'))
        try:
            os.makedirs(os.path.join(base, 'xla'), exist_ok=True)
        except OSError:
            return  # no cache is slower, not wrong
        jax.config.update('jax_compilation_cache_dir',
                          os.path.join(base, 'xla'))
    jax.config.update('jax_persistent_cache_min_compile_time_secs', 1.0)


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        _compilation_cache()
        if args.command == 'report':
            return _report(args.folder)
        cfg = resolve(args)
        folder = args.out or os.path.join(
            'runs', f'{cfg["protocol"]}-{config_hash(cfg)}')
        resuming = prepare_folder(folder, cfg, args.overwrite)
        print(f'jcl: {"resuming" if resuming else "writing"} {folder}',
              flush=True)
        run_config(cfg, folder, log=lambda s: print(s, flush=True))
        print(f'jcl: results in {folder}', flush=True)
        return 0
    except JclError as e:
        print(f'jcl: error: {e}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print('jcl: interrupted; run the same command again to resume',
              file=sys.stderr)
        return 130


def _report(folder):
    from jcl import results
    cfg_path = os.path.join(folder, 'config.json')
    if not os.path.exists(cfg_path):
        raise OutputError(f'{folder} is not a jcl results folder')
    with open(cfg_path) as f:
        cfg = json.load(f)
    for s in cfg['scenarios']:
        done = {}
        for m in cfg['methods']:
            p = os.path.join(_run_folder(folder, cfg, s, m), 'result.npz')
            if os.path.exists(p):
                with np.load(p) as f:
                    done[m] = dict(f)
        if done:
            results.write_all(_scenario_folder(folder, cfg, s),
                              results.expand_grid(done), _meta(cfg, s))
            if cfg.get('grid'):
                results.write_grid(_scenario_folder(folder, cfg, s), done,
                                   cfg['grid'])
    print(f'jcl: rebuilt the summaries in {folder}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
