"""A ResNet backbone behind the :class:`jcl.core.model.Model` interface, in
the roles of the CLR paper's methods, and pre-trained weights for it.

``mode`` says what is trained and what is per task:

==========  ==========================  ==========  ========  ==========
mode        trained                     BatchNorm   head      CLR layers
==========  ==========================  ==========  ========  ==========
clr         CLR kernels, BN, head       per task    per task  non-1x1
clr-full    CLR kernels, BN, head       per task    per task  every conv
finetune    everything                  shared      per task  none
linear      the head                    frozen      shared    none
eft         EFT layers (and, on the     per task    per task  EFT, every
            first task, the convs)                            conv
psp         everything                  per task    per task  none
supsup      mask scores (frozen convs)  per task    per task  none
separate    a copy of everything/task   per task    per task  none
==========  ==========================  ==========  ========  ==========

``psp`` multiplies every convolution's input by a fixed random ±1
context of the task (binary superposition, Cheung et al. 2019; task 0
sees the backbone as it is); ``separate`` keeps one fine-tuned copy of
every convolution per task (the upper bound: 100% of the parameters per
task; a batch must be one task's).

``params`` is ``{'params': backbone (and a shared head), 'banks': per
task leaves [T, ...]}``; ``model_state`` is ``{'batch_stats': ...}``.
The method ``clr`` trains only the banks, so a task can change nothing
but its own bank: every other task's accuracy, and the backbone's bytes,
stay as they were (tested).

Pre-trained weights enter through :func:`pretrained_overlay`: the leaves
a torchvision state dict fills (convolutions, BatchNorm, broadcast into
every task's bank), overlaid on the drawn initialisation by
:func:`jcl.training.learner.init_state`, before the method sees the model.

>>> import jax
>>> m = resnet_model(depth=18, stem='small', num_tasks=2, head_width=3,
...                  mode='clr', input_shape=(8, 8, 3))
>>> params, state = m.init(jax.random.PRNGKey(0))
>>> sorted(params), sorted(state)
(['banks', 'params'], ['batch_stats'])
>>> set(jax.tree.leaves(m.labels(params)['params']))
{'frozen'}
"""

import jax
import jax.numpy as jnp
import numpy as np

from jcl.core import tree
from jcl.core.errors import ConfigError
from jcl.core.model import DEFAULT_GROUP, FROZEN, Model, make_model
from jcl.models.resnet import ResNet
from jcl.models.torchvision_import import load_backbone

MODES = {
    'clr': dict(reprogram='clr', bn='per-task', head='per-task'),
    'clr-full': dict(reprogram='clr-full', bn='per-task', head='per-task'),
    'finetune': dict(reprogram=None, bn='shared', head='per-task'),
    'linear': dict(reprogram=None, bn='frozen', head='shared'),
    'eft': dict(reprogram='eft', bn='per-task', head='per-task'),
    'supsup': dict(reprogram=None, bn='per-task', head='per-task',
                   convs='supsup'),
    'psp': dict(reprogram=None, bn='per-task', head='per-task',
                convs='psp'),
    'separate': dict(reprogram=None, bn='per-task', head='per-task',
                     convs='per-task'),
}
HEAD_LEAVES = ('fc_kernel', 'fc_bias')


def resnet_net(*, depth, stem, num_tasks, head_width, mode,
               conv_impl=None, dw_impl=None) -> ResNet:
    """The Flax ResNet of a mode (see the module docstring)."""
    if mode not in MODES:
        raise ConfigError(f'unknown backbone mode {mode!r}; choose one of '
                          f'{", ".join(MODES)}')
    return ResNet(depth=depth, stem=stem, num_tasks=num_tasks,
                  head_width=head_width, conv_impl=conv_impl,
                  dw_impl=dw_impl, **MODES[mode])


def resnet_model(*, depth: int = 18, stem: str = 'imagenet',
                 num_tasks: int, head_width: int, mode: str,
                 input_shape=(32, 32, 3), conv_impl=None,
                 dw_impl=None) -> Model:
    """A ResNet :class:`jcl.core.model.Model` in one of :data:`MODES`.

    Args:
      depth, stem: of :class:`jcl.models.resnet.ResNet`.
      num_tasks: banks (and blocks of ``head_width`` output units).
      head_width: output units per task.
      mode: ``'clr'``, ``'clr-full'``, ``'finetune'`` or ``'linear'``.
      input_shape: one prepared input ``[H, W, C]`` (for ``init``).
    """
    net = resnet_net(depth=depth, stem=stem, num_tasks=num_tasks,
                     head_width=head_width, mode=mode, conv_impl=conv_impl,
                     dw_impl=dw_impl)

    def init(key):
        x = jnp.zeros((1,) + tuple(input_shape), jnp.float32)
        v = net.init(key, x, jnp.zeros(1, jnp.int32), train=False)
        params = {'params': v.get('params', {}), 'banks': v.get('banks', {})}
        return params, {k: v[k] for k in ('batch_stats', 'contexts')
                        if k in v}

    def apply(params, model_state, x, task, *, train=False):
        variables = {**params, **model_state}
        if not train:
            return net.apply(variables, x, task, train=False), model_state
        out, new = net.apply(variables, x, task, train=True,
                             mutable=['batch_stats'])
        return out, {**model_state, 'batch_stats': new['batch_stats']}

    def labels(params):
        def group(path, _):
            names = [getattr(p, 'key', None) for p in path]
            if names[0] == 'banks' or mode in ('finetune', 'psp', 'eft'):
                return DEFAULT_GROUP
            if mode == 'linear' and names[-1] in HEAD_LEAVES:
                return DEFAULT_GROUP
            return FROZEN
        return jax.tree_util.tree_map_with_path(group, params)

    def banked(params):
        return {'params': jax.tree.map(lambda _: False, params['params']),
                'banks': jax.tree.map(lambda _: True, params['banks'])}

    return make_model(init=init, apply=apply, labels=labels,
                      name=f'resnet{depth} ({mode})', banked=banked)


def bank_part(params, task_id):
    """The trainable part of task ``task_id``: its slice of every bank
    leaf, and the shared leaves as they are."""
    return {'params': params['params'],
            'banks': jax.tree.map(lambda a: a[task_id], params['banks'])}


def pretrained_overlay(model: Model, state_dict, depth: int, *,
                       source='the weights') -> dict:
    """``{'params': {path: array}, 'model_state': {path: array}}``: the
    leaves of ``model``'s variables that a torchvision ResNet-``depth``
    state dict fills (the head is not taken), as host arrays, for
    :func:`jcl.training.learner.init_state`'s ``pretrained`` argument.

    Raises:
      DataError: the state dict is not such a ResNet (named tensor).
    """
    params, state = jax.eval_shape(model.init, jax.random.PRNGKey(0))
    nan = jax.tree.map(lambda s: np.full(s.shape, np.nan, s.dtype),
                       {**params, **state})
    filled = load_backbone(nan, state_dict, depth, source=source)
    out = {'params': {}, 'model_state': {}}
    for path, leaf in jax.tree_util.tree_flatten_with_path(filled)[0]:
        names = tuple(p.key for p in path)
        if np.isnan(np.asarray(leaf)).any():
            continue
        role = 'model_state' if names[0] == 'batch_stats' else 'params'
        out[role][names] = np.asarray(leaf)
    return out


def backbone_hash(params) -> str:
    """SHA-256 of the bytes of the shared (non-bank) parameters, to check
    that a run never touched the backbone."""
    import hashlib
    h = hashlib.sha256()
    for name, leaf in zip(tree.leaf_names(params['params']),
                          jax.tree.leaves(params['params'])):
        h.update(name.encode())
        h.update(np.ascontiguousarray(np.asarray(leaf)).tobytes())
    return h.hexdigest()
