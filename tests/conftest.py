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


# Modules whose tests take longest (`pytest --durations`, 2 cores), longest
# first. With `--dist loadscope --no-loadscope-reorder` xdist hands modules to
# the workers in collection order, so starting the long ones first keeps one
# of them from being the last thing left running on one worker while the
# other worker idles. Order only: every test still runs.
LONGEST_FIRST = (
    "test_randomnet.py", "test_doc_examples.py", "test_notebooks_uses.py",
    "test_pipeline.py", "test_notebook_baselines.py", "test_slow_experiment.py",
    "test_resume.py", "test_notebook.py", "test_slow_multi_worker.py",
    "test_backbone_resume.py", "test_slow_default_run.py", "test_cli_errors.py",
    "test_slow_tabular_run.py", "test_distributed_tuning.py", "test_tensorboard.py",
    "test_quiet.py", "test_in_memory.py", "test_surrogate.py", "test_export.py",
    "test_slow_reproducible_run.py",
)


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable
