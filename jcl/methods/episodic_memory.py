"""Gradient episodic memory (GEM; Lopez-Paz & Ranzato, NeurIPS 2017).

An episodic memory of ``budget // num_tasks`` examples per task, drawn
at random from the task's training data when it ends (the DER paper's
code, mammoth ``models/gem.py`` of 2020: ``samples_per_task =
buffer_size // N_TASKS``). At every step on task ``t`` the gradient of
the mean cross-entropy of each earlier task's memory is taken (all its
examples); when the current gradient ``g`` has a negative dot product
with any of them, ``g`` is replaced by ``g + M' v``, ``v`` the solution of
GEM's dual QP with margin ``gamma``
(:func:`jcl.methods.cone_projection.project_to_cone`, solved exactly).
A gradient stage, over all trainable parameters at once; the current loss
is the plain cross-entropy (GEM adds no loss term).

>>> from jcl.models import mlp_classifier
>>> from jcl.tasks.protocols import pixels
>>> clf = mlp_classifier((8,), num_outputs=4, input_dim=6)
>>> m = gem(clf, prepare=pixels, input_shape=(6,), num_tasks=2,
...         budget=10, gamma=0.5)
>>> m.init(None, None).x.shape          # 2 tasks x 5 examples
(10, 6)
"""

import jax
import jax.numpy as jnp

from jcl.core import losses, tree
from jcl.core.errors import ConfigError
from jcl.core.method import Method, make_method, member_key
from jcl.core.model import Model
from jcl.methods import buffers
from jcl.methods.cone_projection import active_sets, project_to_cone
from jcl.methods.entry import BUDGET, NONNEG, Check, MethodEntry


def memory_gradients(model: Model, params, model_state, buf, ctx, prepare,
                     frozen, k: int, per_task: int):
    """The gradients of the mean cross-entropy of each of the first ``k``
    tasks' memories (slots ``j * per_task`` onwards): a tree like
    ``params`` with a leading ``[k]`` axis."""
    x = buf.x[:k * per_task].reshape((k, per_task) + buf.x.shape[1:])
    y, task, valid = (a[:k * per_task].reshape(k, per_task)
                      for a in (buf.y, buf.task, buf.valid))

    def block_loss(part, x, y, task, valid):
        out, _ = model.apply(tree.merge(part, frozen), model_state,
                             prepare(x), task, train=True)
        ce = losses.cross_entropy(out['logits'], y, ctx.mask(task))
        return jnp.sum(jnp.where(valid, ce, 0.0)) / jnp.maximum(
            jnp.sum(valid), 1)

    return jax.vmap(jax.grad(block_loss), in_axes=(None, 0, 0, 0, 0))(
        params, x, y, task, valid)


def project(grads, memory, margin, eps=1e-3):
    """GEM's projection of ``grads`` given the ``[k]``-stacked ``memory``
    gradients (unchanged when no dot product is negative)."""
    leaves = zip(jax.tree.leaves(memory), jax.tree.leaves(grads))
    dots, gram = 0.0, 0.0
    for m, g in leaves:
        m2 = m.reshape(m.shape[0], -1)
        dots = dots + m2 @ g.reshape(-1)
        gram = gram + m2 @ m2.T
    k = gram.shape[0]
    v = project_to_cone(dots, gram, jnp.ones(k, bool), margin, eps)
    return jax.tree.map(lambda g, m: g + jnp.tensordot(v, m, 1), grads,
                        memory)


def gem(model: Model, *, prepare, input_shape, num_tasks: int, budget: int,
        gamma=0.5, eps: float = 1e-3, dtype=jnp.uint8) -> Method:
    """GEM with a memory of ``budget // num_tasks`` examples per task.

    Args:
      model: the model trained.
      prepare: the protocol's ``raw -> model input``.
      input_shape: shape of one raw example. num_tasks: tasks to reserve
        memory for.
      budget: examples stored in all (the DER paper's 200, 500, 5120).
      gamma: the dual's margin (mammoth's ``--gamma``; may be traced).
      eps: added to the Gram matrix's diagonal (the reference's 1e-3).
      dtype: the stored inputs' dtype.

    Returns:
      A method with state :class:`jcl.methods.buffers.Buffer`, no loss
      terms and a gradient stage.
    """
    per_task = budget // num_tasks
    active_sets(num_tasks - 1)          # a clear error if too many tasks

    def init(snap, ctx):
        del snap, ctx  # unused
        return buffers.empty(num_tasks * per_task, tuple(input_shape),
                             dtype)

    def grads(buf, step, ctx):
        trainable, frozen = tree.split_like(step.params, step.grads)

        def with_earlier(k):
            if k == 0:
                return lambda: step.grads
            return lambda: project(step.grads, memory_gradients(
                model, trainable, step.model_state, buf, ctx, prepare,
                frozen, k, per_task), gamma, eps)

        # one branch per number of earlier tasks: each computes only the
        # memories that exist (task_id is the same for every vmapped row)
        branches = [with_earlier(k) for k in range(num_tasks)]
        return jax.lax.switch(jnp.minimum(ctx.task_id, num_tasks - 1),
                              branches)

    def consolidate(buf, end, ctx):
        return buffers.store_task(buf, end.data, ctx.task_id,
                                  member_key(ctx, 'gem-store'),
                                  classes_per_task=1, per_class=per_task)

    return make_method(init=init, grads=grads, consolidate=consolidate)


def _build(ctx, hp, model):
    layout = ctx.buffer_layout()
    if ctx.size('gem.budget') < layout['num_tasks']:
        raise ConfigError(f'gem.budget={ctx.size("gem.budget")}: must hold '
                         f'at least one example per task '
                         f'({layout["num_tasks"]})')
    return gem(model, prepare=layout['prepare'],
               input_shape=layout['input_shape'], dtype=layout['dtype'],
               num_tasks=layout['num_tasks'], budget=ctx.size('gem.budget'),
               gamma=hp['gem.gamma'])


# Budget 200 and gamma 1.0 (with lr 0.01, batch 10): mammoth's best
# arguments for seq-mnist at 200 (utils/best_args.py); 500: gamma 0.5,
# lr 0.03; 5120: gamma 1.0, lr 0.1.
ENTRIES = [MethodEntry(
    'gem', _build,
    defaults={'gem.budget': 200.0, 'gem.gamma': 1.0},
    checks={'gem.budget': BUDGET,
            'gem.gamma': Check(NONNEG.ok, 'must be >= 0 (the margin)')},
    static=('gem.budget',), exclusive='gradient projection',
    summary='gradient episodic memory, QP projection (Lopez-Paz & '
            'Ranzato 2017)')]
