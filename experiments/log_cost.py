"""What the metric logs cost a run: the host's time inside the log.

Runs a ``jcl run`` command in this process with every call of the
metric log (:class:`jcl.logs.GroupLog`: a chunk's curves, a task's end)
and the drawing of a generative model's samples timed, and prints those
seconds beside the run's. The log works on the host while the next
compiled chunk runs, so its time is an upper bound of what it adds to
the run::

    taskset -c 1 python experiments/log_cost.py -- run --protocol \\
        split-mnist --scenario class --method bir --iters 500 \\
        --log csv,tensorboard --out /tmp/bir-log
"""

import sys
import time

from jcl import cli
from jcl.logs import metric_log
from jcl.sweep import loop

spent = {'chunk': 0.0, 'end_task': 0.0, 'start_task': 0.0, 'samples': 0.0}
calls = dict.fromkeys(spent, 0)
each = {k: [] for k in spent}


def timed(name, inner):

    def wrapper(self, *args, **kw):
        t0 = time.perf_counter()
        try:
            return inner(self, *args, **kw)
        finally:
            each[name].append(time.perf_counter() - t0)
            spent[name] += each[name][-1]
            calls[name] += 1
    return wrapper


def main():
    argv = sys.argv[1:]
    argv = argv[1:] if argv[:1] == ['--'] else argv
    for name in ('chunk', 'end_task', 'start_task'):
        setattr(metric_log.GroupLog, name,
                timed(name, getattr(metric_log.GroupLog, name)))
    loop._samples = timed('samples', loop._samples)
    t0 = time.perf_counter()
    code = cli.main(argv)
    wall = time.perf_counter() - t0
    total = sum(spent.values())
    print('| log call | calls | seconds | the first call | the slowest '
          'other |\n|---|---|---|---|---|')
    for name in spent:
        got = each[name] or [0.0]
        print(f'| {name} | {calls[name]} | {spent[name]:.3f} | '
              f'{got[0]:.3f} | {max(got[1:], default=0.0):.3f} |')
    print(f'\nthe log: {total:.3f} s of a {wall:.1f} s run '
          f'({100 * total / wall:.2f}%)')
    return code


if __name__ == '__main__':
    sys.exit(main())
