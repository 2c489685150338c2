"""Pre-trained front ends: train a convolutional network on one data set,
keep its weights, and turn another data set into its features.

The BI-R paper pre-trains five conv layers on CIFAR-10 and learns
CIFAR-100 incrementally on their (frozen) output; internal replay then
replays at that hidden level. :func:`pretrain` trains a network with all
classes of a data set as one task (jcl's own compiled training, epochs
without replacement, optional augmentation); :func:`save` / :func:`load`
keep its weights by name; :func:`feature_protocol` maps a protocol's
images through the frozen conv layers once (evaluation mode), so that
every method trains on the features as an MLP would on pixels.

A backbone for CLR is the other kind: ``resnet18`` / ``resnet50`` (a
torchvision-layout :class:`jcl.models.resnet.ResNet`, ImageNet stem,
inputs prepared by :func:`imagenet_prepare`) trained by
:func:`pretrain_epochs` and saved by :func:`save_backbone` as a torchvision
state dict, read like torchvision's own file (:mod:`jcl.weights.pretrain_resnet`
has the training loop, the export and the file format).

>>> NETWORKS['bir-conv']['channels']
(16, 32, 64, 128, 256)
>>> NETWORKS['resnet18']
{'depth': 18}
"""

import os

import jax
import jax.numpy as jnp
import numpy as np

from jcl.core.errors import ConfigError, DataError
from jcl.core.model import Model
from jcl.methods import supervised
from jcl.models import conv_classifier
from jcl.tasks import protocols
from jcl.training import checkpoint
from jcl.training.learner import Learner
from jcl.weights.pretrain_resnet import (  # noqa: F401  (re-exported)
    IMAGENET_MEAN,
    IMAGENET_STD,
    crop,
    imagenet_prepare,
    meta_path,
    pretrain_epochs,
    read_meta,
    resnet_classifier,
    save_backbone,
)

NETWORKS = {
    # the BI-R paper's front end (5 conv layers, the last without BN and
    # ReLU) under the NMI code's CIFAR MLP 2000-2000
    'bir-conv': dict(channels=(16, 32, 64, 128, 256), hidden=(2000, 2000),
                     plain_last=True),
    # CLR's backbones (torchvision layout, ImageNet stem, one shared head)
    'resnet18': dict(depth=18),
    'resnet50': dict(depth=50),
}


def network(name: str, *, num_classes: int, input_shape: tuple) -> Model:
    """A named pre-training network (``input_shape`` ``(H, W, C)``; a
    ResNet always reads 3 channels, see :func:`imagenet_prepare`)."""
    if name not in NETWORKS:
        raise ConfigError(f'unknown network {name!r}; choose one of '
                          f'{", ".join(NETWORKS)}')
    if 'depth' in NETWORKS[name]:
        return resnet_classifier(NETWORKS[name]['depth'], num_classes,
                                 tuple(input_shape[:2]))
    return conv_classifier(num_outputs=num_classes, input_shape=input_shape,
                           **NETWORKS[name])


def images(x):
    """``prepare`` of image protocols for conv nets: uint8 ``[B, H, W]``
    or ``[B, H, W, C]`` -> float32 in [0, 1] with a channel axis."""
    x = x.astype(jnp.float32) / 255.0
    return x[..., None] if x.ndim == 3 else x


def pretrain(model: Model, arrays: dict, *, epochs: int, batch_size: int,
             lr: float, seed: int = 0, augment=None, progress=print):
    """Trains ``model`` on all classes of ``arrays`` at once.

    Returns:
      ``(params, model_state, test accuracy)``.
    """
    from jcl.sweep.loop import run_seeds
    num_classes = int(np.max(arrays['train_y'])) + 1
    proto = protocols.class_split('pretrain', arrays, 'class',
                                  classes_per_task=num_classes,
                                  flatten=False, prepare=images)
    learner = Learner(lambda hp: model, lambda hp, m: supervised(),
                      prepare=images, batch_size=batch_size, epochs=epochs,
                      augment=augment)
    result = run_seeds(learner, proto, {'lr': np.array([lr], np.float32)},
                       jax.random.PRNGKey(seed)[None], progress=progress,
                       label='[pretrain]', heartbeat_after=30.0)
    state = jax.tree.map(lambda a: a[0], result.state)
    return state.params, state.model_state, float(result.R[0, 0, 0])


def save(path, params, model_state, **meta):
    """Writes the weights (by name) and ``meta`` (strings or numbers)."""
    checkpoint.save(path, {'params': params, 'model_state': model_state},
                    **{k: np.asarray(v) for k, v in meta.items()})


def load(path, model: Model):
    """Reads weights saved by :func:`save` into ``model``'s structure.

    Returns:
      ``(params, model_state, meta)``.
    """
    params, state = jax.eval_shape(model.init, jax.random.PRNGKey(0))
    like = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype),
                        {'params': params, 'model_state': state})
    if not os.path.exists(path):
        raise DataError(f'weights file {path} does not exist; make it with '
                        '`jcl pretrain`')
    tree, meta = checkpoint.load(path, like)
    return tree['params'], tree['model_state'], meta


def load_front_end(path):
    """The network saved in ``path`` by ``jcl pretrain`` (its name, classes
    and input shape are in the file) and its weights.

    Returns:
      ``(model, params, model_state, meta)``.
    """
    if not os.path.exists(path):
        raise DataError(f'weights file {path} does not exist; make it with '
                        '`jcl pretrain`')
    meta = {k[len(checkpoint.EXTRA):]: v
            for k, v in checkpoint.read(path).items()
            if k.startswith(checkpoint.EXTRA)}
    try:
        model = network(str(meta['network']),
                        num_classes=int(meta['num_classes']),
                        input_shape=tuple(int(d) for d in
                                          meta['input_shape']))
    except KeyError as e:
        if 'depth' in (read_meta(path) or {}):
            raise DataError(f'{path} is a ResNet backbone (a torchvision '
                            'state dict, for --backbone), not a --features '
                            'front end') from None
        raise DataError(f'{path} is not a jcl pretrain weights file '
                        f'(no {e.args[0]!r})') from None
    params, state, meta = load(path, model)
    return model, params, state, meta


def feature_arrays(arrays: dict, model: Model, params, model_state,
                   chunk: int = 1000) -> dict:
    """A data set's images replaced by the features of the frozen conv
    layers of ``model`` (evaluation mode): float32 ``train_x`` and
    ``test_x`` ``[N, F]``, labels unchanged. Computed once, in chunks."""
    fn = jax.jit(lambda x: model.views['conv_features'](
        params, model_state, images(x)))

    def convert(x):
        x = np.asarray(x)
        return np.concatenate([np.asarray(fn(x[i:i + chunk]))
                               for i in range(0, len(x), chunk)])

    return {**arrays, 'train_x': convert(arrays['train_x']),
            'test_x': convert(arrays['test_x'])}

