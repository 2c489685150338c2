"""ResNet-18 and ResNet-50 in torchvision's layout, with CLR layers and
per-task banks as options.

The module and parameter names follow torchvision's state dict
(``conv1``, ``bn1``, ``layer1_0/conv1``, ``layer2_0/downsample_conv``,
``fc``; a ``.`` becomes ``_``), so :mod:`jcl.models.torchvision_import`
maps a torchvision file onto it one to one. Convolutions have no bias;
BatchNorm is :class:`jcl.models.batchnorm.TorchBatchNorm`; Bottleneck
blocks stride in their 3x3 convolution (torchvision's "v1.5").

What is per task (in the ``'banks'`` collection, a leading axis of
``num_tasks``) is a choice:

* ``reprogram``: ``'clr'`` puts a :class:`jcl.models.reprogram.Reprogram`
  after every convolution whose kernel is not 1x1 (between the conv and
  its BatchNorm, as the CLR paper), ``'clr-full'`` after every
  convolution, ``'eft'`` an :class:`jcl.models.eft.EFT` after every
  convolution (Efficient Feature Transformations), ``None`` nowhere;
* ``bn``: ``'per-task'`` banks of BatchNorm parameters and statistics,
  ``'shared'`` one set, ``'frozen'`` one set always used with its running
  statistics;
* ``head``: ``'per-task'`` a linear head per task, ``'shared'`` one head;
* ``convs``: ``'shared'`` one set of convolutions; ``'psp'`` one set
  whose every input is multiplied channel by channel by a fixed random
  ±1 context of the example's task (Cheung et al. 2019's binary
  superposition; the ``'contexts'`` collection, never trained; task 0's
  context is all ones, so it sees the backbone as it is); ``'per-task'``
  a copy of every convolution per task (``'banks'``; one fine-tuned
  network per task); ``'supsup'`` one frozen set, masked per task by the
  top half of the task's scores (:func:`jcl.models.supermask.supermask`,
  scores in ``'banks'``). A batch of ``'per-task'`` or ``'supsup'``
  convolutions must hold one task's examples (the batches of the streamed
  path do); a mixed batch gives NaN outputs rather than a silently wrong
  network.

The logits are ``[B, num_tasks * head_width]``: unit ``t * head_width +
c`` is class ``c`` of task ``t``, the Task-IL layout of jcl's protocols
(a shared head is repeated in every task's block).

>>> import jax, jax.numpy as jnp
>>> net = ResNet(depth=18, stem='small', num_tasks=2, head_width=3,
...              reprogram='clr', bn='per-task', head='per-task')
>>> x, task = jnp.ones((2, 8, 8, 3)), jnp.array([0, 1])
>>> v = net.init(jax.random.PRNGKey(0), x, task, train=False)
>>> sorted(v)
['banks', 'batch_stats', 'params']
>>> v['banks']['conv1_clr']['kernel'].shape
(2, 3, 3, 64)
>>> out = net.apply(v, x, task, train=False)
>>> out['logits'].shape, out['features'].shape
((2, 6), (2, 512))
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from jcl.models.batchnorm import TorchBatchNorm
from jcl.models.conv import conv2d
from jcl.models.eft import EFT
from jcl.models.reprogram import Reprogram
from jcl.models.supermask import supermask

STAGES = {18: ('basic', (2, 2, 2, 2)), 34: ('basic', (3, 4, 6, 3)),
          50: ('bottleneck', (3, 4, 6, 3))}
WIDTHS = (64, 128, 256, 512)
REPROGRAM = (None, 'clr', 'clr-full', 'eft')
BN_MODES = ('per-task', 'shared', 'frozen')
HEADS = ('per-task', 'shared')
CONVS = ('shared', 'psp', 'per-task', 'supsup')

# torchvision's init: kaiming_normal_(mode='fan_out', nonlinearity='relu')
_kaiming_out = nn.initializers.variance_scaling(2.0, 'fan_out', 'normal')


def _contexts(key, num_tasks, channels):
    """PSP's binary contexts ``[T, C]``: ±1 at random, task 0 all ones."""
    signs = jax.random.rademacher(key, (num_tasks, channels), jnp.float32)
    return signs.at[0].set(1.0)


class TorchConv(nn.Module):
    """``Conv2d(in, features, kernel_size, stride, padding, bias=False)``,
    kernel HWIO."""

    features: int
    kernel_size: int
    stride: int = 1
    padding: int = 0
    impl: str | None = None
    num_tasks: int = 0
    masks: int = 0

    @nn.compact
    def __call__(self, x, task=None):
        k = self.kernel_size
        shape = (k, k, x.shape[-1], self.features)
        if self.masks:
            kernel = self.param('kernel', _kaiming_out, shape)
            bound = 1.0 / jnp.sqrt(k * k * x.shape[-1])   # kaiming(a=√5)
            scores = self.variable('banks', 'scores', lambda: (
                jax.random.uniform(self.make_rng('params'),
                                   (self.masks,) + shape, x.dtype,
                                   -bound, bound)))
            kernel = kernel * supermask(scores.value[task[0]])
            out = conv2d(x, kernel, self.stride, self.padding, self.impl)
            return jnp.where(jnp.all(task == task[0]), out, jnp.nan)
        if not self.num_tasks:
            kernel = self.param('kernel', _kaiming_out, shape)
            return conv2d(x, kernel, self.stride, self.padding, self.impl)
        # one kernel per task (``'banks'``), all drawn alike
        bank = self.variable('banks', 'kernel', lambda: jnp.broadcast_to(
            _kaiming_out(self.make_rng('params'), shape),
            (self.num_tasks,) + shape))
        out = conv2d(x, bank.value[task[0]], self.stride, self.padding,
                     self.impl)
        return jnp.where(jnp.all(task == task[0]), out, jnp.nan)


class _Layers(nn.Module):
    """Shared by the stem and the blocks: conv -> (CLR) -> BatchNorm."""

    num_tasks: int = 1
    reprogram: str | None = None
    bn: str = 'shared'
    convs: str = 'shared'
    conv_impl: str | None = None
    dw_impl: str | None = None

    def conv_bn(self, x, task, train, features, k, stride, pad, conv, bn):
        if self.convs == 'psp':
            ctx = self.variable('contexts', f'{conv}_psp', lambda: _contexts(
                self.make_rng('params'), self.num_tasks, x.shape[-1]))
            x = x * ctx.value[task][:, None, None, :]
        x = TorchConv(features, k, stride, pad, self.conv_impl,
                      self.num_tasks if self.convs == 'per-task' else 0,
                      self.num_tasks if self.convs == 'supsup' else 0,
                      name=conv)(x, task)
        if self.reprogram == 'eft':
            x = EFT(self.num_tasks, name=f'{conv}_eft')(x, task)
        elif self.reprogram == 'clr-full' or (self.reprogram == 'clr'
                                              and k != 1):
            x = Reprogram(self.num_tasks, self.dw_impl,
                          name=f'{conv}_clr')(x, task)
        return TorchBatchNorm(
            self.num_tasks if self.bn == 'per-task' else 0,
            frozen_stats=self.bn == 'frozen', name=bn)(x, task, train)


class Block(_Layers):
    """A BasicBlock (``kind='basic'``) or Bottleneck."""

    kind: str = 'basic'
    width: int = 64
    stride: int = 1

    @nn.compact
    def __call__(self, x, task, train):
        cb = self.conv_bn
        out_ch = self.width * (4 if self.kind == 'bottleneck' else 1)
        if self.kind == 'basic':
            y = nn.relu(cb(x, task, train, self.width, 3, self.stride, 1,
                           'conv1', 'bn1'))
            y = cb(y, task, train, self.width, 3, 1, 1, 'conv2', 'bn2')
        else:
            y = nn.relu(cb(x, task, train, self.width, 1, 1, 0,
                           'conv1', 'bn1'))
            y = nn.relu(cb(y, task, train, self.width, 3, self.stride, 1,
                           'conv2', 'bn2'))
            y = cb(y, task, train, out_ch, 1, 1, 0, 'conv3', 'bn3')
        if self.stride != 1 or x.shape[-1] != out_ch:
            x = cb(x, task, train, out_ch, 1, self.stride, 0,
                   'downsample_conv', 'downsample_bn')
        return nn.relu(x + y)


class ResNet(_Layers):
    """A torchvision-layout ResNet (see the module docstring).

    Attributes:
      depth: 18, 34 or 50.
      stem: ``'imagenet'`` (7x7 stride-2 conv and 3x3 stride-2 max-pool)
        or ``'small'`` (3x3 stride-1 conv, no pool: small images).
      num_tasks: banks (and blocks of output units).
      head_width: output units per task (the largest task's classes).
      reprogram, bn, head: what is per task (module docstring).
      conv_impl, dw_impl: implementations of the convolutions
        (:func:`jcl.models.conv.conv2d`,
        :func:`jcl.models.reprogram.depthwise3x3`).
    """

    depth: int = 18
    stem: str = 'imagenet'
    head_width: int = 1000
    head: str = 'shared'

    @nn.compact
    def __call__(self, x, task, train: bool = False):
        kind, blocks = STAGES[self.depth]
        if self.stem == 'imagenet':
            x = nn.relu(self.conv_bn(x, task, train, 64, 7, 2, 3,
                                     'conv1', 'bn1'))
            x = nn.max_pool(x, (3, 3), (2, 2), ((1, 1), (1, 1)))
        else:
            x = nn.relu(self.conv_bn(x, task, train, 64, 3, 1, 1,
                                     'conv1', 'bn1'))
        shared = dict(num_tasks=self.num_tasks, reprogram=self.reprogram,
                      bn=self.bn, convs=self.convs,
                      conv_impl=self.conv_impl,
                      dw_impl=self.dw_impl)
        for stage, (n, width) in enumerate(zip(blocks, WIDTHS)):
            for i in range(n):
                stride = 2 if stage > 0 and i == 0 else 1
                x = Block(kind=kind, width=width, stride=stride, **shared,
                          name=f'layer{stage + 1}_{i}')(x, task, train)
        features = x.mean((1, 2))
        return {'logits': self._head(features, task), 'features': features}

    def _head(self, features, task):
        d, w, t = features.shape[-1], self.head_width, self.num_tasks
        bound = 1.0 / jnp.sqrt(d)

        def uniform(shape):
            def init():
                key = self.make_rng('params')
                return jax.random.uniform(key, shape, features.dtype,
                                          -bound, bound)
            return init

        if self.head == 'per-task':
            kernel = self.variable('banks', 'fc_kernel', uniform((t, d, w)))
            bias = self.variable('banks', 'fc_bias', uniform((t, w)))
            logits = jnp.einsum('bd,tdw->btw', features, kernel.value)
            return (logits + bias.value).reshape(features.shape[0], t * w)
        kernel = self.variable('params', 'fc_kernel', uniform((d, w)))
        bias = self.variable('params', 'fc_bias', uniform((w,)))
        logits = features @ kernel.value + bias.value
        return jnp.tile(logits, (1, t))
