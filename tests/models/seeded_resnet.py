"""Seeded torchvision-layout ResNet weights from numpy alone, shared by
the torch fixture script (tests/fixtures/make_resnet_fixture.py, run
once with PyTorch) and the tests (which must not need PyTorch)."""

import zlib

import numpy as np

INPUT_SEED = 1
INPUT_SHAPE = (2, 3, 64, 64)       # NCHW, as torch takes it


def _rng(name, seed):
    return np.random.RandomState((zlib.crc32(name.encode()) + seed) % 2**32)


def state_dict(shapes, seed=0):
    """``{key: float32 array}`` for ``{torchvision key: shape}``: convs
    N(0, 2/fan_in), BatchNorm weight and running_var U(0.5, 1.5), biases
    and running_mean N(0, 0.1^2), fc N(0, 1/in)."""
    out = {}
    for key in sorted(shapes):
        shape, r = shapes[key], _rng(key, seed)
        if key.endswith('running_var') or (key.endswith('weight')
                                           and len(shape) == 1):
            v = r.uniform(0.5, 1.5, shape)
        elif key.endswith(('bias', 'running_mean')):
            v = r.normal(0, 0.1, shape)
        elif key == 'fc.weight':
            v = r.normal(0, 1 / np.sqrt(shape[1]), shape)
        else:
            v = r.normal(0, np.sqrt(2 / np.prod(shape[1:])), shape)
        out[key] = v.astype(np.float32)
    return out


def clr_kernels(channels, seed=0):
    """``{conv key prefix: [C, 1, 3, 3]}`` depthwise weights, the identity
    plus N(0, 0.1^2), for ``{prefix: C}`` (e.g. ``'layer1.0.conv1'``)."""
    out = {}
    for name in sorted(channels):
        c = channels[name]
        w = _rng(name + '.clr', seed).normal(0, 0.1, (c, 1, 3, 3))
        w[:, 0, 1, 1] += 1
        out[name] = w.astype(np.float32)
    return out


def inputs():
    """The fixture's input images, NCHW float32."""
    return np.random.RandomState(INPUT_SEED).normal(
        size=INPUT_SHAPE).astype(np.float32)
