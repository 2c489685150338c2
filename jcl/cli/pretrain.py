"""``jcl pretrain``: train a front end on one data set and save it.

    jcl pretrain --data fashion-mnist --epochs 100 --out fashion-conv.npz
    jcl run --protocol split-mnist --features fashion-conv.npz ...

The weights are a build artefact, like the data: kept in a file the user
names (``~/.cache/jcl`` is a good home), never in the repository.
"""

import os

import numpy as np

from jcl.errors import ConfigError, OutputError

DATASETS = ('mnist', 'fashion-mnist', 'cifar10', 'cifar100')


def run(args, log=print) -> int:
    """Trains, evaluates and saves; refuses to overwrite without
    ``--overwrite``."""
    from jcl import augment, datasets, pretrain
    if args.data not in DATASETS:
        raise ConfigError(f'unknown data set {args.data!r}; choose one of '
                          f'{", ".join(DATASETS)}')
    if args.epochs < 1 or args.batch < 1 or not args.lr > 0:
        raise ConfigError('--epochs and --batch must be >= 1, --lr > 0')
    if os.path.exists(args.out) and not args.overwrite:
        raise OutputError(f'{args.out} exists; pass --overwrite to replace '
                          'it')
    folder = os.path.dirname(os.path.abspath(args.out))
    if not os.access(folder, os.W_OK):
        raise OutputError(f'cannot write to {folder}')
    if args.data == 'mnist':
        arrays = datasets.load_mnist()
    elif args.data == 'fashion-mnist':
        arrays = datasets.load_fashion_mnist(args.data_dir)
    else:
        arrays = datasets.load_cifar(args.data, args.data_dir)
    shape = tuple(np.asarray(arrays['train_x']).shape[1:])
    shape = shape if len(shape) == 3 else shape + (1,)
    classes = int(np.max(arrays['train_y'])) + 1
    model = pretrain.network(args.network, num_classes=classes,
                             input_shape=shape)
    params, state, acc = pretrain.pretrain(
        model, arrays, epochs=args.epochs, batch_size=args.batch,
        lr=args.lr, seed=args.seed, progress=log,
        augment=augment.crop_and_flip if args.augment == 'crop-flip'
        else None)
    pretrain.save(args.out, params, state, network=args.network,
                  data=args.data, num_classes=classes, input_shape=shape,
                  epochs=args.epochs, test_accuracy=acc, seed=args.seed)
    log(f'jcl: {args.network} trained on {args.data} for {args.epochs} '
        f'epochs: test accuracy {acc:.2%}; weights in {args.out}')
    return 0
