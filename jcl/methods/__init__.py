"""Continual-learning methods, each a :class:`jcl.method.Method` factory."""

from jcl.methods.ewc import ewc
from jcl.methods.generative import generator_loss
from jcl.methods.lwf import lwf
from jcl.methods.replay import generative_replay
from jcl.methods.si import si
from jcl.methods.supervised import supervised

__all__ = ['ewc', 'generative_replay', 'generator_loss', 'lwf', 'si',
           'supervised']
