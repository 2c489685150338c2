"""jcl's safetensors reader against the format's own implementation: files
written by the ``safetensors`` package (a test dependency only) read back
by :func:`jcl.weights.statedict.load_state_dict`, every dtype jcl names,
scalars, empty tensors and metadata included."""

import ml_dtypes
import numpy as np
import pytest
from safetensors.numpy import save_file

from jcl.weights.statedict import load_state_dict

DTYPES = [np.float64, np.float32, np.float16, ml_dtypes.bfloat16,
          np.int64, np.int32, np.int16, np.int8, np.uint8, np.bool_,
          ml_dtypes.float8_e4m3fn, ml_dtypes.float8_e5m2]


@pytest.mark.parametrize('dtype', DTYPES, ids=lambda d: np.dtype(d).name)
def test_files_written_by_the_package_read_back_exactly(tmp_path, dtype):
    rng = np.random.default_rng(0)
    tensors = {
        'layer1.0.conv1.weight': rng.normal(size=(4, 3, 3, 3)),
        'scalar': np.asarray(rng.normal()),
        'empty': np.zeros((0, 5)),
        'fc.bias': rng.normal(size=(7,)) * 100,
    }
    tensors = {k: np.ascontiguousarray(v.astype(dtype))
               for k, v in tensors.items()}
    path = tmp_path / 'w.safetensors'
    save_file(tensors, str(path), metadata={'format': 'pt'})
    got = load_state_dict(path)
    assert sorted(got) == sorted(tensors)
    for k, v in tensors.items():
        assert got[k].dtype == v.dtype and got[k].shape == v.shape, k
        np.testing.assert_array_equal(got[k].view(np.uint8),
                                      v.view(np.uint8), err_msg=k)
