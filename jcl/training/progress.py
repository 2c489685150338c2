"""Progress from inside a compiled task.

The compiled scan of a task calls :func:`maybe_heartbeat` at every step;
after every tenth of the task's steps it calls the host hook installed
with :class:`step_hook` through ``jax.debug.callback`` (under
``lax.cond``, so the host is reached ten times per task, once for all
vmapped seeds). No hook is installed by default, so library users who
call the training functions directly see nothing.

>>> seen = []
>>> with step_hook(seen.append):
...     _heartbeat(3)
>>> seen
[3]
"""

import time

import jax

_HOOK = [None]


def _heartbeat(step):
    hook = _HOOK[0]
    if hook is not None:
        hook(int(step))


class step_hook:
    """Context manager: ``fn(steps_done)`` is called about ten times per
    task from inside the compiled loop (on the host, while it runs)."""

    def __init__(self, fn):
        self.fn, self.prev = fn, None

    def __enter__(self):
        self.prev, _HOOK[0] = _HOOK[0], self.fn
        return self

    def __exit__(self, *exc):
        _HOOK[0] = self.prev
        return False


def maybe_heartbeat(i, num_steps):
    """Calls the host hook after every tenth of the task's steps (not after
    the last one: the task's own progress line follows)."""
    every = max(1, num_steps // 10)
    done = i + 1
    jax.lax.cond((done % every == 0) & (done < num_steps),
                 lambda: jax.debug.callback(_heartbeat, done),
                 lambda: None)


class TaskProgress:
    """A step hook that prints the in-task progress line: steps done,
    elapsed, time left (from the rate since the first heartbeat, so
    compilation does not skew it), once ``after`` seconds have passed."""

    def __init__(self, progress, label, num_steps, t0, after):
        self.progress, self.label, self.n = progress, label, num_steps
        self.t0, self.after, self.first = t0, after, None
        self.last = 0

    def __call__(self, done):
        if done <= self.last:   # the same tick from another device's rows
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
