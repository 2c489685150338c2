"""Continual-learning methods: one public factory per method.

Every name ``jcl run --method`` knows is a factory here (dashes as
underscores) that returns a :class:`jcl.Method`; numeric keyword
arguments may be tracers, so a grid over them is one vmapped program.
Where a method needs a model of its own, its model factory stands beside
it (``bir_model``, ``rtf_model``, ``gr_model``, ``xdg_model``,
``separate_model``, ``clr_model``, ``resnet_for``, ``class_vaes``).

The factories return the method's own members; :func:`compose` puts the
current-batch cross-entropy in front (weighted ``1/t`` when a member
replays), as the command line does::

    method = jcl.methods.compose(('bir', jcl.methods.bir(model, ...)),
                                 ('mine', my_method(model, lam=hp['lam'])))

The catalogue (:func:`register`, :class:`MethodEntry`) makes a method a
command-line citizen.
"""

from jcl.methods.assemble import build_learner
from jcl.methods.asymmetric_replay import er_ace
from jcl.methods.backbone_methods import (
    clr,
    clr_full,
    clr_model,
    eft,
    psp,
    resnet_for,
    sgd,
    sgd_ll,
    supsup,
)
from jcl.methods.brain_inspired_replay import bir, bir_model, rtf, rtf_model
from jcl.methods.catalog import entries, entry, load_plugin, parse, register
from jcl.methods.context_gating import xdg, xdg_model
from jcl.methods.dark_experience_replay import der, derpp
from jcl.methods.deep_generative_replay import gr, gr_distill, gr_model
from jcl.methods.elastic_weight_consolidation import ewc, online_ewc
from jcl.methods.entry import (
    BUDGET,
    NONNEG,
    POSITIVE,
    REPLAY_SIZE,
    SAMPLES,
    SWITCH,
    UNIT,
    BuildCtx,
    Check,
    MethodEntry,
    default_of,
)
from jcl.methods.episodic_memory import gem
from jcl.methods.experience_replay import er
from jcl.methods.fisher import fisher_diagonal
from jcl.methods.function_distance import fdr
from jcl.methods.functional_regularisation import fromp
from jcl.methods.generated_replay import generative_replay
from jcl.methods.generative_classifier import gen_classifier
from jcl.methods.generator_objective import generator_loss
from jcl.methods.gradient_episodic_memory import agem
from jcl.methods.gradient_sample_selection import gss
from jcl.methods.greedy_dumb_learner import gdumb
from jcl.methods.hindsight_anchor_learning import hal
from jcl.methods.incremental_classifier import icarl
from jcl.methods.learning_without_forgetting import lwf, teacher_distillation
from jcl.methods.objective import compose, joint, none, supervised
from jcl.methods.separate_networks import separate, separate_model
from jcl.methods.synaptic_intelligence import si
from jcl.methods.weight_penalty import norm_penalty
from jcl.models.class_vaes import class_vaes

__all__ = [
    # the command line's methods
    'agem', 'bir', 'clr', 'clr_full', 'der', 'derpp', 'eft', 'er', 'er_ace',
    'ewc', 'fdr', 'fromp', 'gdumb', 'gem', 'gen_classifier', 'gr',
    'gr_distill', 'gss', 'hal', 'icarl', 'joint', 'lwf', 'none',
    'online_ewc', 'psp', 'rtf', 'separate', 'sgd', 'sgd_ll', 'si', 'supsup',
    'xdg',
    # their models
    'bir_model', 'class_vaes', 'clr_model', 'gr_model', 'resnet_for',
    'rtf_model', 'separate_model', 'xdg_model',
    # building blocks
    'compose', 'fisher_diagonal', 'generative_replay', 'generator_loss',
    'norm_penalty', 'supervised', 'teacher_distillation',
    # the catalogue
    'build_learner',
    'BUDGET', 'BuildCtx', 'Check', 'MethodEntry', 'NONNEG', 'POSITIVE',
    'REPLAY_SIZE', 'SAMPLES', 'SWITCH', 'UNIT', 'default_of', 'entries',
    'entry', 'load_plugin', 'parse', 'register',
]
