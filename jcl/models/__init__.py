"""Flax models behind the :class:`jcl.core.model.Model` interface."""

from jcl.models.classifier import (
    MLP,
    XdG,
    mlp_classifier,
    separate_classifiers,
)
from jcl.models.convnet import conv_classifier
from jcl.models.paired import paired
from jcl.models.vae import vae_model

__all__ = ['MLP', 'XdG', 'conv_classifier', 'mlp_classifier', 'paired',
           'separate_classifiers', 'vae_model']
