"""Tutorial: a new method from outside the package.

Memory aware synapses (``mas.py`` beside this file, 30 lines of method)
is written against jcl's public API only. This script trains it on split
MNIST alone, composed with BI-R and with experience replay, searches its
strength beside BI-R in one vmapped grid, and runs it from the command
line through ``--plugin``. Run it from this folder::

    python new_method.py                # the paper's 2000 iterations/task
    python new_method.py --iters 200    # a quicker look

It prints one line per run: average accuracy after the last task, per
seed.
"""

import argparse
import os
import subprocess
import sys

import jcl
from jcl.tasks import catalog

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mas import mas  # noqa: E402  (importing it registers 'mas')

HIDDEN = (400, 400)   # the papers' MLP for split MNIST


def learner_for(proto, parts, *, iters, static=None):
    """A learner of registered methods by name (the command line's way)."""
    return jcl.build_learner(proto, catalog.protocol_spec('split-mnist'),
                             parts, hidden=HIDDEN, iters=iters, batch=128,
                             static_max=static)


def by_hand(proto, *, iters, strength):
    """The same composition written out: BI-R's model and method, and MAS
    on the same model, behind the cross-entropy (``jcl.compose``)."""
    def make_model(hp):
        return jcl.methods.bir_model(
            HIDDEN, input_dim=784, num_outputs=proto.num_outputs,
            num_tasks=proto.num_tasks, gate_prop=0.1)

    def make_method(hp, model):
        return jcl.compose(
            ('bir', jcl.methods.bir(model, num_classes=proto.num_outputs,
                                    num_tasks=proto.num_tasks)),
            ('mas', mas(model, strength=hp['mas.lambda'])))

    return jcl.Learner(make_model, make_method, prepare=proto.prepare,
                       num_steps=iters, batch_size=128)


def sweep_by_name(proto, parts, *, iters, seeds, log, **kw):
    """``jcl.run_sweep`` of registered methods by name, at their default
    hyperparameters (the catalogue's, as ``jcl run`` uses them)."""
    hp = jcl.methods.catalog.default_hparams(
        parts, lr=1e-3, protocol='split-mnist', scenario=proto.scenario)
    return jcl.run_sweep(
        lambda static: learner_for(proto, parts, iters=iters, static=static),
        proto, hparams=hp, seeds=seeds, progress=log, **kw)


def average(result):
    """Average accuracy after the last task, per seed (%)."""
    R = result.R[0]                       # the first (only) grid point
    return [round(100 * float(r[-1].mean()), 2) for r in R]


def main(iters=2000, seeds=(0, 1), scenario='class', cli_iters=None,
         quiet=False, out='runs/tutorial-mas-bir',
         strengths=(0.1, 1.0, 10.0, 100.0)):
    log = None if quiet else print
    proto = catalog.load_protocol('split-mnist', scenario)
    run = dict(iters=iters, seeds=seeds, log=log)
    results = {}
    # 1. alone: the registered name works like a built-in one
    results['mas'] = sweep_by_name(proto, ['mas'], **run)
    # 2. with BI-R, written by hand, and by name through the catalogue
    results['bir+mas (by hand)'] = jcl.run_sweep(
        by_hand(proto, iters=iters, strength=1.0), proto,
        hparams={'lr': 1e-3, 'mas.lambda': 1.0}, seeds=seeds, progress=log)
    results['bir+mas'] = sweep_by_name(proto, ['bir', 'mas'], **run)
    # 3. with a buffer method
    results['er+mas'] = sweep_by_name(proto, ['er', 'mas'], **run)
    # 4. a grid over its strength beside BI-R: every point and seed in one
    #    program, the point chosen on a validation split of the training data
    grid = sweep_by_name(proto, ['bir', 'mas'], **run, validation=0.1,
                         grid={'mas.lambda': list(strengths)})
    for name, result in results.items():
        print(f'{name:20s} {scenario}-IL average accuracy %: '
              f'{average(result)}')
    chosen = grid.points[grid.chosen]['mas.lambda']
    print(f'bir+mas: mas.lambda chosen on validation data: {chosen:g}')
    # 5. the command line, through --plugin (this folder on the path)
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join(
        [os.path.dirname(os.path.abspath(__file__)),
         os.environ.get('PYTHONPATH', '')])}
    cmd = [sys.executable, '-m', 'jcl', 'run', '--plugin', 'mas',
           '--protocol', 'split-mnist', '--scenario', scenario, '--method',
           'mas+bir', '--seeds', str(len(seeds)), '--iters',
           str(cli_iters or iters), '--hidden', ','.join(map(str, HIDDEN)),
           '--out', out, '--overwrite']
    print('$', ' '.join(cmd[1:]))
    subprocess.run(cmd, check=True, env=env)
    return results, grid


if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--iters', type=int, default=2000)
    parser.add_argument('--scenario', default='class')
    args = parser.parse_args()
    main(iters=args.iters, scenario=args.scenario)
