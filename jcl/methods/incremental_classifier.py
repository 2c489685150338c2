"""iCaRL (Rebuffi et al. 2017), as the NMI code runs it (Class-IL).

* **Exemplars**: at a task's end, ``per_class`` examples of each new class
  are chosen by herding in the model's feature space (L2-normalised
  features; greedily, the example that brings the running mean of the
  chosen ones closest to the class mean) and stored raw, each class in its
  own block (never shrunk).
* **Training**: the task's data joined with the exemplars, with binary
  cross-entropy over the active outputs: targets one-hot, except that the
  units of earlier classes get the previous model's ``sigmoid(logit /
  T)`` (distillation, ``T = 2``). jcl draws a current and an exemplar
  batch and weighs them by their shares of the union, which has the
  expected loss of drawing from the union.
* **Prediction**: nearest mean of exemplars (normalised features, means
  of the exemplars' normalised features, normalised), a prediction
  override of the method.

>>> import jax.numpy as jnp
>>> f = jnp.array([[1., 0.], [0., 1.], [.8, .6], [.6, .8]])
>>> herding(f, jnp.ones(4, bool), 2).tolist()   # mean (.6, .6) direction
[2, 3]
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jcl.core import losses
from jcl.core.method import Method, make_method, member_key
from jcl.core.model import Model, logits
from jcl.core.records import Array, Snapshot
from jcl.core.taskdata import gather
from jcl.methods import buffers
from jcl.methods.buffers import Buffer
from jcl.methods.entry import BUDGET, POSITIVE, SWITCH, MethodEntry, default_of
from jcl.methods.experience_replay import buffer_per_class, class_buffer


class ICaRLState(NamedTuple):
    """iCaRL's state.

    Attributes:
      buffer: the exemplars (:class:`jcl.methods.buffers.Buffer`, one block of
        ``per_class`` slots per class).
      means: float ``[C, F]`` the normalised mean feature of each class's
        exemplars (the prototypes).
      has_mean: bool ``[C]`` classes with exemplars.
      teacher: the model at the end of the previous task.
    """

    buffer: Buffer
    means: Array
    has_mean: Array
    teacher: Snapshot


def normalize(x, axis=-1):
    """``x / ||x||`` along ``axis`` (zero vectors stay zero)."""
    return x / jnp.maximum(jnp.linalg.norm(x, axis=axis, keepdims=True),
                           1e-12)


def herding(features, valid, n: int):
    """Indices of ``n`` examples chosen by herding.

    ``features`` ``[N, F]`` are L2-normalised and the target is the
    normalised mean of the valid ones; step ``k`` picks the unchosen valid
    example ``i`` minimising ``|| (sum of chosen + f_i) / (k + 1) - mu ||``
    (the first on ties).
    """
    f = normalize(features)
    mu = normalize(jnp.sum(f * valid[:, None], 0) /
                   jnp.maximum(valid.sum(), 1))

    def pick(carry, k):
        total, free = carry
        dist = jnp.linalg.norm((total + f) / (k + 1.0) - mu, axis=-1)
        i = jnp.argmin(jnp.where(free, dist, jnp.inf))
        return (total + f[i], free.at[i].set(False)), i

    _, chosen = jax.lax.scan(pick, (jnp.zeros_like(mu), valid),
                             jnp.arange(n))
    return chosen


def bce_distill(student, teacher, y, mask, old_mask, temperature):
    """iCaRL's loss per example: binary cross-entropy over the active
    units ``mask`` with one-hot targets, the units of ``old_mask`` (earlier
    classes) targeted at ``sigmoid(teacher / T)`` instead; summed over
    units. Returns ``[B]``."""
    target = jax.nn.one_hot(y, student.shape[-1])
    soft = jax.nn.sigmoid(teacher / temperature)
    target = jnp.where(old_mask, jax.lax.stop_gradient(soft), target)
    per = (jnp.maximum(student, 0) - student * target
           + jnp.log1p(jnp.exp(-jnp.abs(student))))
    return jnp.sum(jnp.where(mask, per, 0.0), -1)


def icarl(model: Model, *, prepare, input_shape, num_tasks: int,
          classes_per_task: int, num_outputs: int, per_class: int,
          task_sizes, temperature=2.0, selection='herding',
          batch_size: int = 128, dtype=jnp.uint8,
          full_capacity: bool = False) -> Method:
    """iCaRL (see the module doc).

    Args:
      model: the model (its ``'features'`` output is the feature space).
      prepare: the protocol's ``raw -> model input``.
      input_shape, num_tasks, classes_per_task, per_class: the buffer's
        layout, as :func:`jcl.methods.er`.
      num_outputs: output units (classes).
      task_sizes: the number of training examples of each task (weighs
        the current and the exemplar batch).
      temperature: of the distillation targets (the NMI code: 2).
      selection: ``'herding'`` or ``'random'`` (static).
      batch_size: examples of each exemplar draw (static).
      full_capacity: use the whole budget (``per_class`` times the
        classes of all tasks) from the first task on: after task ``t``
        (1-based) every class keeps its first ``floor(per_class * T /
        t)`` exemplars (the NMI code's ``--use-full-capacity``; the 2019
        preprint's budget of 2000); otherwise ``per_class`` always.

    Returns:
      A method with state :class:`ICaRLState`, one term ``'bce'`` (its
      current-data part is computed here from the shared forward pass)
      and a prediction override.
    """
    if selection not in ('herding', 'random'):
        raise ValueError(f"selection must be 'herding' or 'random', got "
                         f'{selection!r}')
    sizes = jnp.asarray(task_sizes, jnp.float32)
    block = per_class * num_tasks if full_capacity else per_class

    def init(snap, ctx):
        del ctx  # unused
        x = prepare(jnp.zeros((1,) + tuple(input_shape), dtype))
        feat = model.apply(snap.params, snap.model_state, x,
                           jnp.zeros(1, jnp.int32))[0]['features']
        return ICaRLState(
            class_buffer(input_shape=input_shape, num_tasks=num_tasks,
                         classes_per_task=classes_per_task,
                         per_class=block, dtype=dtype),
            jnp.zeros((num_outputs, feat.shape[-1]), jnp.float32),
            jnp.zeros(num_outputs, bool), snap)

    def batch_loss(state, params, model_state, out, batch, ctx):
        t = ctx.task_id
        teacher = logits(model, state.teacher, batch.x, batch.task)
        # the units of earlier tasks' classes (those with exemplars), not
        # the earlier active units: with every unit active from the first
        # task (``--class-outputs all``) those would include the new ones
        old = jnp.broadcast_to(state.has_mean & (t > 0), ctx.mask(
            batch.task).shape)
        return bce_distill(out['logits'], teacher, batch.y,
                           ctx.mask(batch.task), old, temperature)

    def loss(state, fwd, ctx):
        cur = jnp.mean(batch_loss(state, fwd.params, fwd.model_state,
                                  fwd.outputs, fwd.batch, ctx))
        slots, w = buffers.draw(state.buffer, member_key(ctx, 'icarl'),
                                batch_size)
        raw = buffers.examples(state.buffer, slots)
        ex = raw._replace(x=prepare(raw.x))
        out, _ = model.apply(fwd.params, fwd.model_state, ex.x, ex.task,
                             train=True)
        per = batch_loss(state, fwd.params, fwd.model_state, out, ex, ctx)
        mem = jnp.sum(w * per) / jnp.maximum(jnp.sum(w), 1.0)
        n_buf = jnp.sum(state.buffer.valid).astype(jnp.float32)
        n_cur = sizes[ctx.task_id]
        return {'bce': (n_cur * cur + n_buf * mem) / (n_cur + n_buf)}

    def features_of(params, model_state, x):
        def chunk(xc):
            return model.apply(params, model_state, prepare(xc),
                               jnp.zeros(xc.shape[0], jnp.int32))[0][
                                   'features']
        n = x.shape[0]
        size = 500
        pad = -n % size
        xs = jnp.pad(x, [(0, pad)] + [(0, 0)] * (x.ndim - 1))
        f = jax.lax.map(chunk, xs.reshape((-1, size) + x.shape[1:]))
        return f.reshape(n + pad, -1)[:n]

    def select(state, end, ctx):
        buf = _select(state, end, ctx)
        if not full_capacity:
            return buf
        keep = (per_class * num_tasks) // (ctx.task_id + 1)   # exemplars
        slot = jnp.arange(buf.valid.shape[0])
        return buf._replace(valid=buf.valid & (slot % block < keep))

    def _select(state, end, ctx):
        t = ctx.task_id
        data = end.data
        if selection == 'random':
            return buffers.store_task(state.buffer, data, t,
                                      member_key(ctx, 'icarl-store'),
                                      classes_per_task=classes_per_task,
                                      per_class=block)
        entries = jnp.arange(data.index.shape[1])
        raw = gather(data, data.index[t, entries], data.origin[t, entries])
        ok = entries < data.count[t]
        rank = raw.y % classes_per_task
        feats = features_of(end.params, end.model_state, raw.x)
        picks = jax.vmap(lambda r: herding(feats, ok & (rank == r),
                                           block))(
            jnp.arange(classes_per_task))
        found = jax.vmap(lambda r, p: (ok & (rank == r))[p])(
            jnp.arange(classes_per_task), picks)
        picks, found = picks.reshape(-1), found.reshape(-1)
        slots = (t * classes_per_task * block
                 + jnp.arange(classes_per_task * block))
        buf = state.buffer
        keep = found.reshape((-1,) + (1,) * (raw.x.ndim - 1))
        return buf._replace(
            x=buf.x.at[slots].set(jnp.where(keep, raw.x[picks],
                                            buf.x[slots])),
            y=buf.y.at[slots].set(raw.y[picks]),
            task=buf.task.at[slots].set(raw.task[picks]),
            valid=buf.valid.at[slots].set(found))

    def consolidate(state, end, ctx):
        buf = select(state, end, ctx)
        f = normalize(features_of(end.params, end.model_state, buf.x))
        onehot = jax.nn.one_hot(buf.y, num_outputs) * buf.valid[:, None]
        counts = onehot.sum(0)
        means = normalize((onehot.T @ f) / jnp.maximum(counts, 1)[:, None])
        return ICaRLState(buf, means, counts > 0,
                          Snapshot(end.params, end.model_state))

    def predict(state, snap, x, task):
        f = normalize(model.apply(snap.params, snap.model_state, x,
                                  task)[0]['features'])
        d = jnp.sum(jnp.square(f[:, None, :] - state.means[None]), -1)
        return jnp.where(state.has_mean[None], -d, losses.NEG)

    return make_method(init=init, loss=loss, consolidate=consolidate,
                       predict=predict)


def _build(ctx, hp, model):
    return icarl(
        model, per_class=ctx.size('icarl.per_class'),
        temperature=hp['icarl.temperature'],
        selection='herding' if ctx.size('icarl.herding') else 'random',
        num_outputs=ctx.num_outputs,
        task_sizes=[int(c) for c in ctx.protocol.train.count],
        full_capacity=bool(ctx.size('icarl.full_capacity')),
        batch_size=ctx.batch, **ctx.buffer_layout())


ENTRIES = [MethodEntry(
    'icarl', _build,
    defaults=lambda p, s, b: {
        'icarl.per_class': buffer_per_class(p, s),
        'icarl.temperature': default_of(icarl, 'temperature'),
        'icarl.herding': 1.0, 'icarl.full_capacity': 0.0},
    checks={'icarl.per_class': BUDGET, 'icarl.temperature': POSITIVE,
            'icarl.herding': SWITCH, 'icarl.full_capacity': SWITCH},
    static=('icarl.per_class', 'icarl.herding', 'icarl.full_capacity'),
    scenarios=('class',), own_objective=True,
    summary='iCaRL: exemplars, distillation, nearest-mean-of-exemplars '
            '(Rebuffi et al. 2017)')]
