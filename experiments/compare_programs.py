"""Same methods, two commits: are the compiled training programs the same?

For every method of the command line, compiles one task's training
program of this checkout and of another commit (a git worktree beside
it) and compares XLA's optimised programs after normalising what does not
change the computation: source locations and metadata, the names of the
inputs (their pytree paths) and the numbering of instructions. Equal
programs take equal time, so this is the exact form of "the step time is
unchanged"; where a program differs, time it (bench_commits.py).

* split MNIST (Class-IL, Task-IL for XdG and separate networks, Domain-IL
  for BI-R's task gates): ``train_task``, 1 row, 100 steps;
* the offline sequence's backbone methods: the streamed ``train_chunk``,
  5 steps of a batch of 32.

Usage::

    python experiments/compare_programs.py --old 029756e --out runs/programs

Prints a Markdown table and writes ``programs.json`` into ``--out``.
"""

import argparse
import functools
import json
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MLP = ['none@class', 'ewc@class', 'online-ewc@class', 'si@class',
       'lwf@class', 'gr@class', 'gr-distill@class', 'rtf@class', 'bir@class',
       'er@class', 'agem@class', 'icarl@class', 'derpp@class', 'xdg@task',
       'separate@task', 'bir@domain']
SEQUENCE = ['clr', 'clr-full', 'sgd', 'sgd-ll', 'psp', 'supsup', 'eft',
            'separate']


def api():
    """This side's names (the layout before and after the rooms)."""
    try:
        from jcl.core import taskdata
        from jcl.core.records import Batch
        from jcl.methods import catalog as mc
        from jcl.methods.assemble import build_learner
        from jcl.sweep.rows import compile_run
        from jcl.tasks import catalog
        from jcl.training.learner import init_state
        from jcl.training.task import train_chunk
        return (catalog, mc.parse, mc.default_hparams, build_learner,
                taskdata, compile_run, init_state, train_chunk, Batch)
    except ImportError:
        from jcl.learner import init_state
        from jcl.train import train_chunk
        from jcl.types import Batch

        from jcl import catalog, recipes, registry, sweep
        from jcl import data as taskdata
        return (catalog, registry.parse_method, registry.default_hparams,
                recipes.build_learner, taskdata, sweep.compile_run,
                init_state, train_chunk, Batch)


def dump(folder):
    """Writes the optimised program of every method into ``folder``."""
    import jax
    import jax.numpy as jnp
    (catalog, parse, defaults, build_learner, taskdata, compile_run,
     init_state, train_chunk, Batch) = api()
    for spec in MLP:
        method, scenario = spec.split('@')
        proto = catalog.load_protocol('split-mnist', scenario)
        parts = parse(method)
        hp = defaults(parts, lr=1e-3, protocol='split-mnist',
                      scenario=scenario)
        learner = build_learner(proto, catalog.protocol_spec('split-mnist'),
                                parts, hidden=(400, 400), iters=100,
                                batch=128, static_max=hp)
        hpa = {k: jnp.full((1,), v, jnp.float32) for k, v in hp.items()}
        init, task, _ = compile_run(learner)
        state = init(hpa, jax.random.PRNGKey(0)[None])
        text = task.lower(state, hpa, taskdata.to_device(proto.train),
                          taskdata.to_device(proto.test),
                          jnp.asarray(proto.active), jnp.int32(0)
                          ).compile().as_text()
        with open(os.path.join(folder, f'{spec}.hlo'), 'w') as f:
            f.write(text)
    proto = catalog.load_protocol('offline-sequence', 'task', num_tasks=2)
    for method in SEQUENCE:
        parts = parse(method)
        hp = defaults(parts, lr=1e-3, protocol='offline-sequence',
                      scenario='task', batch=32)
        learner = build_learner(
            proto, catalog.protocol_spec('offline-sequence'), parts,
            hidden=(), iters=1, batch=32, epochs=1, static_max=hp)
        hpj = {k: jnp.float32(v) for k, v in hp.items()}
        state = init_state(learner, hpj, jax.random.PRNGKey(0))
        k, b = 5, 32
        raw = Batch(jnp.zeros((k, b, 32, 32, 3), jnp.uint8),
                    jnp.zeros((k, b), jnp.int32), jnp.zeros((k, b), jnp.int32))
        text = jax.jit(functools.partial(train_chunk, learner)).lower(
            state, hpj, raw, jax.random.split(jax.random.PRNGKey(1), k),
            jnp.ones(k, bool), jnp.ones(k), jnp.asarray(proto.active),
            jnp.int32(0)).compile().as_text()
        with open(os.path.join(folder, f'{method}@sequence.hlo'), 'w') as f:
            f.write(text)


def normalised(text):
    """The program without locations, input names and numbering."""
    keep, skip = [], False
    for line in text.splitlines():
        if line.startswith('FileNames'):
            skip = True
        if line.startswith(('%', 'ENTRY')):
            skip = False
        if not skip:
            keep.append(line)
    text = '\n'.join(keep)
    text = re.sub(r', metadata=\{[^}]*\}', '', text)
    text = re.sub(r', stack_frame_id=\d+', '', text)
    entry = text[text.index('\nENTRY'):]
    inputs = dict(re.findall(r'%([\w.\-]+) = [^\n]*? parameter\((\d+)\)',
                             entry))
    for name in sorted(inputs, key=len, reverse=True):
        text = re.sub(r'(?<![\w.])' + re.escape(name) + r'(?![\w])',
                      f'input{inputs[name]}', text)
    seen = {}   # every numbered name by its first appearance

    def rename(m):
        base = re.sub(r'_\d+$', '', m.group(1))   # region_53 -> region
        return seen.setdefault(m.group(0), f'{base}#{len(seen)}')

    return re.sub(r'\b([A-Za-z_][\w\-]*)\.\d+\b', rename, text)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--old', help='the commit to compare with')
    p.add_argument('--out', help='folder for both sides\' programs')
    p.add_argument('--dump', help=argparse.SUPPRESS)   # one side, here
    args = p.parse_args()
    if args.dump:
        return dump(args.dump)
    old_src = os.path.join(tempfile.gettempdir(), f'jcl-{args.old}')
    if not os.path.exists(old_src):
        subprocess.run(['git', '-C', ROOT, 'worktree', 'add', '--detach',
                        old_src, args.old], check=True, capture_output=True)
    sides = {'old': old_src, 'new': ROOT}
    for side, source in sides.items():
        folder = os.path.join(args.out, side)
        os.makedirs(folder, exist_ok=True)
        subprocess.run([sys.executable, os.path.abspath(__file__), '--dump',
                        os.path.abspath(folder)], check=True, cwd=source,
                       env={**os.environ, 'PYTHONPATH': source,
                            'JCL_COMPILE_CACHE': '0'})
    report = {}
    print('| method | program of this checkout against ' f'{args.old} |')
    print('|---|---|')
    for name in sorted(os.listdir(os.path.join(args.out, 'old'))):
        text = {side: normalised(open(os.path.join(args.out, side,
                                                   name)).read())
                for side in sides}
        same = text['old'] == text['new']
        report[name[:-4]] = same
        print(f'| {name[:-4]} | {"identical" if same else "differs"} |')
    with open(os.path.join(args.out, 'programs.json'), 'w') as f:
        json.dump(report, f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
