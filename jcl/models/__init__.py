"""Flax modules: classifiers, generators, CLR adapters."""

from jcl.models.classifier import MLP, Classifier, mlp_classifier

__all__ = ['MLP', 'Classifier', 'mlp_classifier']
