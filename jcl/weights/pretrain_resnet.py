"""Pre-training a ResNet backbone for CLR, saved as a torchvision file.

CLR (Ge et al., ICCV 2023) reprograms a frozen ImageNet ResNet. Where
torchvision's weights cannot be had, ``jcl pretrain --network resnet18``
trains one on data disjoint from the continual tasks (the Latin-letter
glyphs, :func:`jcl.datasets.load_glyph_letters`) and writes it in the
same form as torchvision's: a state dict (``conv1.weight`` OIHW, BatchNorm
``weight``/``bias``/``running_mean``/``running_var``/
``num_batches_tracked``, ``fc.weight`` ``[out, in]``) in an ``.npz``, so
that both are read the same way, :func:`jcl.weights.statedict.load_state_dict`
then :func:`jcl.models.torchvision_import.load_backbone`. What the file
is (data, epochs, accuracy curve) goes into a sidecar ``F.json`` beside
``F.npz`` (:func:`meta_path`), never into the state dict.

Inputs are prepared as torchvision's: pixels / 255, normalised with the
ImageNet mean and std, grey replicated to 3 channels
(:func:`imagenet_prepare`; CLR prepares its tasks the same way).

>>> import numpy as np
>>> x = imagenet_prepare(np.zeros((2, 4, 4), np.uint8))
>>> x.shape, [round(float(v), 3) for v in x[0, 0, 0]]
((2, 4, 4, 3), [-2.118, -2.036, -1.804])
"""

import functools
import hashlib
import json
import os
import time
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jcl.core import taskdata as data_lib
from jcl.core.errors import ConfigError, OutputError
from jcl.core.model import Model, make_model
from jcl.datasets.imagenet import IMAGENET_MEAN, IMAGENET_STD, imagenet_prepare
from jcl.methods import supervised
from jcl.models.resnet import ResNet
from jcl.sweep.chunks import train_in_chunks
from jcl.tasks import protocols
from jcl.training.learner import Learner, init_state, task_steps
from jcl.training.progress import TaskProgress
from jcl.training.task import begin_steps, finish_task, run_steps


def crop(key, x, pad: int = 4, fill=None):
    """Random crops of prepared images ``[B, H, W, C]`` padded by ``pad``
    pixels of ``fill`` (a scalar or ``[C]``; default black as
    :func:`imagenet_prepare` maps 0), one offset per image; no flip (a
    flipped letter is another letter).

    >>> x = imagenet_prepare(np.full((3, 8, 8), 255, np.uint8))
    >>> y = crop(jax.random.PRNGKey(0), x, pad=2)
    >>> black = imagenet_prepare(np.zeros((1, 1, 1), np.uint8))[0, 0, 0]
    >>> y.shape, bool(jnp.all((y == x[0, 0, 0]) | (y == black)))
    ((3, 8, 8, 3), True)
    """
    b, h, w, c = x.shape
    k_y, k_x = jax.random.split(key)
    if fill is None:
        fill = -jnp.asarray(IMAGENET_MEAN) / jnp.asarray(IMAGENET_STD)
    padded = jnp.broadcast_to(jnp.asarray(fill, x.dtype),
                              (b, h + 2 * pad, w + 2 * pad, c))
    padded = padded.at[:, pad:pad + h, pad:pad + w].set(x)
    dy = jax.random.randint(k_y, (b,), 0, 2 * pad + 1)
    dx = jax.random.randint(k_x, (b,), 0, 2 * pad + 1)
    return jax.vmap(lambda img, i, j: jax.lax.dynamic_slice(
        img, (i, j, 0), (h, w, c)))(padded, dy, dx)


def resnet_classifier(depth: int, num_classes: int, size=(32, 32)) -> Model:
    """``ResNet(depth, stem='imagenet', bn='shared', head='shared')`` with
    ``num_classes`` outputs as a :class:`jcl.core.model.Model` on 3-channel
    ``size`` images: ``params`` and ``{'batch_stats'}`` are the variables
    :func:`jcl.models.torchvision_import.to_torchvision` exports."""
    net = ResNet(depth=depth, stem='imagenet', bn='shared', head='shared',
                 head_width=num_classes)

    def init(key):
        v = net.init(key, jnp.zeros((1,) + tuple(size) + (3,)),
                     jnp.zeros((1,), jnp.int32), train=False)
        return v['params'], {'batch_stats': v['batch_stats']}

    def apply(params, state, x, task, *, train=False):
        variables = {'params': params, **state}
        if train:
            out, new = net.apply(variables, x, task, train=True,
                                 mutable=['batch_stats'])
            return out, dict(new)
        return net.apply(variables, x, task, train=False), state

    return make_model(init=init, apply=apply, name=f'resnet{depth}')


def scheduled(kind: str, total_steps: int, *, warmup_steps: int = 0,
              weight_decay: float = 5e-4):
    """``make_optimizer`` of a :class:`jcl.training.learner.Learner`:
    SGD (momentum
    0.9, Nesterov, L2 ``weight_decay``) or AdamW, at ``hp['lr']`` after a
    linear warm-up, cosine-annealed to 0 at ``total_steps``."""
    def make(hp, labels):
        del labels   # one group

        def rate(count):
            t = count.astype(jnp.float32)
            warm = jnp.minimum(1.0, (t + 1) / max(warmup_steps, 1))
            done = jnp.minimum(t / max(total_steps, 1), 1.0)
            return hp['lr'] * warm * 0.5 * (1 + jnp.cos(jnp.pi * done))

        if kind == 'adam':
            return optax.adamw(rate, weight_decay=weight_decay)
        return optax.chain(optax.add_decayed_weights(weight_decay),
                           optax.sgd(rate, momentum=0.9, nesterov=True))
    return make


def pretrain_epochs(model: Model, arrays: dict, *, epochs: int,
                 batch_size: int, lr: float, optimizer: str = 'adam',
                 warmup_epochs: float = 0.5, seed: int = 0,
                 prepare=imagenet_prepare, augment=crop, progress=print,
                 label='[pretrain]'):
    """Trains ``model`` on all classes of ``arrays`` for ``epochs`` passes
    (jcl's compiled task, one call per epoch, compiled once), testing
    after each.

    Returns:
      ``(params, model_state, curve)``; ``curve`` one dict per epoch:
      ``epoch``, ``loss`` (mean of the epoch's last 100 steps),
      ``test_accuracy``, ``seconds``.
    """
    classes = int(np.max(arrays['train_y'])) + 1
    proto = protocols.class_split('pretrain', arrays, 'class',
                                  classes_per_task=classes, flatten=False,
                                  prepare=prepare)
    per_epoch = len(arrays['train_y']) // batch_size
    if per_epoch < 1:
        raise ConfigError(f'{len(arrays["train_y"])} training examples '
                          f'make no batch of {batch_size}')
    tx = scheduled(optimizer, epochs * per_epoch,
                   warmup_steps=int(warmup_epochs * per_epoch))
    learner = Learner(lambda hp: model, lambda hp, m: supervised(),
                      make_optimizer=tx, prepare=prepare,
                      batch_size=batch_size, epochs=1, augment=augment)
    hp = {'lr': jnp.float32(lr)}
    state = init_state(learner, hp, jax.random.PRNGKey(seed))
    train = data_lib.to_device(proto.train)
    test = data_lib.to_device(proto.test)
    active = jnp.asarray(proto.active)
    run = SimpleNamespace(   # one row, not vmapped
        begin=jax.jit(functools.partial(begin_steps, learner)),
        steps=jax.jit(functools.partial(run_steps, learner),
                      static_argnums=7, donate_argnums=0))
    finish = jax.jit(functools.partial(finish_task, learner),
                     donate_argnums=0)
    curve = []
    for e in range(1, epochs + 1):
        t0 = time.time()
        hook = TaskProgress(progress, f'{label} epoch {e}/{epochs}',
                            per_epoch, t0, 60.0) if progress else None
        state, _, metrics = train_in_chunks(
            run, state, hp, train, active, 0,
            task_steps(learner, train.index.shape[-1]), hook)
        state, acc = finish(state, hp, train, test, active, jnp.int32(0))
        acc = float(acc[0])
        loss = float(np.mean(np.asarray(metrics['loss'])[-100:]))
        curve.append({'epoch': e, 'loss': loss, 'test_accuracy': acc,
                      'seconds': round(time.time() - t0, 1)})
        if progress:
            progress(f'{label} epoch {e}/{epochs}  loss {loss:.4f}  test '
                     f'acc {100 * acc:.2f}%  {time.time() - t0:.1f}s')
    return state.params, state.model_state, curve


def meta_path(path) -> str:
    """The sidecar of a weights file: ``F.npz`` -> ``F.json``."""
    root, ext = os.path.splitext(os.fspath(path))
    return root + ('.meta.json' if ext == '.json' else '.json')


def save_backbone(path, state_dict: dict, **meta) -> str:
    """Writes ``state_dict`` (``{torchvision key: array}``) to ``path`` as
    an ``.npz`` holding nothing else, and ``meta`` (JSON values) with the
    file's SHA-256 to :func:`meta_path`. Both files are written whole or
    not at all (temporary names, then renamed). Returns the SHA-256.

    Raises:
      OutputError: a file cannot be written.
    """
    path = os.fspath(path)
    try:
        with open(path + '.tmp', 'wb') as f:
            np.savez(f, **state_dict)
        with open(path + '.tmp', 'rb') as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        meta = {'format': 'torchvision state dict (npz)', **meta,
                'weights': os.path.basename(path),
                'weights_sha256': digest}
        with open(meta_path(path) + '.tmp', 'w') as f:
            json.dump(meta, f, indent=1)
            f.write('\n')
        os.replace(path + '.tmp', path)
        os.replace(meta_path(path) + '.tmp', meta_path(path))
    except OSError as e:
        raise OutputError(f'cannot write {path}: {e.strerror or e}') from e
    return digest


def read_meta(path) -> dict | None:
    """The sidecar of a weights file written by :func:`save_backbone`
    (``None`` for another file, e.g. torchvision's own)."""
    try:
        with open(meta_path(path)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
