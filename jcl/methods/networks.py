"""The protocol's own network, for entries that build on it.

A method that brings a generator wraps the network the composition trains
(the protocol's classifier, or another part's, such as XdG's); these are
that classifier and the facts a model factory needs from a
:class:`jcl.methods.entry.BuildCtx`.
"""

from jcl.core.errors import ConfigError
from jcl.core.model import Model
from jcl.models.classifier import mlp_classifier

LATENT = 100  # the references' VAE latent size


def input_dim(ctx) -> int:
    """The size of one prepared input (an MLP protocol's)."""
    return ctx.protocol.input_shape[0]


def generator_output(ctx) -> str:
    """How a generator reconstructs the protocol's inputs: Bernoulli on
    pixels in [0, 1] (``'sigmoid'``), squared error on features."""
    return 'sigmoid' if ctx.protocol.inputs == 'pixels' else 'linear'


def backbone_model(ctx, mode: str) -> Model:
    """The protocol's ResNet trained in ``mode``
    (:func:`jcl.models.backbone.resnet_model`)."""
    from jcl.models.backbone import resnet_model
    return resnet_model(depth=int(ctx.settings.backbone[len('resnet'):]),
                        stem='imagenet', num_tasks=ctx.num_tasks,
                        head_width=ctx.num_outputs // ctx.num_tasks,
                        mode=mode, input_shape=ctx.protocol.input_shape)


def default_network(ctx) -> Model:
    """The protocol's classifier: its ResNet, fine-tuned, on a backbone
    protocol; else the MLP with the run's hidden layers."""
    if ctx.settings.backbone:
        return backbone_model(ctx, 'finetune')
    return mlp_classifier(ctx.hidden, num_outputs=ctx.num_outputs,
                          input_dim=input_dim(ctx), init=ctx.settings.init)


def no_backbone(ctx, what: str):
    """Raises a :class:`ConfigError` on a backbone protocol."""
    if ctx.settings.backbone:
        raise ConfigError(f'{ctx.protocol.name}: {what} not available on a '
                          'ResNet backbone yet')
