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


# Modules whose tests take longest in the full run (`pytest -m "slow or not
# slow" --durations`, 2 cores), longest first. xdist (`--dist loadscope`) hands
# whole modules to the workers in queue order; starting the long ones first
# keeps one of them from being the last thing left running on one worker while
# the other idles. The fast tier keeps xdist's own order (most tests first),
# measured faster there. Order only: every test still runs.
LONGEST_FIRST = (
    "test_pipeline.py", "test_slow_experiment.py", "test_doc_examples.py",
    "test_notebooks_uses.py", "test_notebook_baselines.py", "test_notebook.py",
    "test_resume.py", "test_slow_default_run.py", "test_randomnet.py",
    "test_slow_reproducible_run.py", "test_slow_tabular_run.py", "test_export.py",
    "test_in_memory.py", "test_backbone_resume.py", "test_distributed_tuning.py",
    "test_slow_multi_worker.py", "test_presets.py", "test_tensorboard.py",
)


def _runs_slow_tests(config):
    return "slow" in (config.option.markexpr or "").replace("not slow", "")


def pytest_configure(config):
    if hasattr(config.option, "loadscopereorder"):  # pytest-xdist
        config.option.loadscopereorder = not _runs_slow_tests(config)


def pytest_collection_modifyitems(config, items):
    if _runs_slow_tests(config):
        rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
        items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable
