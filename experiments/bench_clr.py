"""CLR training throughput: jcl's compiled step beside the reference's
PyTorch CLR block on the same model and batch.

Both sides train ResNet-18 (ImageNet stem) with a CLR layer after every
non-1x1 conv, BatchNorm in training mode, a 10-way head, Adam on the CLR
kernels, BatchNorm's affine parameters and the head, cross-entropy plus
1e-5 times the un-squared L2 norm of each trained tensor, on a batch of
random images of one size. The PyTorch side builds the reference's
block (``network/ReGhos_Block.py``: the frozen conv, then a Dirac
depthwise 3x3 without bias) in torchvision's layout (written out in
``tests/fixtures/make_resnet_fixture.py``, since torchvision does not
import with the CPU torch wheel); it needs ``pip install torch`` (the
``bench`` extra).

    python experiments/bench_clr.py --side jcl --size 32 --steps 50
    python experiments/bench_clr.py --side torch --size 32 --steps 50
    # several tasks' banks trained at once: each step a batch per task,
    # every example through its own task's CLR kernels, BatchNorm and head
    python experiments/bench_clr.py --side jcl --size 224 --banks 8

Prints one JSON line: images per second over the timed steps (the
benchmark loop; start-up and, for jcl, compilation reported apart).
"""

import argparse
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def bench_jcl(size, batch, steps, warmup, conv_impl=None, dw_impl=None,
              banks=1):
    import jax
    import jax.numpy as jnp

    from jcl.core import combine
    from jcl.core.records import Batch
    from jcl.methods.objective import supervised
    from jcl.methods.weight_penalty import norm_penalty
    from jcl.models.backbone import resnet_model
    from jcl.tasks import protocols
    from jcl.training.learner import Learner, init_state
    from jcl.training.task import train_chunk

    def make_model(hp):
        return resnet_model(depth=18, stem='imagenet', num_tasks=banks,
                            head_width=10, mode='clr',
                            input_shape=(size, size, 3),
                            conv_impl=conv_impl, dw_impl=dw_impl)

    def make_method(hp, model):
        return combine.replay_weighted(
            current=[('ce', supervised())],
            other=[('l2', norm_penalty(model.labels, strength=1e-5))])

    learner = Learner(make_model, make_method, prepare=lambda x: x,
                      num_steps=steps, batch_size=batch,
                      reset_optimizer=True)
    hp = {'lr': jnp.float32(1e-3)}
    state = init_state(learner, hp, jax.random.PRNGKey(0))
    rng = np.random.RandomState(0)
    k = 10                                        # steps per compiled call
    n = batch * banks                  # a batch of `batch` per task
    task = np.repeat(np.arange(banks), batch)[None].repeat(k, 0)
    # task t's classes are output units 10t..10t+9 (its head's block)
    raw = Batch(jnp.asarray(rng.normal(size=(k, n, size, size, 3)),
                            jnp.float32),
                jnp.asarray(rng.randint(0, 10, (k, n)) + 10 * task,
                            jnp.int32),
                jnp.asarray(task, jnp.int32))
    keys = jax.random.split(jax.random.PRNGKey(1), k)
    # the last task is the current one, every task's head active in its
    # block (the weight penalty covers the current task's bank only, a
    # negligible difference in work)
    active = jnp.asarray(protocols.active_table(
        'task', [list(range(10 * t, 10 * t + 10)) for t in range(banks)]))
    call = jax.jit(lambda s: train_chunk(
        learner, s, hp, raw, keys, jnp.ones(k, bool), jnp.ones(k),
        active, jnp.int32(banks - 1)), donate_argnums=0)
    t0 = time.time()
    state, m = call(state)
    jax.block_until_ready(m)
    first = time.time() - t0
    calls = max(1, steps // k)
    for _ in range(max(0, warmup // k - 1)):
        state, m = call(state)
    jax.block_until_ready(m)
    t0 = time.time()
    for _ in range(calls):
        state, m = call(state)
    jax.block_until_ready(m)
    dt = time.time() - t0
    return dict(side='jcl', conv_impl=conv_impl, dw_impl=dw_impl,
                banks=banks, images_per_s=calls * k * n / dt,
                ms_per_step=1000 * dt / (calls * k),
                first_call_s=first, loss=float(np.asarray(m['loss'])[-1]))


def bench_torch(size, batch, steps, warmup):
    import torch
    from torch import nn
    sys.path.insert(0, os.path.join(HERE, '..', 'tests', 'fixtures'))
    sys.path.insert(0, os.path.join(HERE, '..', 'tests', 'models'))
    from make_resnet_fixture import Basic, Net, add_clr
    torch.manual_seed(0)
    model = Net(Basic, (2, 2, 2, 2))
    model.fc = nn.Linear(512, 10)
    for p in model.parameters():
        p.requires_grad = False
    add_clr(model)
    trained = []
    for mod in model.modules():
        if isinstance(mod, nn.BatchNorm2d) or mod is model.fc or (
                isinstance(mod, nn.Conv2d) and mod.groups > 1):
            for p in mod.parameters(recurse=False):
                p.requires_grad = True
                trained.append(p)
    opt = torch.optim.Adam(trained, lr=1e-3)
    model.train()
    rng = np.random.RandomState(0)
    x = torch.from_numpy(rng.normal(size=(batch, 3, size, size))
                         .astype(np.float32))
    y = torch.from_numpy(rng.randint(0, 10, batch))

    def step():
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        for w in trained:          # the reference skips zero norms
            norm = torch.sqrt(torch.sum(w * w))
            if norm != 0:
                loss = loss + 1e-5 * norm
        loss.backward()
        opt.step()
        return loss

    for _ in range(warmup):
        step()
    t0 = time.time()
    for _ in range(steps):
        loss = step()
    dt = time.time() - t0
    return dict(side='torch', images_per_s=steps * batch / dt,
                ms_per_step=1000 * dt / steps, loss=float(loss),
                threads=torch.get_num_threads())


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--side', choices=('jcl', 'torch'), required=True)
    p.add_argument('--size', type=int, default=32)
    p.add_argument('--batch', type=int, default=32)
    p.add_argument('--steps', type=int, default=50)
    p.add_argument('--warmup', type=int, default=10)
    p.add_argument('--conv-impl', choices=('lax', 'patches', 'slices'),
                   default=None,
                   help='jcl: the backbone convolutions (default: the '
                   'backend\'s)')
    p.add_argument('--dw-impl', choices=('shift', 'lax'), default=None,
                   help='jcl: the CLR depthwise convolutions')
    p.add_argument('--banks', type=int, default=1,
                   help='jcl: tasks trained at once in one program, a '
                   'batch of --batch per task (images/s counts them all)')
    a = p.parse_args()
    if a.side == 'jcl':
        out = bench_jcl(a.size, a.batch, a.steps, a.warmup, a.conv_impl,
                        a.dw_impl, a.banks)
    else:
        out = bench_torch(a.size, a.batch, a.steps, a.warmup)
    print(json.dumps({**out, 'size': a.size, 'batch': a.batch,
                      'steps': a.steps}))


if __name__ == '__main__':
    main()
