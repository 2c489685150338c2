"""Progress of a long task, printed on the host between compiled chunks.

:func:`jcl.sweep.loop.train_in_chunks` runs a task as calls of one
compiled chunk of steps and calls a hook with the steps done after each
(the compiled programs hold no host callback, so JAX's persistent
compilation cache keeps them all). :class:`TaskProgress` is that hook for
the command line: after ``after`` seconds it prints a line per chunk.

>>> lines = []
>>> p = TaskProgress(lines.append, 'task 1/5', 100, t0=0.0, after=0.0)
>>> p(10); p(20); p(100)   # no line at the task's end
>>> lines[1].startswith('task 1/5  step 20/100')
True
"""

import time


class TaskProgress:
    """A step hook that prints the in-task progress line: steps done,
    elapsed, time left (from the rate since the first call, so
    compilation does not skew it), once ``after`` seconds have passed."""

    def __init__(self, progress, label, num_steps, t0, after):
        self.progress, self.label, self.n = progress, label, num_steps
        self.t0, self.after, self.first = t0, after, None
        self.last = 0

    def __call__(self, done, curves=None):
        del curves   # a progress line shows steps only
        if done <= self.last or done >= self.n:
            return
        self.last = done
        now = time.time()
        if self.first is None:
            self.first = (now, done)
        if now - self.t0 < self.after:
            return
        line = (f'{self.label}  step {done}/{self.n}  '
                f'{now - self.t0:.0f}s')
        t1, d1 = self.first
        if done > d1:
            left = (now - t1) / (done - d1) * (self.n - done)
            line += f', about {left:.0f}s left'
        self.progress(line)
