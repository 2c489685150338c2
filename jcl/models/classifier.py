"""The MLP classifier of the papers, with optional XdG context gating.

>>> import jax, jax.numpy as jnp
>>> clf = mlp_classifier((16, 16), num_outputs=4, input_dim=6,
...                      xdg=XdG(num_tasks=2, proportion=0.5))
>>> params, state = clf.init(jax.random.PRNGKey(0))
>>> sorted(params), [g.shape for g in state['gates']]
(['Dense_0', 'Dense_1', 'Dense_2'], [(2, 16), (2, 16)])
>>> out, _ = clf.apply(params, state, jnp.ones((3, 6)),
...                    jnp.array([0, 1, 1]), train=True)
>>> out['logits'].shape
(3, 4)
"""

from typing import NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jcl.core.model import DenseTaps, Model, make_model
from jcl.models.init import torch_bias_init, torch_init_tree, torch_kernel_init


class Dense(nn.Module):
    """A dense layer with PyTorch's default initialisation.

    ``gate`` (optional, broadcastable to the output) multiplies ``x @ W``
    before the bias is added, as XdG does in the reference: a gated unit
    outputs ``relu(b)``, and its incoming weights get no gradient.

    Taps for per-example gradients (no-ops in a plain ``apply``, which
    neither has these collections nor makes them mutable): the input is
    sown as ``intermediates/input`` (a 1-tuple), and zero perturbations
    ``perturbations/pre`` (added to ``x @ W`` before the gate) and
    ``perturbations/out`` (added to the output) give, by ``jax.grad``,
    ``dL/d(x @ W)`` and ``dL/dy``. The gradient of ``W`` is then
    ``input.T @ d pre`` and that of the bias ``sum(d out)``.
    """

    features: int

    @nn.compact
    def __call__(self, x, gate=None):
        """Args: x ``[B, in]``; gate: ``[B, features]`` or ``None``.

        Returns:
          ``[B, features]``, ``(x @ W) * gate + b``.
        """
        kernel = self.param('kernel', torch_kernel_init,
                            (x.shape[-1], self.features))
        bias = self.param('bias', torch_bias_init(x.shape[-1]),
                          (self.features,))
        self.sow('intermediates', 'input', x)
        y = self.perturb('pre', x @ kernel)
        if gate is not None:
            y = y * gate
        return self.perturb('out', y + bias)


class MLP(nn.Module):
    """Fully connected ReLU network.

    Attributes:
      hidden: units of each hidden layer, e.g. ``(400, 400)``.
      num_outputs: output units.
    """

    hidden: Sequence[int]
    num_outputs: int

    @nn.compact
    def __call__(self, x, gates=None):
        """Args: x ``[B, D]``; gates: per hidden layer a ``[B, units]``
        multiplicative mask (XdG), or ``None``.

        Returns:
          ``(logits [B, out], features [B, hidden[-1]])``.
        """
        for layer, units in enumerate(self.hidden):
            gate = None if gates is None else gates[layer]
            x = nn.relu(Dense(units)(x, gate))
        return Dense(self.num_outputs)(x), x


def fast_init(net, input_shape):
    """``key -> params`` of ``net`` with PyTorch's initialisation, drawn in
    one go (see :func:`jcl.models.init.torch_init_tree`)."""
    template = jax.eval_shape(
        lambda: net.init(jax.random.PRNGKey(0),
                         jnp.zeros((1,) + tuple(input_shape))))['params']
    return lambda key: torch_init_tree(key, template)


class XdG(NamedTuple):
    """Context-dependent gating (Masse et al. 2018): per task and hidden
    layer a fixed random ``proportion`` of the units is gated off.

    Attributes:
      num_tasks: tasks to draw gates for. proportion: the fraction gated
        off (may be a tracer: a grid over it is one vmapped program).
    """

    num_tasks: int
    proportion: float


def xdg_gates(key, hidden: Sequence[int], *, num_tasks: int,
              proportion) -> list:
    """XdG masks: per task and hidden layer, exactly ``round(proportion *
    units)`` units are gated off (0), the rest kept (1).

    Returns:
      one float32 ``[num_tasks, units]`` array per hidden layer.
    """
    gates = []
    for layer, units in enumerate(hidden):
        k = jax.random.fold_in(key, layer)
        scores = jax.random.uniform(k, (num_tasks, units))
        n_off = jnp.round(proportion * units).astype(jnp.int32)
        ranks = jnp.argsort(jnp.argsort(scores, axis=1), axis=1)
        gates.append((ranks >= n_off).astype(jnp.float32))
    return gates


INITS = ('torch', 'xavier')


def xavier_init(net, input_shape):
    """``key -> params``: Xavier-uniform kernels and zero biases (the DER
    paper's MNIST network)."""
    template = jax.eval_shape(
        lambda: net.init(jax.random.PRNGKey(0),
                         jnp.zeros((1,) + tuple(input_shape))))['params']

    def init(key):
        leaves, treedef = jax.tree.flatten(template)
        keys = jax.random.split(key, len(leaves))
        return jax.tree.unflatten(treedef, [
            nn.initializers.xavier_uniform()(k, a.shape) if a.ndim == 2
            else jnp.zeros(a.shape) for k, a in zip(keys, leaves)])

    return init


def mlp_classifier(hidden: Sequence[int], *, num_outputs: int,
                   input_dim: int, xdg: XdG | None = None,
                   init: str = 'torch') -> Model:
    """The MLP classifier ``input_dim - hidden... - num_outputs``.

    Parameters are the Flax tree ``{'Dense_0': {'kernel', 'bias'}, ...}``
    drawn from the key as PyTorch's ``nn.Linear`` would (``init='torch'``)
    or Xavier-uniform with zero biases (``'xavier'``). With ``xdg`` the
    model state holds the gates (``{'gates': [per layer [T, units]]}``,
    drawn from ``fold_in(key, 1)``), applied by each example's task.

    Views: ``'taps'`` (:class:`jcl.core.model.DenseTaps`).
    """
    if init not in INITS:
        raise ValueError(f'init must be one of {INITS}, got {init!r}')
    net = MLP(tuple(hidden), num_outputs)
    init_params = (fast_init if init == 'torch' else xavier_init)(
        net, (input_dim,))

    def init_fn(key):
        state = {}
        if xdg is not None:
            state['gates'] = xdg_gates(jax.random.fold_in(key, 1), hidden,
                                       num_tasks=xdg.num_tasks,
                                       proportion=xdg.proportion)
        return init_params(key), state

    def task_gates(state, task):
        gates = state.get('gates')
        return None if gates is None else [g[task] for g in gates]

    def apply(params, state, x, task, *, train=False):
        del train  # no layer behaves differently in training
        logits, features = net.apply({'params': params}, x,
                                     task_gates(state, task))
        return {'logits': logits, 'features': features}, state

    def taps(params, state, x, task, perturbations):
        (logits, _), found = net.apply(
            {'params': params, 'perturbations': perturbations}, x,
            task_gates(state, task), mutable=['intermediates'])
        inputs = {name: layer['input'][0]
                  for name, layer in found['intermediates'].items()}
        return logits, inputs

    dims = '-'.join(str(d) for d in (input_dim, *hidden, num_outputs))
    return make_model(init=init_fn, apply=apply,
                      views={'taps': DenseTaps(lambda p: p, taps)},
                      name=f'mlp {dims}' + (' with XdG' if xdg else ''))


def separate_classifiers(hidden: Sequence[int], *, num_tasks: int,
                         num_outputs: int, input_dim: int) -> Model:
    """One small network per task ("separate networks", Task-IL).

    The networks are stacked on a leading task axis; every example goes
    through the network of its own task (all networks run on the batch
    and the example's one is selected, which for a handful of small
    networks is cheaper than gathering weights per example). Trained with
    the optimiser reset at each task start (``Learner.reset_optimizer``),
    the other networks' gradients and Adam moments are exactly zero, so
    each network is trained only on its own task, as with one optimiser
    per network.
    """
    net = MLP(tuple(hidden), num_outputs)
    one = fast_init(net, (input_dim,))

    def init(key):
        return jax.vmap(one)(jax.random.split(key, num_tasks)), {}

    def apply(params, state, x, task, *, train=False):
        del train  # unused
        logits, feats = jax.vmap(lambda p: net.apply({'params': p}, x))(
            params)                                     # [T, B, ...]
        pick = task[None, :, None]
        return {'logits': jnp.take_along_axis(logits, pick, 0)[0],
                'features': jnp.take_along_axis(feats, pick, 0)[0]}, state

    return make_model(init=init, apply=apply,
                      name=f'{num_tasks} separate networks')
