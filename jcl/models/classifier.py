"""The MLP classifier of the papers, with optional XdG context gating.

Example::

    clf = mlp_classifier((400, 400), num_outputs=10, input_dim=784)
    params = {'classifier': clf.init(key)}
    logits = clf.apply(params, x, task)          # [B, 10]
"""

from typing import Callable, NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

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
      num_outputs: output units (0: return the last hidden layer).
    """

    hidden: Sequence[int]
    num_outputs: int

    @nn.compact
    def __call__(self, x, gates=None):
        """Args: x ``[B, D]``; gates: per hidden layer a ``[B, units]``
        multiplicative mask (XdG), or ``None``. Returns ``[B, out]``."""
        for layer, units in enumerate(self.hidden):
            gate = None if gates is None else gates[layer]
            x = nn.relu(Dense(units)(x, gate))
        if self.num_outputs:
            x = Dense(self.num_outputs)(x)
        return x


def _fast_init(net, input_dim):
    """``key -> params`` of ``net`` with PyTorch's initialisation, drawn in
    one go (see :func:`jcl.models.init.torch_init_tree`)."""
    template = jax.eval_shape(
        lambda: net.init(jax.random.PRNGKey(0),
                         jnp.zeros((1, input_dim))))['params']
    return lambda key: torch_init_tree(key, template)


class Classifier(NamedTuple):
    """A classifier as two pure functions.

    Attributes:
      init: ``key -> params['classifier']``.
      apply: ``(params, x, task) -> logits``; ``params`` is the whole
        parameter dict, so frozen parts (``params['gates']``, the XdG masks
        ``[T, units]`` per layer) are used when present.
      hidden: the hidden layer sizes (for methods that add gates).
    """

    init: Callable
    apply: Callable
    hidden: tuple


def mlp_classifier(hidden: Sequence[int], *, num_outputs: int,
                   input_dim: int) -> Classifier:
    """The MLP classifier ``input_dim - hidden... - num_outputs``.

    Its ``apply`` carries ``apply.dense_taps``, ``(params, x, task,
    perturbations) -> (logits, inputs)``: the same network with the
    :class:`Dense` perturbations ``perturbations[layer] = {'pre', 'out'}``
    (each ``[B, units]``) added, also returning each layer's input
    ``inputs[layer]`` (``[B, in]``); the layers are the entries of
    ``params['classifier']`` (``'Dense_0'``, ...). Per-example gradients
    of a dense network need no more (:func:`jcl.methods.ewc.fisher_diagonal`
    uses it).
    """
    net = MLP(tuple(hidden), num_outputs)
    init = _fast_init(net, input_dim)

    def task_gates(params, task):
        gates = params.get('gates')
        return None if gates is None else [g[task] for g in gates]

    def apply(params, x, task):
        return net.apply({'params': params['classifier']}, x,
                         task_gates(params, task))

    def dense_taps(params, x, task, perturbations):
        logits, state = net.apply(
            {'params': params['classifier'], 'perturbations': perturbations},
            x, task_gates(params, task), mutable=['intermediates'])
        inputs = {name: layer['input'][0]
                  for name, layer in state['intermediates'].items()}
        return logits, inputs

    apply.dense_taps = dense_taps
    return Classifier(init, apply, tuple(hidden))


def xdg_gates(key, hidden: Sequence[int], *, num_tasks: int,
              proportion) -> list:
    """XdG masks: per task and hidden layer, a random ``proportion`` of the
    units is gated off (0), the rest kept (1).

    Returns:
      one float32 ``[num_tasks, units]`` array per hidden layer.
    """
    gates = []
    for layer, units in enumerate(hidden):
        k = jax.random.fold_in(key, layer)
        scores = jax.random.uniform(k, (num_tasks, units))
        # exactly round(proportion * units) lowest-scoring units are off
        n_off = jnp.round(proportion * units).astype(jnp.int32)
        ranks = jnp.argsort(jnp.argsort(scores, axis=1), axis=1)
        gates.append((ranks >= n_off).astype(jnp.float32))
    return gates


def separate_classifiers(hidden: Sequence[int], *, num_tasks: int,
                         num_outputs: int, input_dim: int) -> Classifier:
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
    one = _fast_init(net, input_dim)

    def init(key):
        return jax.vmap(one)(jax.random.split(key, num_tasks))

    def apply(params, x, task):
        every = jax.vmap(lambda p: net.apply({'params': p}, x))(
            params['classifier'])                       # [T, B, C]
        return jnp.take_along_axis(every, task[None, :, None], 0)[0]

    return Classifier(init, apply, tuple(hidden))
