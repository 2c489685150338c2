"""A convolutional classifier with BatchNorm: the BI-R paper's CIFAR
network (conv layers with 16-32-64-128-256 channels, BatchNorm, ReLU,
stride 2 from the second layer) under an MLP.

The BatchNorm statistics are model state: updated by ``apply`` in
training mode, used frozen in evaluation mode (and by teachers).

>>> import jax, jax.numpy as jnp
>>> clf = conv_classifier((4, 8), hidden=(16,), num_outputs=3,
...                       input_shape=(8, 8, 1))
>>> params, state = clf.init(jax.random.PRNGKey(0))
>>> sorted(params), sorted(state['batch_stats']['conv'])
(['conv', 'head'], ['BatchNorm_0', 'BatchNorm_1'])
>>> x = jnp.ones((2, 8, 8, 1))
>>> out, new = clf.apply(params, state, x, jnp.zeros(2, jnp.int32),
...                      train=True)
>>> out['logits'].shape, out['features'].shape
((2, 3), (2, 16))
"""

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from jcl.core.model import Model, make_model
from jcl.models.conv import Conv3x3
from jcl.models.init import torch_bias_init

# PyTorch's default conv/linear initialisation: kaiming_uniform(a=sqrt 5)
# is uniform(+-1/sqrt(fan_in)) for the weights.
_torch_kernel = nn.initializers.variance_scaling(1 / 3, 'fan_in', 'uniform')


class ConvLayers(nn.Module):
    """Conv-BN-ReLU layers (3x3, padding 1; stride 1 then 2), flattened:
    the front end whose output internal replay works on.

    Attributes:
      channels: output channels of each conv layer.
      momentum: BatchNorm's running-average momentum (Flax convention:
        PyTorch's 0.1 is 0.9 here).
      plain_last: the last layer is a plain convolution, without
        BatchNorm and ReLU (the BI-R paper's front end).
    """

    channels: Sequence[int]
    momentum: float = 0.9
    plain_last: bool = False

    @nn.compact
    def __call__(self, x, train: bool = False):
        last = len(self.channels) - 1
        for layer, ch in enumerate(self.channels):
            stride = 1 if layer == 0 else 2
            plain = self.plain_last and layer == last
            x = Conv3x3(ch, stride, use_bias=plain,
                        kernel_init=_torch_kernel,
                        bias_init=torch_bias_init(9 * x.shape[-1]),
                        name=f'Conv_{layer}')(x)
            if not plain:
                x = nn.BatchNorm(use_running_average=not train,
                                 momentum=self.momentum, epsilon=1e-5)(x)
                x = nn.relu(x)
        return x.reshape(x.shape[0], -1)


class ConvNet(nn.Module):
    """:class:`ConvLayers` (``'conv'``), then a ReLU MLP and the output
    layer (``'head'``).

    Attributes:
      channels, momentum, plain_last: of the conv layers.
      hidden: units of each hidden dense layer.
      num_outputs: output units.
    """

    channels: Sequence[int]
    hidden: Sequence[int]
    num_outputs: int
    momentum: float = 0.9
    plain_last: bool = False

    def setup(self):
        self.conv = ConvLayers(tuple(self.channels), self.momentum,
                               self.plain_last)
        self.head = Head(tuple(self.hidden), self.num_outputs)

    def __call__(self, x, train: bool = False):
        return self.head(self.conv(x, train))

    def features(self, x, train: bool = False):
        """The conv layers' flattened output."""
        return self.conv(x, train)


class Head(nn.Module):
    """ReLU MLP and output layer: ``x -> (logits, last hidden)``."""

    hidden: Sequence[int]
    num_outputs: int

    @nn.compact
    def __call__(self, x):
        for units in self.hidden:
            x = nn.relu(nn.Dense(units, kernel_init=_torch_kernel,
                                 bias_init=torch_bias_init(x.shape[-1]))(x))
        logits = nn.Dense(self.num_outputs, kernel_init=_torch_kernel,
                          bias_init=torch_bias_init(x.shape[-1]))(x)
        return logits, x


def conv_classifier(channels: Sequence[int], *, hidden: Sequence[int],
                    num_outputs: int, input_shape: tuple,
                    momentum: float = 0.9, plain_last: bool = False) -> Model:
    """The conv classifier as a :class:`jcl.core.model.Model` (see module doc).

    Args:
      channels: conv channels, e.g. ``(16, 32, 64, 128, 256)``.
      hidden: hidden units of the MLP on top, e.g. ``(2000, 2000)``.
      num_outputs: output units. input_shape: ``(H, W, C)``.
      momentum: BatchNorm momentum (Flax convention).
      plain_last: the last conv layer without BatchNorm and ReLU.

    Returns:
      A model with parameters ``{'conv', 'head'}`` and state
      ``{'batch_stats': {'conv': ...}}``; its view ``'conv_features'``
      ``(params, state, x) -> [B, F]`` is the conv layers' output in
      evaluation mode.
    """
    net = ConvNet(tuple(channels), tuple(hidden), num_outputs, momentum,
                  plain_last)

    def init(key):
        v = net.init(key, jnp.zeros((1,) + tuple(input_shape)))
        return v['params'], {'batch_stats': v['batch_stats']}

    def apply(params, state, x, task, *, train=False):
        del task  # one head for all tasks; masks pick the outputs
        variables = {'params': params, **state}
        if train:
            (logits, feats), new = net.apply(variables, x, train=True,
                                             mutable=['batch_stats'])
            return {'logits': logits, 'features': feats}, dict(new)
        logits, feats = net.apply(variables, x, train=False)
        return {'logits': logits, 'features': feats}, state

    def conv_features(params, state, x):
        return net.apply({'params': params, **state}, x,
                         method=ConvNet.features)

    return make_model(init=init, apply=apply,
                      views={'conv_features': conv_features},
                      name=f'convnet {"-".join(map(str, channels))} + '
                           f'mlp {"-".join(map(str, hidden))}')
