import numpy as np

from jcl.analysis import evaluate

R = np.array([[0.9, 0.1, 0.0],
              [0.5, 0.8, 0.2],
              [0.4, 0.6, 0.7]])


def test_average_accuracy_over_seen_tasks():
    np.testing.assert_allclose(evaluate.average_accuracy(R),
                               [0.9, 0.65, (0.4 + 0.6 + 0.7) / 3])
    stacked = evaluate.average_accuracy(np.stack([R, R]))
    assert stacked.shape == (2, 3)


def test_backward_transfer_and_forgetting():
    np.testing.assert_allclose(evaluate.backward_transfer(R),
                               ((0.4 - 0.9) + (0.6 - 0.8)) / 2)
    np.testing.assert_allclose(evaluate.forgetting(R),
                               ((0.9 - 0.4) + (0.8 - 0.6)) / 2)


def test_forward_transfer_against_untrained_model():
    R0 = np.full((3, 3), 0.05)
    np.testing.assert_allclose(evaluate.forward_transfer(R, R0),
                               ((0.1 - 0.05) + (0.2 - 0.05)) / 2)


def test_mean_sem():
    m, s = evaluate.mean_sem(np.array([1.0, 2.0, 3.0, 4.0]))
    assert m == 2.5
    np.testing.assert_allclose(s, np.std([1, 2, 3, 4], ddof=1) / 2)
