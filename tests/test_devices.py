"""Rows split over several devices give the accuracy matrices of one
device exactly: a sweep with 4 CPU devices (6 rows, padded to 8) against
the same sweep on one device, in a subprocess (the device count is fixed
when JAX starts). Parameters agree to float32 reassociation: a device's
vmapped batch holds 2 rows instead of 6, and XLA sums in another order."""

import os
import subprocess
import sys

import numpy as np
import pytest

SCRIPT = os.path.join(os.path.dirname(__file__), 'scripts', 'devices.py')


@pytest.mark.parametrize('order', ['fixed', 'shuffled'])
def test_four_devices_equal_one_device_bit_for_bit(tmp_path, order):
    out = tmp_path / 'r.npz'
    env = {**os.environ,
           'XLA_FLAGS': '--xla_force_host_platform_device_count=4'}
    run = subprocess.run([sys.executable, SCRIPT, str(out), order], env=env,
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    with np.load(out) as f:
        assert int(f['devices']) == 4
        keys = [k for k in f if k.endswith('/one/R')]
        assert len(keys) == 2
        for k in f:
            if '/one/' not in k:
                continue
            other = k.replace('/one/', '/mesh/')
            if k.endswith('/R'):  # the accuracies: bit for bit
                np.testing.assert_array_equal(f[k], f[other], err_msg=k)
            else:  # float32 reassociation: 2 rows per device, not 6
                np.testing.assert_allclose(f[k], f[other], rtol=1e-3,
                                           atol=1e-3, err_msg=k)
        assert f['gr/one/R'].shape == (6, 5, 5)
        # rows differ (their learning rates do): not one row copied
        assert not np.array_equal(f['si/one/R'][0], f['si/one/R'][-1])
