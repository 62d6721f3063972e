"""An experiment's plan: methods x label budgets x trials, and each trial's seeds.

`Experiment` is the plan (`experiment.json`), `TrialSpec` one cell of it and
`trial_dir` its run directory. Paired design: trial t of every method gets the
same split seed, hence the same test split and the same labeled set. Trial t's
seeds are drawn from child t of `numpy.random.SeedSequence(base_seed).spawn(trials)`:
its first grandchild seeds the splits, its second the training (the same for
every method). See `ssnas_tf.workflow.experiment` for the experiment as a whole.
"""

import dataclasses
import json
import os
from typing import Tuple

import numpy as np

from ssnas_tf.atomic import atomic_write_text
from ssnas_tf.errors import ConfigError
from ssnas_tf.workflow.config import METHODS, RunConfig

PROTOCOLS = ("exp1", "exp2")
PAPER_FRACTIONS = (0.01, 0.02, 0.05, 0.1, 0.3, 1.0)


def trial_seeds(base_seed, trials):
    """(split_seed, train_seed) per trial, from SeedSequence(base_seed).spawn(trials).

    Args:
        base_seed: the experiment's seed (`--seed`).
        trials: the number of trials.

    Returns:
        list of (split_seed, train_seed) pairs of ints in [0, 2**31).
    """
    seeds = []
    for child in np.random.SeedSequence(base_seed).spawn(trials):
        split, train = (int(s.generate_state(1)[0] >> 1) for s in child.spawn(2))
        seeds.append((split, train))
    return seeds


@dataclasses.dataclass(frozen=True)
class TrialSpec:
    """One cell of the plan: a method at a label fraction, trial number t."""

    method: str
    fraction: float  # K labeled samples per class when `per_class`
    trial: int
    per_class: bool = False

    @property
    def budget(self):
        """The label budget as a directory name: r<fraction> or k<K>."""
        return f"{'k' if self.per_class else 'r'}{self.fraction:g}"

    @property
    def key(self):
        return f"{self.method}/{self.budget}/t{self.trial}"


@dataclasses.dataclass(frozen=True)
class Experiment:
    """The plan of an experiment.

    Args:
        base: the RunConfig every trial starts from; its `seed` is the base
            seed of the seed tree, its method and label fraction are replaced.
        methods: e.g. ("ssl", "supervised").
        fractions: label fractions r, each in (0, 1]; exp2 needs (1.0,).
        trials: trials per (method, fraction).
        protocol: "exp1" or "exp2". Defaults to "exp1".
        per_class: `fractions` are numbers K of labeled samples per class
            (`--labels-per-class`), not fractions. Defaults to False.
    """

    base: RunConfig
    methods: Tuple[str, ...]
    fractions: Tuple[float, ...]
    trials: int
    protocol: str = "exp1"
    per_class: bool = False

    def __post_init__(self):
        object.__setattr__(self, "methods", tuple(self.methods))
        if self.per_class:
            self._check_per_class()
        object.__setattr__(self, "fractions", tuple(float(f) for f in self.fractions))
        if self.protocol not in PROTOCOLS:
            raise ConfigError(f"--protocol must be one of {PROTOCOLS}, got '{self.protocol}'")
        bad = [m for m in self.methods if m not in METHODS]
        if not self.methods or bad or len(set(self.methods)) != len(self.methods):
            raise ConfigError(f"--methods: need distinct names from {METHODS}, "
                              f"got {list(self.methods)}")
        bad = [f for f in self.fractions if not 0 < f <= 1 and not self.per_class]
        if not self.fractions or bad or len(set(self.fractions)) != len(self.fractions):
            raise ConfigError(f"--fractions: need distinct values in (0, 1], "
                              f"got {list(self.fractions)}")
        if self.protocol == "exp2" and self.fractions != (1.0,):
            raise ConfigError(f"--protocol exp2 uses every label (--fractions 1.0), "
                              f"got {list(self.fractions)}")
        if self.trials < 1:
            raise ConfigError(f"--trials must be >= 1, got {self.trials}")

    def _check_per_class(self):
        bad = [k for k in self.fractions if not (float(k).is_integer() and k >= 1)]
        if bad or not self.fractions or len(set(self.fractions)) != len(self.fractions):
            raise ConfigError(f"--labels-per-class: need distinct whole numbers >= 1, "
                              f"got {list(self.fractions)}")
        if self.protocol == "exp2":
            raise ConfigError("--protocol exp2 uses every label: --labels-per-class "
                              "does not apply")

    def plan(self):
        """Every TrialSpec, trial-major so that early trials pair up first."""
        return [TrialSpec(m, f, t, self.per_class) for t in range(self.trials)
                for f in self.fractions for m in self.methods]

    def config_for(self, spec):
        """The RunConfig of one trial (see the module docstring for the seeds)."""
        split_seed, train_seed = trial_seeds(self.base.seed, self.trials)[spec.trial]
        budget = (dict(labels_per_class=int(spec.fraction)) if spec.per_class
                  else dict(label_fraction=spec.fraction, labels_per_class=None))
        changes = dict(method=spec.method, seed=train_seed, split_seed=split_seed,
                       **budget)
        if self.protocol == "exp2" and spec.method == "ssl":
            changes["contrastive_pretraining"] = False
        return self.base.replace(**changes)

    def to_dict(self):
        budget = "labels_per_class" if self.per_class else "fractions"
        return {"protocol": self.protocol, "methods": list(self.methods),
                budget: list(self.fractions), "trials": self.trials,
                "base_config": json.loads(self.base.to_json())}


def trial_dir(root, spec):
    """DIR/<method>/r<fraction>/t<trial> (k<K> with labels per class)."""
    return os.path.join(root, spec.method, spec.budget, f"t{spec.trial}")


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError):
        return None


def differing_keys(a, b):
    """The keys, sorted, whose values differ between two JSON objects."""
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def write_plan(root, experiment):
    os.makedirs(root, exist_ok=True)
    atomic_write_text(os.path.join(root, "experiment.json"),
                      json.dumps(experiment.to_dict(), indent=2))


def plan_differences(planned, stored):
    """Names of the plan fields (base_config.<field> for run settings) that differ."""
    names = [k for k in differing_keys(planned, stored) if k != "base_config"]
    names += [f"base_config.{k}" for k in
              differing_keys(planned["base_config"], stored.get("base_config", {}))]
    return sorted(names)


__all__ = ["Experiment", "PAPER_FRACTIONS", "PROTOCOLS", "TrialSpec", "differing_keys",
           "plan_differences", "read_json", "trial_dir", "trial_seeds", "write_plan"]
