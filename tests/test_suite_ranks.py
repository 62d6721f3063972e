"""The suite benchmark's table: ranks per dataset, ties shared, mean rank."""

import importlib.util
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _suite():
    spec = importlib.util.spec_from_file_location("suite", ROOT / "benchmarks" / "suite.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _record(variant, dataset, score):
    return {"variant": variant, "dataset": dataset, "val_weighted_f1": score}


def test_equal_means_share_their_average_rank_and_the_mean_rank_follows():
    records = [_record("a", "x", 0.9), _record("b", "x", 0.8), _record("c", "x", 0.8),
               _record("a", "y", 0.1), _record("a", "y", 0.3),   # mean 0.2
               _record("b", "y", 0.5), _record("c", "y", 0.4)]
    rows = {line.split(" | ")[0].lstrip("| "): line
            for line in _suite().summarize(records, ["x", "y"], ["a", "b", "c"]).splitlines()[2:]}
    # x: a first, b and c tied for 2nd/3rd -> 2.5 each; y: b 1, c 2, a 3.
    assert rows["a"] == "| a | 0.900 (1) | 0.200 (3) | 2.00 |"
    assert rows["b"] == "| b | 0.800 (2.5) | 0.500 (1) | 1.75 |"
    assert rows["c"] == "| c | 0.800 (2.5) | 0.400 (2) | 2.25 |"
