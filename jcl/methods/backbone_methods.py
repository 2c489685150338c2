"""The CLR paper's methods on a pre-trained ResNet (Task-IL, a head per
task): CLR itself and its baselines.

Each method is a way of training the backbone, which is its model
(:func:`clr_model`, :func:`resnet_for`; the modes of
:func:`jcl.models.backbone.resnet_model`), plus the CLR reference's weight
penalty ``l2`` on the trained tensors (:mod:`jcl.methods.weight_penalty`):

==========  ==================================================  =========
method      trains                                              mode
==========  ==================================================  =========
clr         CLR kernels after non-1x1 convs, BN, heads          clr
clr_full    CLR kernels after every conv, BN, heads             clr-full
sgd         everything (fine-tuning), a head per task           finetune
sgd_ll      the last layer (one shared head)                    linear
psp         everything, inputs in a per-task ±1 superposition   psp
supsup      a binary supermask per task over frozen weights     supsup
eft         EFT layers (and the convs on the first task)        eft
==========  ==================================================  =========

>>> model = clr_model(num_tasks=2, head_width=3, stem='small',
...                   input_shape=(8, 8, 3))
>>> model.name
'resnet18 (clr)'
>>> sorted(clr(model, l2=1e-5).init(None, None))
[]
"""

from jcl.core.combine import named_chain
from jcl.core.errors import ConfigError
from jcl.core.method import Method
from jcl.core.model import Model
from jcl.methods import networks
from jcl.methods.entry import NONNEG, SWITCH, MethodEntry, default_of
from jcl.methods.weight_penalty import first_task_only, norm_penalty
from jcl.models.backbone import resnet_model

MODE = {'clr': 'clr', 'clr-full': 'clr-full', 'sgd': 'finetune',
        'sgd-ll': 'linear', 'psp': 'psp', 'supsup': 'supsup', 'eft': 'eft'}
L2 = 1e-5   # the CLR reference's penalty factor


def penalty(model: Model, *, l2=L2) -> Method:
    """The CLR reference's penalty, ``l2`` times the sum of the un-squared
    L2 norms of the model's trained tensors (the current task's banks
    only): one term, ``'l2'``."""
    return norm_penalty(model.labels, model.banked, strength=l2)


def clr(model: Model, *, l2=L2) -> Method:
    """Channel-wise lightweight reprogramming (Ge et al., ICCV 2023): the
    model (:func:`clr_model`) trains only each task's CLR kernels,
    BatchNorm and head; the method adds the reference's penalty."""
    return penalty(model, l2=l2)


def clr_full(model: Model, *, l2=L2) -> Method:
    """CLR with a CLR layer after every convolution (1x1 included)."""
    return penalty(model, l2=l2)


def sgd(model: Model, *, l2=L2) -> Method:
    """Fine-tuning the whole backbone on each task in turn (a head per
    task)."""
    return penalty(model, l2=l2)


def sgd_ll(model: Model, *, l2=L2) -> Method:
    """Training the last layer only (one shared head)."""
    return penalty(model, l2=l2)


def psp(model: Model, *, l2=L2) -> Method:
    """Parameter superposition (Cheung et al. 2019): every convolution's
    input multiplied by a fixed random ±1 context of the task."""
    return penalty(model, l2=l2)


def supsup(model: Model, *, l2=L2) -> Method:
    """Supermasks in superposition (Wortsman et al. 2020): a binary mask
    per task over the frozen weights, learned through its scores."""
    return penalty(model, l2=l2)


def eft(model: Model, *, l2=L2, train_base=1.0) -> Method:
    """Efficient feature transformations (Verma et al. 2021): the penalty,
    and the shared convolutions trained on the first task only when
    ``train_base`` is 1 (the EFT code), never when 0 (a frozen
    pre-trained backbone; may be traced)."""
    return named_chain(('penalty', penalty(model, l2=l2)),
                       ('base', first_task_only('params', train_base)))


def resnet_for(method: str, *, num_tasks: int, head_width: int,
               depth: int = 18, stem: str = 'imagenet',
               input_shape=(32, 32, 3)) -> Model:
    """The ResNet trained the way ``method`` (a name of :data:`MODE`)
    trains it."""
    return resnet_model(depth=depth, stem=stem, num_tasks=num_tasks,
                        head_width=head_width, mode=MODE[method],
                        input_shape=input_shape)


def clr_model(*, num_tasks: int, head_width: int, depth: int = 18,
              stem: str = 'imagenet', input_shape=(32, 32, 3),
              full: bool = False) -> Model:
    """CLR's model: the frozen ResNet with identity-initialised CLR
    kernels (depthwise 3x3) after every non-1x1 convolution (``full``:
    every convolution), per-task BatchNorm and heads."""
    return resnet_for('clr-full' if full else 'clr', num_tasks=num_tasks,
                      head_width=head_width, depth=depth, stem=stem,
                      input_shape=input_shape)


def _network(name):
    def network(ctx, hp):
        del hp  # unused
        if not ctx.settings.backbone:
            raise ConfigError(
                f'the method trains a ResNet backbone ({MODE[name]}); '
                f'{ctx.protocol.name} has none: use --protocol '
                'offline-sequence')
        return networks.backbone_model(ctx, MODE[name])
    return network


def _entry(name, factory, **extra):
    def build(ctx, hp, model):
        kw = ({'train_base': hp['eft.train_base']} if name == 'eft'
              else {})
        return factory(model, l2=hp[f'{name}.l2'], **kw)

    defaults = {f'{name}.l2': default_of(factory, 'l2'), **{
        f'{name}.{k}': float(default_of(factory, k)) for k in extra}}
    return MethodEntry(
        name, build, defaults=defaults,
        checks={f'{name}.l2': NONNEG, **{f'{name}.{k}': v
                                         for k, v in extra.items()}},
        network=_network(name), scenarios=('task',), reset_optimizer=True,
        one_bank=True, summary=factory.__doc__.splitlines()[0])


ENTRIES = [_entry('clr', clr), _entry('clr-full', clr_full),
           _entry('sgd', sgd), _entry('sgd-ll', sgd_ll), _entry('psp', psp),
           _entry('supsup', supsup),
           _entry('eft', eft, train_base=SWITCH)]
