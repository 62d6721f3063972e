"""Shared test fixtures: a fixed seed for every test, quiet TensorFlow logs."""

import os

# Before TensorFlow is first imported (test modules import it after conftest).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


def count_params(variables):
    """Total number of scalars held by a list of variables."""
    return int(sum(np.prod(v.shape, dtype=np.int64) for v in variables))


@pytest.fixture(autouse=True)
def seed(monkeypatch):
    """Seeds Python, NumPy and the backend; keeps TensorFlow's C++ logs quiet."""
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    keras.utils.set_random_seed(0)
    yield 0


@pytest.fixture(name="count_params")
def count_params_fixture():
    """`count_params` as a fixture, so tests need not import conftest."""
    return count_params
