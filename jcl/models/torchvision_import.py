"""torchvision ResNet weights onto :class:`jcl.models.resnet.ResNet`.

A torchvision state dict (read with
:func:`jcl.weights.statedict.load_state_dict`
from a ``.pth``, safetensors or ``.npz`` file) names every tensor by its
module path: ``layer1.0.conv1.weight`` is jcl's
``params/layer1_0/conv1/kernel`` (OIHW transposed to HWIO),
``layer2.0.downsample.0`` / ``.1`` are ``downsample_conv`` /
``downsample_bn``, a BatchNorm's ``weight``, ``bias``, ``running_mean``,
``running_var`` are ``scale``, ``bias``, ``mean``, ``var``
(``num_batches_tracked`` is not used), ``fc.weight`` ``[out, in]`` is
``fc_kernel`` ``[in, out]``.

:func:`torchvision_keys` lists what a depth expects (checked before
anything is loaded: a missing, unexpected or misshapen tensor is one
:class:`jcl.core.errors.DataError` naming it); :func:`load_backbone` writes the
tensors into a model's variables, broadcasting BatchNorm values into
every task's bank where BatchNorm is per task, so each task starts from
the backbone's statistics (as the CLR reference, which re-creates the
ImageNet model for every task).

>>> import numpy as np
>>> keys = torchvision_keys(18)
>>> keys['layer2.0.downsample.0.weight'], keys['fc.weight']
((128, 64, 1, 1), (1000, 512))
>>> len(keys)         # 122 in the state dict, less 20 num_batches_tracked
102
"""

import functools

import jax
import numpy as np

from jcl.core.errors import DataError
from jcl.models.resnet import ResNet

_BN = {'scale': 'weight', 'bias': 'bias', 'mean': 'running_mean',
       'var': 'running_var'}


def _torch_name(path):
    """jcl's path (tuple of names) -> the torchvision key."""
    *mods, leaf = path
    parts = []
    for m in mods:
        if m.startswith('layer'):
            parts += m.split('_')
        elif m.startswith('downsample_'):
            parts += ['downsample', '0' if m.endswith('conv') else '1']
        else:
            parts.append(m)
    if leaf == 'kernel' and mods:
        return '.'.join(parts + ['weight'])
    if leaf in ('fc_kernel', 'fc_bias'):
        return 'fc.' + ('weight' if leaf == 'fc_kernel' else 'bias')
    return '.'.join(parts + [_BN[leaf]])


@functools.lru_cache(maxsize=None)
def _shapes(depth, num_classes):
    net = ResNet(depth=depth, stem='imagenet', head_width=num_classes)
    x = jax.ShapeDtypeStruct((1, 64, 64, 3), np.float32)
    t = jax.ShapeDtypeStruct((1,), np.int32)
    v = jax.eval_shape(net.init, jax.random.PRNGKey(0), x, t)
    out = {}
    for col in ('params', 'batch_stats'):
        for path, leaf in jax.tree_util.tree_flatten_with_path(v[col])[0]:
            names = tuple(p.key for p in path)
            out[names] = (col, leaf.shape)
    return out


def _torch_shape(names, shape):
    if names[-1] == 'kernel':
        kh, kw, i, o = shape
        return (o, i, kh, kw)
    if names[-1] == 'fc_kernel':
        return tuple(reversed(shape))
    return tuple(shape)


def torchvision_keys(depth: int, num_classes: int = 1000) -> dict:
    """``{torchvision key: shape}`` of a torchvision ResNet-``depth``
    (without ``num_batches_tracked``)."""
    return {_torch_name(n): _torch_shape(n, s)
            for n, (_, s) in _shapes(depth, num_classes).items()}


def _to_jcl(names, value):
    if names[-1] == 'kernel':
        return np.transpose(value, (2, 3, 1, 0))
    if names[-1] == 'fc_kernel':
        return value.T
    return value


def check_state_dict(state_dict, depth: int, *, source='the weights',
                     head: bool = True):
    """Raises a :class:`DataError` unless ``state_dict`` holds exactly a
    torchvision ResNet-``depth`` (``head=False``: the ``fc`` tensors may
    be absent or of any width). Returns the fc's width (or ``None``)."""
    fc = state_dict.get('fc.weight')
    width = None if fc is None else int(np.shape(fc)[0])
    expected = torchvision_keys(depth, width or 1000)
    if not head:
        expected = {k: v for k, v in expected.items()
                    if not k.startswith('fc.')}
    given = {k for k in state_dict if not k.endswith('num_batches_tracked')
             and (head or not k.startswith('fc.'))}
    missing = sorted(set(expected) - given)
    extra = sorted(given - set(expected))
    wrong = [f'{k} is {tuple(np.shape(state_dict[k]))}, expected {s}'
             for k, s in expected.items()
             if k in given and tuple(np.shape(state_dict[k])) != s]
    problems = []
    if missing:
        problems.append(f'missing {_some(missing)}')
    if extra:
        problems.append(f'unexpected {_some(extra)}')
    if wrong:
        problems.append('; '.join(wrong[:3]))
    if problems:
        raise DataError(f'{source} is not a torchvision ResNet-{depth}: '
                        + '; '.join(problems))
    return width


def _some(keys):
    more = f' and {len(keys) - 3} more' if len(keys) > 3 else ''
    return ', '.join(keys[:3]) + more


def load_backbone(variables: dict, state_dict, depth: int, *,
                  head: bool = False, source='the weights') -> dict:
    """``variables`` (a :class:`ResNet`'s, any banks) with the backbone
    of a torchvision state dict written in.

    Args:
      variables: ``{'params', 'batch_stats', ['banks']}`` of a ResNet of
        this depth with the ImageNet stem.
      state_dict: ``{torchvision key: array}``.
      head: also copy ``fc`` into a shared head of the same width (the
        ImageNet classifier); otherwise the model's own head is kept.

    Returns:
      New variables (the input is not changed).
    """
    check_state_dict(state_dict, depth, source=source, head=head)
    out = jax.tree.map(lambda a: a, variables)
    for names, (col, _) in _shapes(depth, 1000).items():
        key = _torch_name(names)
        if key.startswith('fc.') and not head:
            continue
        value = _to_jcl(names, np.asarray(state_dict[key], np.float32))
        _write(out, col, names, value, source)
    return out


def _write(variables, col, names, value, source):
    """Writes ``value`` at ``names`` of collection ``col``, or into the
    per-task bank of the same name (broadcast over tasks)."""
    for where in (col, 'banks'):
        node = variables.get(where, {})
        for n in names[:-1]:
            node = node.get(n) if isinstance(node, dict) else None
            if node is None:
                break
        if node is not None and names[-1] in node:
            old = node[names[-1]]
            if old.shape == value.shape:
                node[names[-1]] = jax.numpy.asarray(value, old.dtype)
            elif old.shape[1:] == value.shape:
                node[names[-1]] = jax.numpy.broadcast_to(
                    jax.numpy.asarray(value, old.dtype), old.shape)
            else:
                raise DataError(f'{source}: {_torch_name(names)} has shape '
                                f'{value.shape}; the model has {old.shape}')
            return
    raise DataError(f'{source}: the model has no place for '
                    f'{_torch_name(names)} (its stem is not torchvision\'s?)')


_ORDER = {'conv1': 0, 'bn1': 1, 'conv2': 2, 'bn2': 3, 'conv3': 4, 'bn3': 5,
          'downsample': 6, 'fc': 20, 'weight': 0, 'bias': 1,
          'running_mean': 2, 'running_var': 3, 'num_batches_tracked': 4}


def _torch_order(key):
    """Sort key of torchvision's module order (stem, layers, fc)."""
    return tuple(int(p) if p.isdigit() else 10 + int(p[5:])
                 if p.startswith('layer') else _ORDER[p]
                 for p in key.split('.'))


def to_torchvision(variables: dict, depth: int) -> dict:
    """The inverse of :func:`load_backbone` (``head=True``): a ResNet's
    variables (ImageNet stem, shared BatchNorm and head, no banks) as a
    torchvision state dict in torchvision's order, float32 OIHW kernels,
    ``fc.weight`` ``[out, in]``, ``num_batches_tracked`` int64 0.

    >>> import jax, jax.numpy as jnp
    >>> net = ResNet(depth=18, head_width=5)
    >>> v = net.init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3)),
    ...              jnp.zeros(1, jnp.int32))
    >>> sd = to_torchvision(v, 18)
    >>> len(sd), list(sd)[:3], sd['fc.weight'].shape
    (122, ['conv1.weight', 'bn1.weight', 'bn1.bias'], (5, 512))
    >>> check_state_dict(sd, 18)
    5
    """
    if jax.tree.leaves(variables.get('banks', {})):
        raise DataError('to_torchvision: the ResNet has per-task banks; '
                        'torchvision has one set of weights')
    width = int(np.shape(variables['params']['fc_bias'])[0])
    out = {}
    for names, (col, shape) in _shapes(depth, width).items():
        node = variables[col]
        for n in names:
            node = node[n]
        if tuple(np.shape(node)) != shape:
            raise DataError(f'to_torchvision: {"/".join(names)} is '
                            f'{tuple(np.shape(node))}, expected {shape} '
                            '(not the ImageNet stem?)')
        value = np.asarray(node, np.float32)
        if names[-1] == 'kernel':
            value = np.transpose(value, (3, 2, 0, 1))
        elif names[-1] == 'fc_kernel':
            value = value.T
        key = _torch_name(names)
        out[key] = np.ascontiguousarray(value)
        if key.endswith('running_var'):
            out[key[:-len('running_var')] + 'num_batches_tracked'] = \
                np.zeros((), np.int64)
    return {k: out[k] for k in sorted(out, key=_torch_order)}
