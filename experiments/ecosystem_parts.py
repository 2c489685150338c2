"""The JAX ecosystem's parts beside jcl's own: Orbax against jcl's
checkpoint file, the ``safetensors`` package against jcl's reader.

* checkpoints: BI-R's carry on split MNIST for ``--rows`` vmapped rows,
  saved and restored by :mod:`jcl.training.checkpoint` and by Orbax's
  ``StandardCheckpointer`` (already installed: flax requires it);
* ``.safetensors``: a seeded torchvision ResNet-18 state dict read by
  :mod:`jcl.weights.safetensors_read` and by ``safetensors.numpy``
  (``pip install safetensors`` first; skipped without it), and a
  truncated file given to both.

Medians of ``--repeats``; one thread::

    taskset -c 1 python experiments/ecosystem_parts.py
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

from one_thread import pin

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def median_time(f, n):
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return sorted(times)[n // 2]


def size(path):
    return sum(os.path.getsize(os.path.join(r, f))
               for r, _, fs in os.walk(path) for f in fs)


def checkpoints(folder, rows, n):
    import jax
    import jax.numpy as jnp
    import numpy as np
    import orbax.checkpoint as ocp

    from jcl.methods import catalog as mc
    from jcl.methods.assemble import build_learner
    from jcl.sweep.rows import compile_programs
    from jcl.tasks import catalog
    from jcl.training import checkpoint
    proto = catalog.load_protocol('split-mnist', 'class')
    spec = catalog.protocol_spec('split-mnist')
    parts = mc.parse('bir')
    hp = mc.default_hparams(parts, lr=1e-3, protocol='split-mnist',
                            scenario='class')
    learner = build_learner(proto, spec, parts, hidden=spec.hidden,
                            iters=500, batch=128, static_max=hp)
    hpa = {k: jnp.full((rows,), v, jnp.float32) for k, v in hp.items()}
    state = compile_programs(learner).init(
        hpa, jax.random.split(jax.random.PRNGKey(0), rows))
    host = jax.tree.map(np.asarray, state)
    mb = sum(x.nbytes for x in jax.tree.leaves(host)) / 1e6
    print(f'BI-R carry, {rows} rows: {len(jax.tree.leaves(host))} leaves, '
          f'{mb:.1f} MB\n\n| | save s | restore s | on disk |\n|---|---|---|'
          '---|')
    path = os.path.join(folder, 'c.npz')
    save = median_time(lambda: checkpoint.save(path, host), n)
    load = median_time(lambda: checkpoint.load(path, host), n)
    print(f'| jcl .npz | {save:.3f} | {load:.3f} | '
          f'{os.path.getsize(path) / 1e6:.1f} MB |')
    ck, count = ocp.StandardCheckpointer(), [0]

    def orbax_save():
        count[0] += 1
        ck.save(os.path.join(folder, f'orbax{count[0]}'), state)
        ck.wait_until_finished()

    save = median_time(orbax_save, n)
    first = os.path.join(folder, 'orbax1')
    load = median_time(lambda: jax.block_until_ready(
        ck.restore(first, state)), n)
    print(f'| Orbax | {save:.3f} | {load:.3f} | {size(first) / 1e6:.1f} MB |')


def safetensors_files(folder, n):
    import numpy as np

    from jcl.models import torchvision_import as tvi
    from jcl.weights.statedict import load_state_dict
    try:
        from safetensors.numpy import load_file, save_file
    except ImportError:
        print('\n(safetensors is not installed: its part is skipped)')
        return
    sys.path.insert(0, os.path.join(ROOT, 'tests', 'models'))
    import seeded_resnet
    sd = {k: np.ascontiguousarray(v) for k, v in seeded_resnet.state_dict(
        tvi.torchvision_keys(18)).items()}
    path = os.path.join(folder, 'r18.safetensors')
    save_file(sd, path)
    mine = median_time(lambda: load_state_dict(path), n)
    theirs = median_time(lambda: load_file(path), n)
    a, b = load_state_dict(path), load_file(path)
    same = sorted(a) == sorted(b) and all(
        np.array_equal(a[k], b[k]) and a[k].dtype == b[k].dtype for k in a)
    print(f'\nResNet-18 .safetensors ({len(sd)} tensors, '
          f'{os.path.getsize(path) / 1e6:.1f} MB): jcl {1e3 * mine:.1f} ms, '
          f'safetensors {1e3 * theirs:.1f} ms, the same arrays: {same}')
    with open(path, 'rb') as f:
        head = f.read(1000)
    with open(path + '.cut', 'wb') as f:
        f.write(head)
    for name, read in (('jcl', load_state_dict), ('safetensors', load_file)):
        try:
            read(path + '.cut')
            print(f'{name}: accepted a truncated file')
        except Exception as e:   # what each says
            print(f'{name} on a truncated file: {type(e).__name__}: {e}')


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--rows', type=int, default=8)
    p.add_argument('--repeats', type=int, default=5)
    args = p.parse_args()
    pin(1)
    folder = tempfile.mkdtemp()
    try:
        checkpoints(folder, args.rows, args.repeats)
        safetensors_files(folder, args.repeats)
    finally:
        shutil.rmtree(folder)


if __name__ == '__main__':
    main()
