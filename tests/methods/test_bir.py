"""Oracles of brain-inspired replay's components: the mixture prior's
variational term, class-conditional generation with its mode and gates,
the gate mixture, replay-through-feedback's classifier path, and BI-R
with every switch off equal to generative replay."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jcl.core.losses import log_normal
from jcl.core.records import Batch, Forward, Snapshot, TaskCtx
from jcl.methods.generated_replay import (
    ReplayState,
    generative_replay,
    replayed_inputs,
)
from jcl.methods.generator_objective import (
    generator_loss,
    variational,
)
from jcl.models import mlp_classifier, paired, vae_model
from jcl.models.rtf import rtf_vae
from jcl.tasks import protocols

K, L, D = 4, 3, 6


def np_log_normal(z, m, lv):
    return -0.5 * np.sum(lv + (z - m) ** 2 * np.exp(-lv), -1)


def test_mixture_prior_variational_term_by_hand():
    rng = np.random.RandomState(0)
    z, mu, lv = (rng.randn(5, L).astype(np.float32) for _ in range(3))
    mean, plv = rng.randn(K, L).astype(np.float32), \
        rng.randn(K, L).astype(np.float32)
    log_q = np_log_normal(z, mu, lv)
    mode = np.array([0, 3, 1, 1, 2])
    got = variational(jnp.asarray(z), jnp.asarray(mu), jnp.asarray(lv),
                      (jnp.asarray(mean), jnp.asarray(plv)),
                      mode=jnp.asarray(mode))
    want = log_q - np_log_normal(z, mean[mode], plv[mode])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    w = rng.dirichlet(np.ones(K), 5).astype(np.float32)
    w[0] = [0, 1, 0, 0]                # one mode: the same as mode=1
    got = variational(jnp.asarray(z), jnp.asarray(mu), jnp.asarray(lv),
                      (jnp.asarray(mean), jnp.asarray(plv)),
                      weights=jnp.asarray(w))
    dens = np.exp(np.stack([np_log_normal(z, mean[k], plv[k])
                            for k in range(K)], 1))
    want = log_q - np.log((w * dens).sum(1))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(
        got[0], log_q[0] - np_log_normal(z, mean[1], plv[1])[0], rtol=1e-5)
    # no prior: the analytic KL to N(0, I)
    kl = 0.5 * np.sum(np.exp(lv) + mu ** 2 - 1 - lv, -1)
    np.testing.assert_allclose(
        variational(jnp.asarray(z), jnp.asarray(mu), jnp.asarray(lv), None),
        kl, rtol=1e-5)
    np.testing.assert_allclose(log_normal(jnp.asarray(z), jnp.asarray(mu),
                                          jnp.asarray(lv)), log_q, rtol=1e-5)


def model_and_params(gate_prop=0.5, seed=0):
    m = rtf_vae((8, 8), latent=L, input_dim=D, num_outputs=K, num_modes=K,
                gate_groups=K, gate_prop=gate_prop)
    return m, *m.init(jax.random.PRNGKey(seed))


def test_rtf_classifier_is_encoder_then_head():
    m, params, state = model_and_params()
    x = jax.random.uniform(jax.random.PRNGKey(1), (5, D))
    out, _ = m.apply(params, state, x, jnp.zeros(5, int))
    p = jax.tree.map(np.asarray, params)
    h = np.asarray(x)
    for name in ('Dense_0', 'Dense_1'):
        h = np.maximum(h @ p['encoder'][name]['kernel']
                       + p['encoder'][name]['bias'], 0)
    np.testing.assert_allclose(out['features'], h, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        out['logits'], h @ p['classifier']['kernel'] + p['classifier']['bias'],
        rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out['mu'], h @ p['encoder']['Dense_2'][
        'kernel'] + p['encoder']['Dense_2']['bias'], rtol=1e-5, atol=1e-6)
    assert 'bias' not in p['encoder']['Dense_3']        # logvar head
    assert params['prior']['mean'].shape == (K, L)


def test_gate_mixture_is_the_weighted_sum_of_masks():
    m, params, state = model_and_params(gate_prop=0.5)
    masks = [np.asarray(g) for g in state['gates']]
    assert all(set(np.unique(g)) <= {0.0, 1.0} for g in masks)
    z = jax.random.normal(jax.random.PRNGKey(2), (3, L))
    w = np.array([[1, 0, 0, 0], [0.2, 0.3, 0.5, 0], [0, 0, 0, 1]],
                 np.float32)
    got = m.views['decode'](params, state, z, jnp.asarray(w))
    p = jax.tree.map(np.asarray, params['decoder'])
    h = np.asarray(z)
    for i, name in enumerate(('Dense_0', 'Dense_1')):
        pre = h @ p[name]['kernel'] + p[name]['bias']
        h = np.maximum(pre * (w @ masks[i]), 0)
    want = h @ p['Dense_2']['kernel'] + p['Dense_2']['bias']
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_class_conditional_samples_use_their_mode_and_gate():
    m, params, state = model_and_params(gate_prop=0.5, seed=3)
    active = jnp.asarray(protocols.active_table('class',
                                                [[0, 1], [2, 3]]))
    ctx = TaskCtx(jnp.int32(1), None, active)
    seen = jnp.array([True, True, False, False])
    rs = ReplayState(Snapshot(params, state), seen)
    key = jax.random.PRNGKey(4)
    x, head, cls = replayed_inputs(m, rs, ctx, key, 64, conditional=True,
                                   gate='class', num_groups=K)
    assert set(np.asarray(cls).tolist()) == {0, 1}  # seen classes only
    assert (np.asarray(head) == 0).all()
    # by hand: the same draws, the class's mode and the class's gate
    k_class, k_z = jax.random.split(key)
    eps = jax.random.normal(k_z, (64, L))
    mean, lv = params['prior']['mean'], params['prior']['logvar']
    z = mean[cls] + jnp.exp(0.5 * lv[cls]) * eps
    want = jax.nn.sigmoid(m.views['decode'](
        params, state, z, jax.nn.one_hot(cls, K)))
    np.testing.assert_allclose(x, want, rtol=1e-5, atol=1e-6)
    other = jax.nn.sigmoid(m.views['decode'](
        params, state, z, jax.nn.one_hot(1 - cls, K)))
    assert float(jnp.abs(other - x).max()) > 1e-3  # the gate matters


@pytest.mark.parametrize('distill', [False, True])
def test_bir_with_every_switch_off_is_generative_replay(distill):
    """A paired classifier + BI-R generator with no gates open (dg_prop 0),
    no mixture prior and BI-R's replay with every switch off gives the
    terms of generative replay; with a plain VAE of the same weights too."""
    clf = mlp_classifier((8,), num_outputs=K, input_dim=D)
    gen = rtf_vae((8,), latent=L, input_dim=D, num_outputs=K,
                  gate_groups=K, gate_prop=0.0)
    model = paired(clf, gen)
    params, state = model.init(jax.random.PRNGKey(0))
    teacher = jax.tree.map(lambda a: a * 1.1, params)
    active = jnp.asarray(protocols.active_table('class',
                                                [[0, 1], [2, 3]]))
    ctx = TaskCtx(jnp.int32(1), jax.random.PRNGKey(7), active)
    x = jax.random.uniform(jax.random.PRNGKey(8), (6, D))
    batch = Batch(x, jnp.array([2, 3, 2, 3, 2, 3]), jnp.ones(6, jnp.int32))
    out, _ = model.apply(params, state, x, batch.task, train=True)
    fwd = Forward(params, state, batch, out, {})
    rs = ReplayState(Snapshot(teacher, state), jnp.array([1, 1, 0, 0],
                                                         bool))
    bir = generative_replay(model, num_classes=K, distill=float(distill),
                            conditional=False, gate='class', num_groups=K)
    gr = generative_replay(model, num_classes=K, distill=distill)
    a, _ = bir.loss(rs, fwd, ctx)
    b, _ = gr.loss(rs, fwd, ctx)
    for k in ('replay', 'generator'):
        np.testing.assert_allclose(a[k], b[k], rtol=1e-6)
        assert float(a[k]) > 0
    cur_bir = generator_loss(model, gate='class', num_groups=K)
    cur_gr = generator_loss(model)
    np.testing.assert_allclose(cur_bir.loss((), fwd, ctx)[0]['loss'],
                               cur_gr.loss((), fwd, ctx)[0]['loss'],
                               rtol=1e-6)
    # the BI-R generator without gates or modes is the plain VAE
    vae = vae_model((8,), latent=L, input_dim=D)
    g = params['generator']
    vp = {'enc_0': g['encoder']['Dense_0'], 'to_mu': g['encoder']['Dense_1'],
          'to_logvar': g['encoder']['Dense_2'],
          'dec_0': g['decoder']['Dense_0'], 'to_out': g['decoder']['Dense_1']}
    vo, _ = vae.apply(vp, {}, x, batch.task)
    go, _ = gen.apply(g, state['generator'], x, batch.task)
    np.testing.assert_allclose(vo['mu'], go['mu'], rtol=1e-6)
    np.testing.assert_allclose(vo['logvar'], go['logvar'], rtol=1e-6)
    z = jax.random.normal(jax.random.PRNGKey(9), (6, L))
    np.testing.assert_allclose(
        vae.views['decode'](vp, {}, z),
        gen.views['decode'](g, state['generator'], z,
                            jax.nn.one_hot(batch.y, K)),
        rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('method', ['gr', 'bir', 'bir-separate'])
def test_generator_size_is_its_own_setting(arrays, method):
    """``gen_hidden`` sizes GR's VAE and a replay-through-feedback
    decoder (with its gates); the classifier (BI-R: the encoder) keeps
    ``hidden``; a separate BI-R generator is sized whole."""
    from jcl.methods import catalog as method_catalog
    from jcl.methods.assemble import build_learner
    from jcl.tasks import catalog
    proto = protocols.class_split('s', arrays, 'class')
    spec = catalog.protocol_spec('split-mnist')
    name = 'bir' if method.startswith('bir') else method
    hp = method_catalog.default_hparams([name], lr=1e-3, protocol='split-mnist',
                                  scenario='class', batch=8)
    if method == 'bir-separate':
        hp['bir.rtf'] = 0.0
    learner = build_learner(proto, spec, [name], hidden=(16, 12),
                                    gen_hidden=(7,), iters=2, batch=8,
                                    static_max=hp)
    params, state = jax.eval_shape(learner.make_model(hp).init,
                                   jax.random.PRNGKey(0))
    shapes = {'/'.join(str(getattr(k, 'key', k)) for k in path): a.shape
              for path, a in jax.tree_util.tree_flatten_with_path(params)[0]}
    kernels = sorted(v for k, v in shapes.items() if k.endswith('kernel'))
    if method == 'gr':
        gen = [v for k, v in shapes.items()
               if k.startswith('generator') and k.endswith('kernel')]
        clf = [v for k, v in shapes.items()
               if k.startswith('classifier') and k.endswith('kernel')]
        assert (784, 7) in gen and (784, 16) in clf and (16, 12) in clf
        return
    dec = [v for k, v in shapes.items()
           if 'decoder' in k and k.endswith('kernel')]
    assert dec == [(100, 7), (7, 784)] or sorted(dec) == sorted(
        [(100, 7), (7, 784)]), dec
    gates = jax.tree.leaves(state)
    assert [g.shape for g in gates] == [(10, 7)]
    if method == 'bir':     # the encoder is the classifier: hidden stays
        assert (784, 16) in kernels and (16, 12) in kernels
