"""What a sweep split over devices guarantees, tested with 4 CPU devices
in a subprocess (the device count is fixed when JAX starts), 6 rows
padded to 8:

* the same sweep on the same devices again: every number bit for bit;
* against one device: the same computation up to float32 rounding (a
  device's vmapped batch holds 2 rows instead of 6, and XLA may sum in
  another order), so parameters agree to about 1e-3 and an accuracy may
  differ by a test example or two, never more.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

SCRIPT = os.path.join(os.path.dirname(__file__), 'scripts', 'devices.py')
# an accuracy on the synthetic data's ~40 test images per task: two images
TWO_IMAGES = 0.05


@pytest.mark.parametrize('order', ['fixed', 'shuffled'])
def test_devices_repeat_bit_for_bit_and_match_one_device_to_rounding(
        tmp_path, order):
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
            if '/mesh/' not in k:
                continue
            # the same devices again: bit for bit
            np.testing.assert_array_equal(f[k], f[k.replace('/mesh/',
                                                            '/again/')])
            one = f[k.replace('/mesh/', '/one/')]
            if k.endswith('/R'):   # one device: a test image or two
                assert np.abs(f[k] - one).max() <= TWO_IMAGES, k
                assert np.abs(f[k] - one).mean() <= TWO_IMAGES / 10, k
            else:
                np.testing.assert_allclose(f[k], one, rtol=1e-3, atol=1e-3,
                                           err_msg=k)
        assert f['gr/one/R'].shape == (6, 5, 5)
        # rows differ (their learning rates do): not one row copied
        assert not np.array_equal(f['si/one/R'][0], f['si/one/R'][-1])
