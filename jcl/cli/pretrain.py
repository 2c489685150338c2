"""``jcl pretrain``: train a front end or a backbone on one data set and
save it.

    jcl pretrain --data fashion-mnist --epochs 100 --out fashion-conv.npz
    jcl run --protocol split-mnist --features fashion-conv.npz ...

    jcl pretrain --network resnet18 --data glyph-letters \\
        --out resnet18-letters.npz

The first trains the BI-R paper's conv layers (``bir-conv``, the default)
and saves them by name for ``jcl run --features``. The second trains a
torchvision-layout ResNet for CLR and saves it as a torchvision state dict
(``.npz``) with a sidecar ``resnet18-letters.json`` describing it, read
exactly as torchvision's own ``resnet18-f37072fd.pth`` (``--backbone``).

The weights are a build artefact, like the data: kept in a file the user
names (``~/.cache/jcl`` is a good home), never in the repository.
"""

import os

import numpy as np

from jcl.core.errors import ConfigError, OutputError

# the data each network is pre-trained on
DATASETS = {
    'bir-conv': ('mnist', 'fashion-mnist', 'cifar10', 'cifar100'),
    'resnet18': ('glyph-letters', 'cifar10', 'cifar100'),
    'resnet50': ('glyph-letters', 'cifar10', 'cifar100'),
}
# defaults per network: epochs, batch, learning rate (of the optimiser)
DEFAULTS = {
    'bir-conv': dict(epochs=100, batch=256, lr={'adam': 1e-4},
                     optimizer='adam'),
    'resnet18': dict(epochs=2, batch=128, lr={'adam': 3e-3, 'sgd': 0.05},
                     optimizer='adam'),
    'resnet50': dict(epochs=1, batch=128, lr={'adam': 3e-3, 'sgd': 0.05},
                     optimizer='adam'),
}


def settings(args) -> dict:
    """The run's settings: ``args`` checked, with each unset option taken
    from :data:`DEFAULTS` of the network.

    Raises:
      ConfigError: an unknown network or data set, data the network is
        not trained on, an impossible value.
      OutputError: ``--out`` (or its sidecar) exists without
        ``--overwrite``, or its folder cannot be written.
    """
    if args.network not in DATASETS:
        raise ConfigError(f'unknown network {args.network!r}; choose one of '
                          f'{", ".join(DATASETS)}')
    known = sorted(set(sum(DATASETS.values(), ())))
    if args.data not in known:
        raise ConfigError(f'unknown data set {args.data!r}; choose one of '
                          f'{", ".join(known)}')
    if args.data not in DATASETS[args.network]:
        fits = [n for n, d in DATASETS.items() if args.data in d]
        raise ConfigError(f'--network {args.network} is not trained on '
                          f'{args.data} (it takes '
                          f'{", ".join(DATASETS[args.network])}); '
                          f'{args.data} is for --network {" or ".join(fits)}')
    d = DEFAULTS[args.network]
    optimizer = getattr(args, 'optimizer', None) or d['optimizer']
    if optimizer not in d['lr']:
        raise ConfigError(f'--network {args.network} trains with '
                          f'{d["optimizer"]}, not {optimizer}')
    augment = args.augment or ('crop' if args.data == 'glyph-letters'
                               else 'crop-flip')
    out = dict(epochs=d['epochs'] if args.epochs is None else args.epochs,
               batch=d['batch'] if args.batch is None else args.batch,
               lr=d['lr'][optimizer] if args.lr is None else args.lr,
               optimizer=optimizer, augment=augment)
    if out['epochs'] < 1 or out['batch'] < 1 or not out['lr'] > 0:
        raise ConfigError('--epochs and --batch must be >= 1, --lr > 0')
    check_out(args.out, args.overwrite,
              sidecar=args.network != 'bir-conv')
    return out


def check_out(path, overwrite, *, sidecar):
    """Refuses to overwrite ``path`` (and its sidecar) without
    ``overwrite``, and a folder that cannot be written."""
    from jcl.weights.front_end import meta_path
    paths = [path] + ([meta_path(path)] if sidecar else [])
    for p in paths:
        if os.path.exists(p) and not overwrite:
            raise OutputError(f'{p} exists; pass --overwrite to replace it')
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        raise OutputError(f'cannot write to {folder}')


def load(data, data_dir):
    from jcl import datasets
    if data == 'glyph-letters':
        return datasets.load_glyph_letters(data_dir)
    if data == 'mnist':
        return datasets.load_mnist()
    if data == 'fashion-mnist':
        return datasets.load_fashion_mnist(data_dir)
    return datasets.load_cifar(data, data_dir)


def run(args, log=print) -> int:
    """Trains, evaluates and saves; refuses to overwrite without
    ``--overwrite``."""
    from jcl.weights import front_end as pretrain
    s = settings(args)
    arrays = load(args.data, args.data_dir)
    shape = tuple(np.asarray(arrays['train_x']).shape[1:])
    shape = shape if len(shape) == 3 else shape + (1,)
    classes = int(np.max(arrays['train_y'])) + 1
    model = pretrain.network(args.network, num_classes=classes,
                             input_shape=shape)
    if args.network == 'bir-conv':
        return _front_end(args, s, model, arrays, shape, classes, log)
    aug = {'crop': pretrain.crop, 'crop-flip': _crop_flip,
           'none': None}[s['augment']]
    depth = pretrain.NETWORKS[args.network]['depth']
    log(f'jcl: {args.network} on {args.data} ({len(arrays["train_y"])} '
        f'train, {len(arrays["test_y"])} test, {classes} classes): '
        f'{s["epochs"]} epochs, batch {s["batch"]}, {s["optimizer"]} '
        f'{s["lr"]:g}, augment {s["augment"]}')
    params, state, curve = pretrain.pretrain_epochs(
        model, arrays, epochs=s['epochs'], batch_size=s['batch'],
        lr=s['lr'], optimizer=s['optimizer'], seed=args.seed, augment=aug,
        progress=log)
    from jcl.models.torchvision_import import to_torchvision
    acc = curve[-1]['test_accuracy']
    pretrain.save_backbone(
        args.out, to_torchvision({'params': params, **state}, depth),
        network=args.network, depth=depth, data=args.data,
        num_classes=classes, input_shape=list(shape),
        prepare='x / 255, ImageNet mean/std, grey replicated to 3 channels',
        **s, seed=args.seed, test_accuracy=acc, curve=curve,
        seconds=round(sum(c['seconds'] for c in curve), 1))
    log(f'jcl: {args.network} trained on {args.data} for {s["epochs"]} '
        f'epochs: test accuracy {acc:.2%}; torchvision state dict in '
        f'{args.out} (description in {pretrain.meta_path(args.out)})')
    return 0


def _crop_flip(key, x):
    """Crops (black padding) and horizontal flips of prepared images."""
    import jax
    import jax.numpy as jnp

    from jcl.weights.front_end import crop
    k_crop, k_flip = jax.random.split(key)
    x = crop(k_crop, x)
    flip = jax.random.bernoulli(k_flip, 0.5, (x.shape[0],))
    return jnp.where(flip[:, None, None, None], x[:, :, ::-1], x)


def _front_end(args, s, model, arrays, shape, classes, log):
    import functools

    from jcl.training import augment
    from jcl.weights import front_end as pretrain
    aug = {'crop': functools.partial(pretrain.crop, fill=0.0),
           'crop-flip': augment.crop_and_flip, 'none': None}[s['augment']]
    params, state, acc = pretrain.pretrain(
        model, arrays, epochs=s['epochs'], batch_size=s['batch'],
        lr=s['lr'], seed=args.seed, progress=log, augment=aug)
    pretrain.save(args.out, params, state, network=args.network,
                  data=args.data, num_classes=classes, input_shape=shape,
                  epochs=s['epochs'], test_accuracy=acc, seed=args.seed)
    log(f'jcl: {args.network} trained on {args.data} for {s["epochs"]} '
        f'epochs: test accuracy {acc:.2%}; weights in {args.out}')
    return 0
