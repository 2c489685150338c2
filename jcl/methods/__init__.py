"""Continual-learning methods, each a :class:`jcl.Method` factory."""

from jcl.methods.supervised import supervised

__all__ = ['supervised']
