"""Many rows at once: seeds and grid points as a ``vmap`` axis, over
devices and processes, through every task.

* :func:`jcl.sweep.run.run_sweep`: a learner over grid points x seeds,
  the validation split and the chosen point (what ``jcl run`` does for one
  method);
* :mod:`jcl.sweep.loop` (:func:`run_seeds`) and :mod:`jcl.sweep.streamed`:
  the loop over tasks of one group of rows, fused on the device or
  streamed from the host, with checkpoints;
* :mod:`jcl.sweep.rows`: the rows' compiled, sharded programs;
  :mod:`jcl.sweep.distributed`: several processes;
  :mod:`jcl.sweep.grid`: grid points and the choice among them.
"""
