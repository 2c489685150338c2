"""From parsed arguments to the full, validated run configuration.

The configuration is a plain dict (written to ``config.json``, hashed to
recognise a folder's run): every name resolved, every default filled in,
the class order of every seed written out.

>>> _scenarios('all')
['task', 'domain', 'class']
"""

import json
import os

import numpy as np

from jcl.cli.args import parse_grid, parse_sets
from jcl.core.errors import ConfigError
from jcl.logs.metric_log import log_settings
from jcl.methods import catalog as methods_catalog
from jcl.tasks import catalog

SCENARIO_CHOICES = ('task', 'domain', 'class')


def task_classes(protocol: str, order: str, seed: int):
    """The original classes of each task, in output order, for one seed
    (split protocols; ``None`` for permuted ones)."""
    spec = catalog.protocol_spec(protocol)
    if spec.kind != 'split':
        return None
    got = catalog.class_order(protocol, order, seed)
    classes = np.arange(spec.num_classes) if got is None else got
    return classes.reshape(spec.num_tasks, -1).tolist()


def _scenarios(text):
    if text == 'all':
        return list(SCENARIO_CHOICES)
    scenarios = [s.strip() for s in text.split(',')]
    for s in scenarios:
        if s not in SCENARIO_CHOICES:
            raise ConfigError(f'unknown scenario {s!r}; choose from '
                              'task, domain, class, all')
    return scenarios


def _hidden(text, flag='--hidden'):
    try:
        sizes = [int(v) for v in text.split(',')]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise ConfigError(f'{flag} {text!r}: give layer sizes as whole '
                          'numbers >= 1, e.g. 2000,2000')
    return sizes


def _check_counts(args, iters, batch):
    if args.seeds < 1:
        raise ConfigError(f'--seeds must be >= 1, got {args.seeds}')
    if args.first_seed < 0:
        raise ConfigError(f'--first-seed must be >= 0, got '
                          f'{args.first_seed}')
    if iters < 1:
        raise ConfigError(f'--iters must be >= 1, got {iters}')
    if batch < 1:
        raise ConfigError(f'--batch must be >= 1, got {batch}')
    if args.permutations is not None and args.permutations < 1:
        raise ConfigError('--permutations must be >= 1')
    tasks = getattr(args, 'tasks', None)
    if tasks is not None:
        spec = catalog.protocol_spec(args.protocol)
        if spec.kind != 'sequence':
            raise ConfigError('--tasks applies to task sequences '
                              '(offline-sequence)')
        if not 1 <= tasks <= spec.num_tasks:
            raise ConfigError(f'--tasks must be in 1..{spec.num_tasks}')
    if args.seed_chunk is not None and args.seed_chunk < 1:
        raise ConfigError('--seed-chunk must be >= 1')


def _schedules(methods, spec, args, epochs) -> dict:
    """``{method: {'iters': n, 'batch': b, 'lr': r}}`` of the methods whose
    own defaults (:attr:`jcl.methods.MethodEntry.schedule`) apply: where
    ``--iters`` / ``--batch`` / ``--lr`` are not given (iterations: not
    with epochs)."""
    out = {}
    for m in methods:
        own = methods_catalog.schedule(methods_catalog.parse(m), spec)
        got = {}
        if 'iters' in own and args.iters is None and epochs is None:
            got['iters'] = int(own['iters'])
        if 'batch' in own and args.batch is None:
            got['batch'] = int(own['batch'])
        for k, v in got.items():
            if v < 1:
                raise ConfigError(f'{m}: its own {k} must be >= 1, got {v}')
        if 'lr' in own and args.lr is None:
            got['lr'] = float(own['lr'])
        if got:
            out[m] = got
    return out


def _hparams(methods, scenarios, protocol, lr, batch, sets, grid,
             schedules=None):
    hps = {}
    for m in methods:
        parts = methods_catalog.parse(m)
        own = (schedules or {}).get(m, {})
        for s in scenarios:
            methods_catalog.check_scenario(parts, s)
            hp = methods_catalog.default_hparams(
                parts, lr=own.get('lr', lr), protocol=protocol, scenario=s,
                batch=own.get('batch', batch))
            hp.update({k: v for k, v in sets.items() if k in hp})
            methods_catalog.check_hparams(parts, hp)
            for k, values in grid.items():
                if k in hp:
                    if k in methods_catalog.static_hparams(parts):
                        raise ConfigError(
                            f'--grid {k}: it sets a shape, so it takes one '
                            'value per run (use --set)')
                    methods_catalog.check_hparams(parts, {k: np.array(values)})
            hps[f'{s}/{m}'] = hp
    used = set().union(*(set(h) for h in hps.values()))
    for k in list(sets) + list(grid):
        if k not in used:
            raise ConfigError(f'--set {k}: no selected method has this '
                              f'hyperparameter (known: '
                              f'{", ".join(sorted(used))})')
    return hps


def resolve(args) -> dict:
    """Turns arguments into the full, validated run configuration."""
    spec = catalog.protocol_spec(args.protocol)
    scenarios = _scenarios(args.scenario)
    methods = [m.strip() for m in args.method.split(',') if m.strip()]
    if not methods:
        raise ConfigError('--method: give at least one method')
    epochs = spec.epochs if args.epochs is None else args.epochs
    max_steps = None
    if spec.kind == 'sequence':     # --iters caps a task's steps
        max_steps, args.iters = args.iters, None
        if max_steps is not None and max_steps < 1:
            raise ConfigError(f'--iters must be >= 1, got {max_steps}')
    if epochs is not None and args.iters is not None:
        raise ConfigError('give --epochs or --iters, not both')
    if epochs is not None and epochs < 1:
        raise ConfigError(f'--epochs must be >= 1, got {epochs}')
    iters = spec.iters if args.iters is None else args.iters
    batch = spec.batch if args.batch is None else args.batch
    lr = spec.lr if args.lr is None else args.lr
    hidden = list(spec.hidden) if args.hidden is None else _hidden(
        args.hidden)
    _check_counts(args, iters if epochs is None else 1, batch)
    sets = parse_sets(args.set)
    grid = parse_grid(args.grid)
    validation = args.validation
    if validation is None:
        validation = 0.1 if grid else 0.0
    if validation and not 0.0 < validation < 1.0:
        raise ConfigError(f'--validation must be in (0, 1), got '
                          f'{validation}')
    schedules = _schedules(methods, spec, args, epochs)
    hps = _hparams(methods, scenarios, args.protocol, lr, batch, sets, grid,
                   schedules)
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    if args.features and spec.kind != 'split':
        raise ConfigError('--features: the front end applies to split '
                          'protocols')
    cfg = {
        'protocol': args.protocol, 'scenarios': scenarios,
        'methods': methods, 'hparams': hps, 'seeds': args.seeds,
        'iters': iters, 'batch': batch, 'hidden': hidden,
        'gen_hidden': (None if args.gen_hidden is None else
                       _hidden(args.gen_hidden, '--gen-hidden')),
        'num_tasks': (getattr(args, 'tasks', None) or args.permutations
                      or spec.num_tasks),
        'class_order': args.class_order, 'data_dir': args.data_dir,
        'seed_chunk': args.seed_chunk or args.seeds, 'grid': grid,
        'validation': validation, 'first_seed': args.first_seed,
    }
    if schedules:   # (absent: the hash of older runs)
        cfg['schedules'] = schedules
    every = getattr(args, 'checkpoint_every', None)
    if every is not None:
        if every < 0:
            raise ConfigError(f'--checkpoint-every must be >= 0, got {every}')
        cfg['checkpoint_every'] = every
    cfg.update(log_settings(getattr(args, 'log', 'csv'),
                            getattr(args, 'log_every', 10)))
    if getattr(args, 'plugin', None):   # (absent: the hash of older runs)
        cfg['plugins'] = list(args.plugin)
    if args.features:
        cfg['features'] = os.path.abspath(args.features)
        cfg['features_sha256'] = file_sha256(args.features)
    if spec.backbone:
        path = getattr(args, 'backbone', None) or default_backbone(spec)
        if not os.path.exists(path):
            raise ConfigError(
                f'{args.protocol} needs a pre-trained {spec.backbone}: '
                f'{path} does not exist. Make it with `jcl pretrain '
                f'--network {spec.backbone} --data glyph-letters --out '
                f'{path}`, or pass --backbone FILE (a torchvision state '
                'dict: .pth, safetensors or .npz)')
        cfg['backbone'] = os.path.abspath(path)
        cfg['backbone_sha256'] = file_sha256(path)
        if max_steps is not None:
            cfg['max_steps'] = max_steps
        if getattr(args, 'image_size', None) is not None:
            if spec.dataset != 'folders' or args.image_size < 8:
                raise ConfigError('--image-size applies to image-folders '
                                  'and must be >= 8')
            cfg['image_size'] = args.image_size
        if spec.dataset == 'folders':
            if not args.data_dir:
                raise ConfigError(f'{args.protocol} needs --data-dir: the '
                                  'CLR release root, a task list file or a '
                                  'folder of task folders')
            cfg['data_dir'] = os.path.abspath(args.data_dir)
    elif getattr(args, 'backbone', None):
        raise ConfigError(f'--backbone: {args.protocol} has no backbone')
    outputs = args.class_outputs or spec.class_outputs
    if outputs != 'seen':  # (absent: the hash of older runs)
        cfg['class_outputs'] = outputs
    if epochs is not None:
        cfg['epochs'] = epochs
    if args.reinit:   # (absent: the hash of older runs)
        cfg['reinit'] = True
    if spec.kind == 'split':
        cfg['task_classes'] = {str(s): task_classes(args.protocol,
                                                    args.class_order, s)
                               for s in seeds}
    return cfg


def default_backbone(spec) -> str:
    """Where ``jcl pretrain`` keeps a protocol's default backbone: the
    data folder (``$JCL_DATA_DIR``, default ``~/.cache/jcl``)."""
    from jcl.datasets._common import resolve_dir
    folder = resolve_dir(None, 'JCL_DATA_DIR', '~/.cache/jcl')
    return os.path.join(folder, f'{spec.backbone}-glyph-letters.npz')


def scenario_config(cfg: dict, scenario: str) -> dict:
    """The part of ``cfg`` that one scenario's folder ran."""
    from jcl.cli.rerun import with_scenario
    out = {**cfg, 'scenarios': [scenario],
           'hparams': {k: v for k, v in cfg['hparams'].items()
                       if k.startswith(f'{scenario}/')}}
    if 'command' in cfg:
        out['command'] = with_scenario(cfg['command'], scenario)
    return out


def read_json(path, error, hint=''):
    """A configuration file's JSON; an unreadable one raises ``error``
    (a :class:`jcl.core.errors.JclError`) naming it, then ``hint``."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        raise error(f'{path} is unreadable{hint}') from None


def file_sha256(path) -> str:
    """The SHA-256 of a file (a weights file the run depends on)."""
    from jcl.datasets._common import file_sha256 as sha256
    return sha256(path, 'weights file')
