"""Genotypes: the discrete architecture derived from a search (DARTS genotypes.py).

A genotype is a small frozen dataclass stored as JSON, never pickled (the BM-NAS
reference pickles it). Node indices follow the search network: 0..K-1 are the
backbone features named in `inputs`, K..K+n-1 the cells.

Derivation (`derive_genotype`):

* Upper level, paper eq. 3: Cell_k takes the pair (i, j), i < j < K + k, that
  maximises w_ik * w_jk, w being the softmaxed Identity weight of the edge (the
  only non-Zero edge op). Cells must not share the same predecessors: a pair
  already taken by an earlier cell is not a candidate. Earlier cells are
  candidates (the paper's rule); the reference code's "v3" parser instead
  restricts candidates to backbone features and demands a feature no earlier
  cell used.
* Lower level: each inner step keeps its two strongest predecessors by Identity
  weight (pairs may repeat across steps), strongest first, and the primitive
  argmax over gamma (paper eq. 11) with Zero left out: a Zero step would make the
  cell a no-op, so, as DARTS does for its edges, Zero is never derived.
* The outputs are the last `multiplier` cells (inner: the last
  `node_multiplier` steps), as in the reference.
"""

import dataclasses
import json
from typing import Tuple

import numpy as np

from ssnas_tf.nas.operations import PRIMITIVES
from ssnas_tf.errors import GenotypeError

EDGE_OP = "identity"


@dataclasses.dataclass(frozen=True)
class StepGenotype:
    """The fixed inner structure of one cell.

    Args:
        inner_edges: (op, index) pairs, two per inner step, indexing
            T = [x, y, Step_1, ...].
        inner_steps: one primitive name per inner step.
        inner_concat: indices into T of the nodes that form the cell output.
    """

    inner_edges: Tuple[Tuple[str, int], ...]
    inner_steps: Tuple[str, ...]
    inner_concat: Tuple[int, ...]

    @property
    def live_steps(self):
        """Indices (0-based) of the inner steps whose output reaches `inner_concat`.

        As with cells, a step outside `inner_concat` that no later live step
        reads is dead: the derived cell does not build it.
        """
        live = {i - 2 for i in self.inner_concat if i >= 2}
        for m in range(len(self.inner_steps) - 1, -1, -1):
            if m in live:
                live.update(i - 2 for _, i in self.inner_edges[2 * m:2 * m + 2] if i >= 2)
        return tuple(sorted(live))


@dataclasses.dataclass(frozen=True)
class Genotype:
    """A derived BM-NAS architecture.

    Args:
        inputs: names of the K backbone features, in node order.
        edges: (op, index) pairs, two per cell: cell k's inputs h1, h2.
        steps: one `StepGenotype` per cell.
        concat: node indices of the cells whose outputs are concatenated.

    Example:
    >>> g = Genotype(inputs=("a", "b"), edges=(("identity", 0), ("identity", 1)),
    ...              steps=(StepGenotype((("identity", 0), ("identity", 1)),
    ...                                  ("sum",), (2,)),),
    ...              concat=(2,))
    >>> Genotype.from_json(g.to_json()) == g
    True
    """

    inputs: Tuple[str, ...]
    edges: Tuple[Tuple[str, int], ...]
    steps: Tuple[StepGenotype, ...]
    concat: Tuple[int, ...]

    def __post_init__(self):
        self.validate()

    @property
    def num_cells(self):
        return len(self.steps)

    @property
    def live_cells(self):
        """Indices (0-based) of the cells whose output reaches `concat`.

        A cell outside `concat` that no later live cell reads is dead: the
        derived network does not build it (the reference builds and trains it
        although nothing reads it).
        """
        k = len(self.inputs)
        live = {i - k for i in self.concat}
        for cell in range(self.num_cells - 1, -1, -1):
            if cell in live:
                live.update(i - k for i in self.cell_inputs(cell) if i >= k)
        return tuple(sorted(live))

    @property
    def used_inputs(self):
        """Names of the backbone features the live cells read, in node order."""
        used = {i for c in self.live_cells for i in self.cell_inputs(c)}
        return tuple(n for i, n in enumerate(self.inputs) if i in used)

    def cell_inputs(self, k):
        """Node indices (h1, h2) of cell k."""
        return self.edges[2 * k][1], self.edges[2 * k + 1][1]

    def validate(self):
        """Raises GenotypeError naming the first malformed field."""
        k = len(self.inputs)
        if k < 1 or not all(isinstance(n, str) and n for n in self.inputs):
            raise GenotypeError(f"inputs: need non-empty feature names, got {self.inputs!r}")
        if len(set(self.inputs)) != k:
            raise GenotypeError(f"inputs: duplicate names in {list(self.inputs)}")
        if not self.steps:
            raise GenotypeError("steps: a genotype needs at least one cell")
        if len(self.edges) != 2 * len(self.steps):
            raise GenotypeError(
                f"edges: need 2 per cell ({2 * len(self.steps)} for "
                f"{len(self.steps)} cells), got {len(self.edges)}")
        for e, (op, index) in enumerate(self.edges):
            _check_edge(f"edges[{e}]", op, index, k + e // 2)
        for c, step in enumerate(self.steps):
            field = f"steps[{c}]"
            m = len(step.inner_steps)
            if m < 1:
                raise GenotypeError(f"{field}.inner_steps: need at least one step")
            if len(step.inner_edges) != 2 * m:
                raise GenotypeError(
                    f"{field}.inner_edges: need 2 per inner step ({2 * m}), "
                    f"got {len(step.inner_edges)}")
            for e, (op, index) in enumerate(step.inner_edges):
                _check_edge(f"{field}.inner_edges[{e}]", op, index, 2 + e // 2)
            for s, name in enumerate(step.inner_steps):
                if name not in PRIMITIVES:
                    raise GenotypeError(
                        f"{field}.inner_steps[{s}]: unknown primitive '{name}'; "
                        f"known: {', '.join(PRIMITIVES)}")
            _check_concat(f"{field}.inner_concat", step.inner_concat, 2, 2 + m)
        _check_concat("concat", self.concat, k, k + len(self.steps))

    def to_dict(self):
        return {
            "inputs": list(self.inputs),
            "edges": [list(e) for e in self.edges],
            "steps": [{"inner_edges": [list(e) for e in s.inner_edges],
                       "inner_steps": list(s.inner_steps),
                       "inner_concat": list(s.inner_concat)} for s in self.steps],
            "concat": list(self.concat),
        }

    def to_json(self, indent=2):
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data):
        """Builds and validates a genotype from `to_dict` output."""
        if not isinstance(data, dict):
            raise GenotypeError(f"genotype: expected a JSON object, got {type(data).__name__}")
        for key in ("inputs", "edges", "steps", "concat"):
            if key not in data:
                raise GenotypeError(f"{key}: missing field")
        try:
            steps = tuple(
                StepGenotype(
                    inner_edges=_edge_tuple(s["inner_edges"], f"steps[{c}].inner_edges"),
                    inner_steps=tuple(s["inner_steps"]),
                    inner_concat=tuple(_int(i, f"steps[{c}].inner_concat")
                                       for i in _as_list(s["inner_concat"],
                                                         f"steps[{c}].inner_concat")))
                for c, s in enumerate(_as_list(data["steps"], "steps")))
        except (KeyError, TypeError) as err:
            raise GenotypeError(f"steps: malformed step entry ({err!r})") from None
        return cls(inputs=tuple(_as_list(data["inputs"], "inputs")),
                   edges=_edge_tuple(data["edges"], "edges"),
                   steps=steps,
                   concat=tuple(_int(i, "concat") for i in _as_list(data["concat"], "concat")))

    @classmethod
    def from_json(cls, text):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise GenotypeError(f"genotype: malformed JSON ({err})") from None
        return cls.from_dict(data)

    def save(self, path):
        """Writes the genotype's JSON to `path` atomically."""
        from ssnas_tf.atomic import atomic_write_text
        atomic_write_text(path, self.to_json() + "\n")

    @classmethod
    def load(cls, path):
        """Reads a genotype file; errors name the file and the field."""
        try:
            with open(path) as f:
                return cls.from_json(f.read())
        except GenotypeError as err:
            raise GenotypeError(f"{path}: {err}") from None
        except OSError as err:
            raise GenotypeError(f"{path}: cannot read genotype ({err.strerror})") from None


def _as_list(value, field):
    if not isinstance(value, (list, tuple)):
        raise GenotypeError(f"{field}: expected a list, got {type(value).__name__}")
    return value


def _int(value, field):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise GenotypeError(f"{field}: expected an integer index, got {value!r}")
    return int(value)


def _edge_tuple(edges, field):
    out = []
    for e, edge in enumerate(_as_list(edges, field)):
        if not isinstance(edge, (list, tuple)) or len(edge) != 2:
            raise GenotypeError(f"{field}[{e}]: expected [op, index], got {edge!r}")
        out.append((edge[0], _int(edge[1], f"{field}[{e}]")))
    return tuple(out)


def _check_edge(field, op, index, limit):
    if op != EDGE_OP:
        raise GenotypeError(f"{field}: unknown edge op '{op}'; expected '{EDGE_OP}'")
    _int(index, field)
    if not 0 <= index < limit:
        raise GenotypeError(
            f"{field}: input index {index} out of range [0, {limit})")


def _check_concat(field, concat, low, high):
    if not concat:
        raise GenotypeError(f"{field}: empty")
    for i in concat:
        _int(i, field)
        if not low <= i < high:
            raise GenotypeError(f"{field}: index {i} out of range [{low}, {high})")
    if len(set(concat)) != len(concat):
        raise GenotypeError(f"{field}: repeated index in {list(concat)}")
