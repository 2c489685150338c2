"""How good are the replayed samples: the BI-R paper's generator metrics.

Trains each generative replay method (one seed) on a split protocol and
measures its generator after every task, on the classes seen so far, in
the embedding of a classifier trained on all of the data set's training
images (the paper's stand-in for Inception, so that every generator is
measured in one embedding):

* IS: the inception score of the samples under that classifier;
* FID: the Fréchet distance between its features of the samples and of
  the test images of the seen classes;
* precision / recall: Sajjadi et al.'s curve over the same features,
  summarised as F8 (recall weighted) and F1/8 (precision weighted);
* LL: the test log-likelihood (nats per image) by importance sampling
  from the model's posterior (test images of the seen classes);
* RE: the reconstruction error (the model's loss, summed over pixels).

Usage::

    python experiments/generator_quality.py --methods gr,rtf,bir \\
        --out runs/generator-quality

Writes ``quality.json``, ``quality.md`` (the table after the last task)
and ``quality.png`` (each metric against tasks learned, and the last
task's precision/recall curves) in --out.
"""

import argparse
import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
from bir_samples import each_task


def parse():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--protocol', default='split-mnist')
    p.add_argument('--scenario', default='class')
    p.add_argument('--methods', default='gr,rtf,bir')
    p.add_argument('--iters', type=int, default=None)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--samples', type=int, default=5000,
                   help='generated samples measured per task')
    p.add_argument('--ll-images', type=int, default=1000,
                   help='test images of the log-likelihood estimate')
    p.add_argument('--ll-draws', type=int, default=100,
                   help='importance samples per image')
    p.add_argument('--embed-epochs', type=int, default=5)
    p.add_argument('--out', required=True)
    return p.parse_args()


def embedding_net(arrays, epochs, seed=0):
    """A 784-400-400-C classifier trained on all training images
    (Adam 1e-3, batch 128): ``f(x in [0, 1]) -> (probs, features)``."""
    from jcl.models import mlp_classifier
    x = arrays['train_x'].reshape(len(arrays['train_x']), -1)
    y = arrays['train_y'].astype(np.int32)
    classes = int(y.max()) + 1
    net = mlp_classifier((400, 400), num_outputs=classes,
                         input_dim=x.shape[1])
    params, state = net.init(jax.random.PRNGKey(seed))
    tx = optax.adam(1e-3)
    opt = tx.init(params)
    xd, yd = jnp.asarray(x), jnp.asarray(y)

    def loss(p, xb, yb):
        out, _ = net.apply(p, state, xb.astype(jnp.float32) / 255, None)
        return optax.softmax_cross_entropy_with_integer_labels(
            out['logits'], yb).mean()

    @jax.jit
    def epoch(carry, key):
        order = jax.random.permutation(key, len(x))[:len(x) // 128 * 128]

        def step(c, idx):
            p, o = c
            g = jax.grad(loss)(p, xd[idx], yd[idx])
            u, o = tx.update(g, o, p)
            return (optax.apply_updates(p, u), o), None

        carry, _ = jax.lax.scan(step, carry, order.reshape(-1, 128))
        return carry

    carry = (params, opt)
    for e in range(epochs):
        carry = epoch(carry, jax.random.PRNGKey(1000 + e))
    params = carry[0]

    @jax.jit
    def embed(xf):
        out, _ = net.apply(params, state, xf, None)
        return jax.nn.softmax(out['logits']), out['features']

    test = arrays['test_x'].reshape(len(arrays['test_x']), -1) / 255.0
    probs, _ = embed(jnp.asarray(test, jnp.float32))
    acc = float(np.mean(np.argmax(probs, -1) == arrays['test_y']))
    return embed, acc


def f_beta(precision, recall, beta):
    """Sajjadi et al.'s summary: the maximum of ``F_beta`` on the curve."""
    b2 = beta ** 2
    f = (1 + b2) * precision * recall / np.maximum(
        b2 * precision + recall, 1e-12)
    return float(np.max(f))


def measure(args, embed, arrays, t, proto, model, hp, one):
    """The metrics of one trained model after task ``t``."""
    from jcl.analysis import quality
    seen = np.flatnonzero(np.asarray(proto.active)[t, t])
    originals = np.asarray(proto.task_classes).reshape(-1)[seen]
    task_gates = hp.get('bir.task_gates', 0) > 0

    def group(c):
        return c // proto.classes_per_task if task_gates else c

    per = -(-args.samples // len(seen))
    gen = quality.class_samples(model, one.params, one.model_state,
                                jax.random.PRNGKey(7 + t), seen, per, group)
    gen = gen.reshape(-1, gen.shape[-1])[:args.samples]
    keep = np.isin(arrays['test_y'], originals)
    real_x = arrays['test_x'][keep].reshape(int(keep.sum()), -1) / 255.0
    real_x = jnp.asarray(real_x, jnp.float32)
    probs_g, feat_g = embed(gen)
    _, feat_r = embed(real_x)
    prec, rec = quality.precision_recall(jax.random.PRNGKey(11), feat_r,
                                         feat_g)
    prec, rec = np.asarray(prec), np.asarray(rec)
    # likelihood and reconstruction on test images of the seen classes
    pick = np.random.RandomState(t).permutation(len(real_x))[:args.ll_images]
    x_ll = real_x[pick]
    rank = {int(c): int(u) for u, c in zip(seen, originals)}
    y_ll = np.asarray([rank[int(c)] for c in arrays['test_y'][keep][pick]])
    gates = quality.gate_masks_of(one.model_state)
    weights = (jax.nn.one_hot(jnp.asarray([group(u) for u in y_ll]),
                              gates[0].shape[0]) if gates is not None
               else None)
    ll = quality.importance_log_likelihood(
        model, one.params, one.model_state, x_ll, jax.random.PRNGKey(13),
        args.ll_draws, weights)
    re = quality.reconstruction_error(model, one.params, one.model_state,
                                      x_ll, weights)
    return {
        'IS': float(quality.inception_score(probs_g)),
        'FID': float(quality.fid(feat_r, feat_g)),
        'F8': f_beta(prec, rec, 8.0), 'F1/8': f_beta(prec, rec, 1 / 8),
        'LL': float(jnp.mean(ll)), 'RE': float(jnp.mean(re)),
        'classes': len(seen), 'precision': prec[::10].tolist(),
        'recall': rec[::10].tolist()}


METRICS = (('IS', 'higher'), ('FID', 'lower'), ('F8', 'higher'),
           ('F1/8', 'higher'), ('LL', 'higher'), ('RE', 'lower'))


def table(report):
    lines = ['| method | accuracy (%) | ' + ' | '.join(
        f'{m} ({d})' for m, d in METRICS) + ' |',
        '|---' * (len(METRICS) + 2) + '|']
    for name, r in report['methods'].items():
        last = r['tasks'][-1]
        lines.append(f"| {name} | {r['accuracy'][-1]:.2f} | " + ' | '.join(
            f"{last[m]:.2f}" for m, _ in METRICS) + ' |')
    return '\n'.join(lines)


def plot(report, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(METRICS) + 1,
                             figsize=(3 * (len(METRICS) + 1), 3))
    for name, r in report['methods'].items():
        x = np.arange(1, len(r['tasks']) + 1)
        for ax, (m, d) in zip(axes, METRICS):
            ax.plot(x, [s[m] for s in r['tasks']], marker='o', ms=3,
                    label=name)
            ax.set_title(f'{m} ({d} is better)', fontsize=9)
            ax.set_xlabel('tasks learned')
        last = r['tasks'][-1]
        axes[-1].plot(last['recall'], last['precision'], label=name)
    axes[-1].set_xlabel('recall')
    axes[-1].set_ylabel('precision')
    axes[-1].set_title('after the last task', fontsize=9)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main():
    from jcl.tasks import catalog
    args = parse()
    os.makedirs(args.out, exist_ok=True)
    spec = catalog.protocol_spec(args.protocol)
    arrays = catalog.load_arrays(args.protocol)
    embed, embed_acc = embedding_net(arrays, args.embed_epochs)
    print(f'embedding classifier: {100 * embed_acc:.2f}% test accuracy',
          flush=True)
    report = {'protocol': args.protocol, 'scenario': args.scenario,
              'seed': args.seed, 'iters': args.iters or spec.iters,
              'embedding_test_accuracy': embed_acc, 'methods': {}}
    path = os.path.join(args.out, 'quality.json')
    if os.path.exists(path):
        with open(path) as f:
            report['methods'] = json.load(f)['methods']   # resume
    for method in args.methods.split(','):
        if method in report['methods']:
            continue
        rows, accs = [], []
        for t, proto, model, hp, one, acc in each_task(
                args.protocol, args.scenario, method, args.iters,
                args.seed):
            rows.append(measure(args, embed, arrays, t, proto, model, hp,
                                one))
            accs.append(100 * float(acc[:t + 1].mean()))
            print(f'{method} task {t + 1}: accuracy {accs[-1]:.2f}  ' +
                  '  '.join(f'{m} {rows[-1][m]:.2f}' for m, _ in METRICS),
                  flush=True)
        report['methods'][method] = {'tasks': rows, 'accuracy': accs}
        with open(path + '.tmp', 'w') as f:
            json.dump(report, f, indent=1)
        os.replace(path + '.tmp', path)
    with open(os.path.join(args.out, 'quality.md'), 'w') as f:
        f.write(table(report) + '\n')
    plot(report, os.path.join(args.out, 'quality.png'))
    print(table(report))
    return 0


if __name__ == '__main__':
    sys.exit(main())
