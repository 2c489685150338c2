"""Oracles of GSS-Greedy: its scores, its selection (filling, skipping,
the replacement probabilities), its loss, its update under jit and vmap,
and the command line."""

import json

import jax
import jax.numpy as jnp
import numpy as np
from tiny_runs import assert_refused

from jcl import cli
from jcl.core import losses
from jcl.core.model import make_model
from jcl.core.records import Batch, Forward, Step, TaskCtx
from jcl.methods import buffers
from jcl.methods.gradient_sample_selection import (
    ScoredBuffer,
    gss,
    offer,
    selection_scores,
)
from jcl.tasks import protocols

D, C = 3, 4
PARAMS = {'w': jnp.asarray(np.random.RandomState(0).randn(D, C),
                           jnp.float32),
          'b': jnp.asarray([0.1, -0.2, 0.3, 0.0], jnp.float32)}


def linear_model():
    def apply(p, s, x, task, train=False):
        return {'logits': x @ p['w'] + p['b'], 'features': x}, s
    return make_model(init=None, apply=apply)


def scale(x):
    return x.astype(jnp.float32) / 10.0


def ctx(t=0):
    active = protocols.active_table('class', [[0, 1], [2, 3]])
    return TaskCtx(jnp.int32(t), jax.random.PRNGKey(7), jnp.asarray(active))


def raw_batch(n, seed=2):
    rng = np.random.RandomState(seed)
    return Batch(jnp.asarray(rng.randint(0, 10, (n, D)), jnp.uint8),
                 jnp.asarray(rng.randint(0, C, n)), jnp.zeros(n, jnp.int32))


def example_ce(p, x, y, task):
    return losses.cross_entropy(x @ p['w'] + p['b'], y, ctx().mask(task))


def test_scores_are_one_plus_the_largest_cosine():
    b, ref = raw_batch(5), raw_batch(3, seed=3)
    b, ref = (r._replace(x=scale(r.x)) for r in (b, ref))
    valid = jnp.array([True, True, False])
    c, ci = selection_scores(example_ce, PARAMS, b, ref, valid)

    def flat(fn, *args):
        g = jax.grad(fn)(PARAMS, *args)
        return np.concatenate([np.ravel(g['b']), np.ravel(g['w'])])

    def mean(p, x, y, t):
        return jnp.mean(example_ce(p, x, y, t))

    G = [flat(mean, ref.x[j:j + 1], ref.y[j:j + 1], ref.task[j:j + 1])
         for j in range(2)]                         # the third is not valid

    def best(g):
        return 1 + max(g @ h / np.linalg.norm(g) / np.linalg.norm(h)
                       for h in G)

    np.testing.assert_allclose(c, best(flat(mean, b.x, b.y, b.task)),
                               rtol=1e-5)
    for i in range(5):
        np.testing.assert_allclose(
            ci[i], best(flat(mean, b.x[i:i + 1], b.y[i:i + 1],
                             b.task[i:i + 1])), rtol=1e-5)


def scored(size, seen=0, score=None):
    buf = buffers.empty(size, (D,), jnp.uint8)
    full = jnp.arange(size) < seen
    return ScoredBuffer(
        buf._replace(valid=full, seen=jnp.int32(seen),
                     y=jnp.where(full, 9, 0)),
        jnp.zeros(size) if score is None else jnp.asarray(score))


def test_offer_fills_then_skips_a_well_aligned_batch():
    b = raw_batch(3)
    s = offer(scored(4), b, jnp.float32(0.1), jnp.zeros(3),
              jax.random.PRNGKey(0))
    assert s.buffer.valid.tolist() == [True] * 3 + [False]
    np.testing.assert_allclose(s.score, [0.1, 0.1, 0.1, 0.0])
    np.testing.assert_array_equal(s.buffer.x[:3], b.x)
    # room for one more: the last two examples meet a full buffer, and a
    # batch score >= 1 skips them; all three are counted as seen
    s = offer(s, raw_batch(3, seed=5), jnp.float32(1.2), jnp.zeros(3),
              jax.random.PRNGKey(1))
    assert int(s.buffer.seen) == 6 and s.buffer.valid.all()
    np.testing.assert_allclose(s.score, [0.1, 0.1, 0.1, 1.2])
    np.testing.assert_array_equal(s.buffer.x[3], raw_batch(3, seed=5).x[0])


def test_offer_replaces_with_the_greedy_probabilities():
    """One example (score c) offered to a full buffer with scores s:
    slot k is replaced with probability (s_k / sum s) s_k / (s_k + c)."""
    s = np.array([0.2, 0.5, 1.3])
    c = 0.4
    full = scored(3, seen=3, score=s)
    keys = jax.random.split(jax.random.PRNGKey(0), 20000)
    run = jax.jit(jax.vmap(lambda k: offer(
        full, raw_batch(1), jnp.float32(0.5), jnp.array([c]), k)))
    out = run(keys)
    replaced = np.asarray(out.buffer.y != 9)             # [keys, slots]
    want = s / s.sum() * s / (s + c)
    np.testing.assert_allclose(replaced.mean(0), want, atol=0.012)
    np.testing.assert_allclose(np.asarray(out.score)[replaced], c)


def test_loss_is_the_mean_over_the_batch_and_the_draw():
    m = gss(linear_model(), prepare=scale, input_shape=(D,), size=4,
            minibatch=2)
    state = offer(scored(4), raw_batch(3, seed=4), jnp.float32(0.1),
                  jnp.zeros(3), jax.random.PRNGKey(0))
    b = raw_batch(5)
    xb = scale(b.x)
    fwd = Forward(PARAMS, {}, b._replace(x=xb),
                  {'logits': xb @ PARAMS['w'] + PARAMS['b']}, {})
    c = ctx()
    got = m.loss(state, fwd, c)[0]['loss']
    from jcl.core.method import member_key
    slots, _ = buffers.draw(state.buffer, member_key(c, 'gss'), 2)
    x = jnp.concatenate([xb, scale(state.buffer.x[slots])])
    y = jnp.concatenate([b.y, state.buffer.y[slots]])
    t = jnp.concatenate([b.task, state.buffer.task[slots]])
    np.testing.assert_allclose(got, jnp.mean(example_ce(PARAMS, x, y, t)),
                               rtol=1e-6)
    # an empty buffer: the batch's own mean
    empty = m.init(None, None)
    np.testing.assert_allclose(m.loss(empty, fwd, c)[0]['loss'],
                               jnp.mean(example_ce(PARAMS, xb, b.y, b.task)),
                               rtol=1e-6)


def test_update_jit_and_vmap_over_seeds():
    m = gss(linear_model(), prepare=scale, input_shape=(D,), size=4,
            minibatch=2, score_minibatch=2)
    b = raw_batch(3)
    step = Step(PARAMS, PARAMS, PARAMS, {}, b._replace(x=scale(b.x)), b,
                {}, {})
    state = offer(scored(4), raw_batch(4, seed=6), jnp.float32(0.1),
                  jnp.zeros(4), jax.random.PRNGKey(0))
    ctxs = [TaskCtx(jnp.int32(0), jax.random.PRNGKey(s), ctx().active)
            for s in range(6)]
    loop = [m.update(state, step, c) for c in ctxs]
    jitted = jax.jit(m.update)
    keys = jnp.stack([c.key for c in ctxs])
    mapped = jax.jit(jax.vmap(lambda k: m.update(
        state, step, ctxs[0]._replace(key=k))))(keys)
    for i, want in enumerate(loop):
        for a, b_, c_ in zip(jax.tree.leaves(want),
                             jax.tree.leaves(jitted(state, step, ctxs[i])),
                             jax.tree.leaves(jax.tree.map(
                                 lambda a, i=i: a[i], mapped))):
            np.testing.assert_allclose(b_, a, rtol=1e-5)
            np.testing.assert_allclose(c_, a, rtol=1e-5)
    assert all(int(s.buffer.seen) == 7 for s in loop)


def test_gss_runs_and_refuses_bad_values(tmp_path, capsys):
    out = tmp_path / 'gss'
    code = cli.main(['run', '--protocol', 'split-mnist', '--scenario',
                     'class', '--method', 'gss+si', '--iters', '4',
                     '--batch', '16', '--hidden', '16', '--set',
                     'gss.budget=40', '--out', str(out)])
    assert code == 0, capsys.readouterr().err
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['gss+si']['hp']['gss.budget'] == 40.0
    assert_refused(tmp_path, capsys, (
        ('gss', 'gss.minibatch=0', 'gss.minibatch=0: must be'),
        ('gss', 'gss.budget=0.5', 'gss.budget=0.5: must be'),
        ('gss+icarl', None, 'own objective')))
