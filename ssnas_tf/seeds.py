"""A tree of named seeds derived from one run seed with `numpy.random.SeedSequence`.

Every random source of a run (splits, weight initialisation, tf.data shuffles,
augmentation) gets its own seed from a named path below the run seed, so no
two sources share a seed and none is `seed + k` of another: with `seed + k`,
run seed 0's "step 1" seed equals run seed 1's "step 0" seed, and two runs
that a user thinks independent share their random streams.

This module imports NumPy only (no TensorFlow), so the CLI can use it before
TensorFlow is configured.
"""

import hashlib
from typing import Dict, Optional, Tuple

import numpy as np

from ssnas_tf.errors import ConfigError

# Seeds are drawn as 32-bit words: the widest that `np.random.seed` (called by
# `keras.utils.set_random_seed`) accepts.
_SEED_BITS = 32


def _name_key(name: str) -> int:
    """A stable 32-bit integer for a child name (Python's hash() is salted)."""
    if not isinstance(name, str) or not name or "/" in name:
        raise ValueError(f"a seed name must be a non-empty string without '/', "
                         f"got {name!r}")
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:4], "little")


def derive_seed(seed: int, *names: str) -> int:
    """The seed at path `names` below `seed` (a 32-bit non-negative int).

    Args:
        seed: the root seed, a non-negative integer.
        *names: the path of child names, e.g. ("search", "init").

    Returns:
        An int in [0, 2**32), independent of the seeds at other paths and of
        the same path under another root seed.

    Example:
    >>> derive_seed(0, "search", "init") != derive_seed(1, "search", "init")
    True
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    sequence = np.random.SeedSequence(int(seed), spawn_key=tuple(map(_name_key, names)))
    return int(sequence.generate_state(1, dtype=np.uint32)[0])


class SeedTree:
    """Named, independent seeds below one run seed.

    `tree.child("search").seed("init")` is the seed of the search step's
    weight initialisation. Every seed handed out is remembered (by its
    slash-joined path) in `used`, shared by the whole tree, so a run can
    record exactly the seeds it drew.

    Args:
        seed: the run seed, a non-negative integer.

    Example:
    >>> tree = SeedTree(0)
    >>> search = tree.child("search")
    >>> search.seed("init") != search.seed("train_data")
    True
    >>> sorted(tree.used)
    ['search/init', 'search/train_data']

    Reference: NumPy's `SeedSequence` (the spawn-key mechanism of
    `numpy.random.SeedSequence.spawn`, with names hashed to keys).
    """

    def __init__(self, seed: int, _path: Tuple[str, ...] = (),
                 _used: Optional[Dict[str, int]] = None):
        derive_seed(seed)  # validates
        self.root_seed = int(seed)
        self.path = _path
        self.used: Dict[str, int] = {} if _used is None else _used

    def child(self, name: str) -> "SeedTree":
        """The subtree at `name`."""
        _name_key(name)
        return SeedTree(self.root_seed, self.path + (name,), self.used)

    def seed(self, name: str) -> int:
        """The seed named `name` in this subtree; recorded in `used`."""
        value = derive_seed(self.root_seed, *self.path, name)
        self.used["/".join(self.path + (name,))] = value
        return value

    def to_dict(self) -> dict:
        """{"root": run seed, "derivation": how, "seeds": {path: seed}} (JSON-able)."""
        return {"root": self.root_seed,
                "derivation": "numpy.random.SeedSequence(root, spawn_key=sha256(name)"
                              "[:4] per path element).generate_state(1, uint32)",
                "seeds": dict(sorted(self.used.items()))}


__all__ = ["SeedTree", "derive_seed"]
