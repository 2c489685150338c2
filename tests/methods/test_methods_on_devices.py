"""The methods of the DER paper's table and the NMI code's FROMP and
generative classifier, split over 4 CPU devices (a subprocess: the
device count is fixed when JAX starts), 6 rows of different learning
rates padded to 8, against the same rows on one device: the same numbers
up to float32 rounding (a device's vmapped batch holds 2 rows instead of
6, and XLA may sum in another order)."""

import os
import subprocess
import sys

import numpy as np

SCRIPT = os.path.join(os.path.dirname(__file__), '..', 'scripts',
                      'devices_methods.py')
METHODS = ('der', 'er-ace', 'fdr', 'gdumb', 'gem', 'gss', 'hal', 'fromp',
           'gen-classifier')
TWO_IMAGES = 0.05   # of the ~40 synthetic test images per task
# FDR's distance is a norm that is 0 right after a task's end (the stored
# outputs are the network's): its gradient's direction there is rounding,
# amplified by 1/sqrt(1e-8); FROMP inverts nearly singular kernels. Their
# rows drift apart by up to 1e-2 (rows with other learning rates differ by
# about 0.5).
LOOSE = {'fdr': 3e-2, 'fromp': 3e-2}


def test_new_methods_split_over_devices_match_one_device(tmp_path):
    out = tmp_path / 'r.npz'
    env = {**os.environ,
           'XLA_FLAGS': '--xla_force_host_platform_device_count=4'}
    run = subprocess.run([sys.executable, SCRIPT, str(out), *METHODS],
                         env=env, capture_output=True, text=True,
                         timeout=1200)
    assert run.returncode == 0, run.stderr[-3000:]
    with np.load(out) as f:
        assert int(f['devices']) == 4
        for m in METHODS:
            one, mesh = f[f'{m}/one/R'], f[f'{m}/mesh/R']
            assert one.shape == (6, 5, 5), m
            assert np.abs(mesh - one).max() <= TWO_IMAGES, m
            p_one, p_mesh = f[f'{m}/one/params'], f[f'{m}/mesh/params']
            np.testing.assert_allclose(p_mesh, p_one, rtol=1e-3,
                                       atol=LOOSE.get(m, 1e-3), err_msg=m)
            # the rows are not one row copied (their learning rates differ)
            assert np.abs(p_one[0] - p_one[-1]).max() > 0.1, m
