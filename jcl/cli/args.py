"""The command line's arguments: the parser and the value syntax.

>>> parse_grid(['si.c=1:100:3'])
{'si.c': [1.0, 10.0, 100.0]}
>>> parse_sets(['ewc.lambda=1e5'])
{'ewc.lambda': 100000.0}
"""

import argparse

import numpy as np

from jcl.core.errors import ConfigError
from jcl.tasks import catalog


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog='jcl', description='Continual learning in JAX.')
    sub = p.add_subparsers(dest='command', required=True)
    r = sub.add_parser('run', help='train and evaluate on a protocol')
    r.add_argument('--from', dest='from_folder', metavar='DIR',
                   help='repeat the run of results folder DIR (its '
                   'config.json records the command); flags given with it '
                   'override the recorded ones; the results go to DIR '
                   'unless --out says otherwise')
    r.add_argument('--config', dest='from_config', metavar='FILE',
                   help='the same from a config.json (DIR/config.json)')
    r.add_argument('--protocol', required=True,
                   help=', '.join(catalog.PROTOCOLS))
    r.add_argument('--scenario', required=True,
                   help='task, domain, class, a comma list, or all')
    r.add_argument('--method', required=True,
                   help='comma list of methods; + combines (e.g. '
                   'none,joint,bir+si); `jcl methods` lists them: '
                   + ', '.join(method_names()))
    r.add_argument('--plugin', action='append', default=[],
                   metavar='MODULE',
                   help='import MODULE first: a module that registers '
                   'methods (jcl.methods.register); installed packages '
                   'that declare the entry-point group jcl.methods are '
                   'loaded without it')
    r.add_argument('--seeds', type=int, default=1,
                   help='number of seeds, trained at once: seeds FIRST.. '
                   'FIRST+N-1 with FIRST from --first-seed (default 0)')
    r.add_argument('--first-seed', type=int, default=0,
                   help='the first seed (the NMI code reports seeds 2..21 '
                   'with --class-order shuffled)')
    r.add_argument('--iters', type=int, default=None,
                   help='iterations per task (default: the paper value); '
                   'on offline-sequence, a cap on each task\'s steps (quick '
                   'runs)')
    r.add_argument('--epochs', type=int, default=None,
                   help='passes over each task\'s data instead of '
                   'iterations (default: the protocol\'s; seq-mnist: 1)')
    r.add_argument('--batch', type=int, default=None,
                   help='minibatch size (default: the paper value)')
    r.add_argument('--hidden', default=None, metavar='H1,H2,...',
                   help='hidden layer sizes (default: the protocol\'s; the '
                   'BI-R paper\'s permuted MNIST: 2000,2000)')
    r.add_argument('--gen-hidden', default=None, metavar='H1,H2,...',
                   help='the generator\'s hidden layers (default: as '
                   '--hidden): GR\'s VAE, or the decoder of a replay-'
                   'through-feedback model (BI-R, RtF), whose encoder is '
                   'the classifier (the BI-R paper\'s Fig. 4)')
    r.add_argument('--lr', type=float, default=None,
                   help='learning rate (default: the paper value)')
    r.add_argument('--tasks', type=int, default=None,
                   help='learn only the first N tasks of a task sequence '
                   '(offline-sequence)')
    r.add_argument('--image-size', type=int, default=None,
                   help='image-folders: side of the resized images '
                   '(default 224, the CLR reference)')
    r.add_argument('--permutations', type=int, default=None,
                   help='permuted MNIST: number of tasks (default 10)')
    r.add_argument('--class-order', choices=('fixed', 'shuffled'),
                   default='fixed',
                   help='split protocols: the papers\' fixed order, or the '
                   'NMI code\'s order shuffled per seed')
    r.add_argument('--class-outputs', choices=('seen', 'all'),
                   default=None,
                   help='Class-IL active output units: the classes seen so '
                   'far (the default but on seq-mnist; the BI-R paper\'s '
                   'code) or all units from the first task (the NMI '
                   'code\'s and mammoth\'s default)')
    r.add_argument('--reinit', action='store_true',
                   help='re-initialise the network before every task after '
                   'the first (what it keeps comes from replay alone; the '
                   'BI-R paper\'s Fig. 4)')
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
    r.add_argument('--features', default=None, metavar='WEIGHTS',
                   help='learn on the features of a frozen front end '
                   'trained by `jcl pretrain` (split protocols)')
    r.add_argument('--backbone', default=None, metavar='WEIGHTS',
                   help='the pre-trained ResNet of a backbone protocol '
                   '(offline-sequence): a torchvision state dict (.pth, '
                   'safetensors, .npz), e.g. torchvision\'s '
                   'resnet18-f37072fd.pth; default: the one `jcl pretrain '
                   '--network resnet18 --data glyph-letters` keeps in '
                   '~/.cache/jcl')
    r.add_argument('--seed-chunk', type=int, default=None,
                   help='seeds per compiled group (default: all)')
    r.add_argument('--checkpoint-every', type=int, default=None,
                   metavar='STEPS',
                   help='checkpoint inside a task every STEPS steps (at the '
                   'end of a compiled chunk, about a tenth of a task); '
                   'default: about once a minute; 0: only after each task. '
                   'A killed run started again with the same command ends '
                   'with the numbers of an uninterrupted run')
    r.add_argument('--log', default='csv', metavar='KINDS',
                   help='metric logs, comma-separated: csv (default; '
                   'steps.csv, tasks.csv), tensorboard (event files, no '
                   'TensorFlow needed), wandb (pip install \'jcl[wandb]\'; '
                   'WANDB_MODE=offline works offline), or none; in '
                   'OUT/runs/METHOD/logs (OUT/SCENARIO/runs/METHOD/logs with '
                   'several scenarios)')
    r.add_argument('--log-every', type=int, default=10, metavar='STEPS',
                   help='one logged point (the mean) every STEPS steps '
                   '(default 10)')
    r.add_argument('--out', default=None, help='results folder')
    r.add_argument('--overwrite', action='store_true',
                   help='replace a finished results folder')
    d = r.add_argument_group(
        'devices and processes', 'where the rows (grid points x seeds) '
        'train; none of these changes a result')
    d.add_argument('--devices', type=int, default=None, metavar='N',
                   help='use the first N local devices of each process '
                   '(default: all); rows are split over them')
    d.add_argument('--coordinator', default=None, metavar='HOST:PORT',
                   help='multi-process run: process 0\'s address '
                   '(default $JAX_COORDINATOR_ADDRESS)')
    d.add_argument('--num-processes', type=int, default=None,
                   help='multi-process run: how many (default '
                   '$JAX_NUM_PROCESSES)')
    d.add_argument('--process-id', type=int, default=None,
                   help='multi-process run: this one, 0.. (default '
                   '$JAX_PROCESS_ID)')
    d.add_argument('--distributed', action='store_true',
                   help='multi-process run with the settings JAX detects '
                   '(Slurm, Open MPI, Cloud TPU)')
    meth = sub.add_parser('methods', help='list the methods, their '
                          'hyperparameters and defaults')
    meth.add_argument('--plugin', action='append', default=[],
                      metavar='MODULE', help='import MODULE first')
    rep = sub.add_parser('report', help='rebuild the summaries and plots '
                         'of results folders; several: one table and one '
                         'plot for all')
    rep.add_argument('folders', nargs='+', metavar='DIR')
    rep.add_argument('--out', default='report', metavar='PREFIX',
                     help='several folders: write PREFIX.md and PREFIX.png '
                     '(default: report)')
    pre = sub.add_parser('pretrain', help='train a front end (conv '
                         'layers, for --features) or a ResNet backbone '
                         '(torchvision layout, for --backbone)')
    pre.add_argument('--data', required=True,
                     help='mnist, fashion-mnist, cifar10, cifar100 '
                     '(bir-conv); glyph-letters, cifar10, cifar100 '
                     '(resnet18, resnet50)')
    pre.add_argument('--network', default='bir-conv',
                     help='bir-conv: the BI-R paper\'s 5 conv layers '
                     '(default); resnet18, resnet50: a torchvision ResNet '
                     'saved as a torchvision state dict')
    pre.add_argument('--epochs', type=int, default=None,
                     help='default: 100 (bir-conv), 2 (resnet18), '
                     '1 (resnet50)')
    pre.add_argument('--batch', type=int, default=None,
                     help='default: 256 (bir-conv), 128 (resnets)')
    pre.add_argument('--lr', type=float, default=None,
                     help='default: 1e-4 (bir-conv, Adam); resnets: 3e-3 '
                     '(AdamW), 0.05 with --optimizer sgd')
    pre.add_argument('--optimizer', choices=('adam', 'sgd'), default=None,
                     help='resnets: AdamW (default) or SGD (momentum 0.9, '
                     'Nesterov, weight decay 5e-4), half an epoch of '
                     'warm-up then cosine to 0; bir-conv: Adam only')
    pre.add_argument('--augment', choices=('crop-flip', 'crop', 'none'),
                     default=None,
                     help='random crops (padding 4) and horizontal flips; '
                     'default crop-flip, crop (no flip) for glyph-letters')
    pre.add_argument('--seed', type=int, default=0)
    pre.add_argument('--data-dir', default=None,
                     help='where the data sets are (or are cached)')
    pre.add_argument('--out', required=True,
                     help='weights file (.npz); a ResNet\'s description '
                     'goes beside it (F.npz -> F.json)')
    pre.add_argument('--overwrite', action='store_true')
    return p


def method_names() -> list:
    """The built-in methods' names (the parser is built before plug-ins
    load; ``jcl methods`` lists theirs too)."""
    from jcl.methods import catalog
    return catalog.built_in_names()


def parse_sets(items) -> dict:
    """``['NAME=VALUE', ...]`` -> ``{NAME: float}``."""
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


def parse_grid(items) -> dict:
    """``['NAME=V1,V2', 'NAME=START:STOP:N']`` -> ``{NAME: [values]}``."""
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
