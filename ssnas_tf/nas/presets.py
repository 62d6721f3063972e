"""Fixed fusion baselines: named genotypes for a given list of backbone features.

The BM-NAS ablations (Tables 6 and 7; `docs/fidelity.md`) compare the searched
fusion network with hand-designed ones built from the same primitives. Each
preset here is an ordinary `Genotype` over the run's backbone features, so it
trains, evaluates, draws and exports exactly like a searched one.

Features are grouped into modalities by their name: the small backbones name
their taps `{modality}_{i}` (shallow to deep), so the group is the name up to
its last underscore and the last feature of a group is its deepest tap. Pass
`modalities` to group differently named features.

| preset      | feature selection                               | inside each cell                                   |
|-------------|-------------------------------------------------|----------------------------------------------------|
| `late`      | last feature of each modality, paired up; the pair cells are concatenated | ConcatFC (concatenate, then FC) |
| `sum`       | chain: cell 1 fuses the first two modalities' last features, cell k the previous cell and the next modality | Sum (DARTS) |
| `concat_fc` | the same chain (MFAS-like sequential fusion)    | ConcatFC (MFAS)                                     |
| `mha`       | the same chain                                  | two Attention steps on (x, y), concatenated (Fig. 2d) |
| `aoa`       | the same chain                                  | Attention(x, y), then LinearGLU gating it by x (Fig. 2c) |
| `random`    | each cell's two inputs drawn at random from the features and earlier cells (seeded) | ConcatFC |

Example:
>>> g = preset_genotype("aoa", ["a_1", "a_2", "b_1", "b_2"])
>>> g.cell_inputs(0)  # the last feature of each modality
(1, 3)

Reference: Yin, Huang & Zhang, "BM-NAS: Bilevel Multimodal Neural
Architecture Search", AAAI 2022, Fig. 2 and Tables 6-7.
"""

import itertools

import numpy as np

from ssnas_tf.nas.genotypes import EDGE_OP, Genotype, GenotypeError, StepGenotype

PREFIX = "preset:"


def _edges(*indices):
    return tuple((EDGE_OP, int(i)) for i in indices)


# Cell insides, in the inner-node indexing T = [x, y, Step_1, ...].
CELL_INSIDES = {
    "sum": StepGenotype(_edges(0, 1), ("sum",), (2,)),
    "concat_fc": StepGenotype(_edges(0, 1), ("concat_fc",), (2,)),
    # Fig. 2d: two heads over the same pair, outputs concatenated.
    "mha": StepGenotype(_edges(0, 1, 0, 1), ("attention", "attention"), (2, 3)),
    # Fig. 2c: attention, then a GLU gating its output with the query x.
    "aoa": StepGenotype(_edges(0, 1, 2, 0), ("attention", "linear_glu"), (3,)),
}

PRESETS = ("late", "sum", "concat_fc", "mha", "aoa", "random")


def modality_groups(feature_names, modalities=None):
    """Feature indices per modality, in first-seen order.

    Args:
        feature_names: the backbone feature names, in node order.
        modalities: optional feature name -> modality name. Defaults to None
            (the name up to its last underscore, "fou_2" -> "fou").

    Returns:
        A list of lists of indices into `feature_names`.
    """
    groups = {}
    for i, name in enumerate(feature_names):
        if modalities is not None:
            if name not in modalities:
                raise GenotypeError(f"inputs: feature '{name}' has no modality in "
                                    f"the given mapping")
            key = modalities[name]
        else:
            key = name.rsplit("_", 1)[0] if "_" in name else name
        groups.setdefault(key, []).append(i)
    return list(groups.values())


def _last_features(feature_names, modalities):
    """The deepest feature of each modality; two features at least."""
    groups = modality_groups(feature_names, modalities)
    lasts = [g[-1] for g in groups]
    if len(lasts) == 1:  # one modality: fuse its last two taps (or the one with itself)
        lasts = groups[0][-2:] if len(groups[0]) > 1 else groups[0] * 2
    return lasts


def _pairs_genotype(names, lasts, inside):
    """One cell per pair of modalities (odd count: the last pairs with the first)."""
    if len(lasts) % 2:
        lasts = lasts + [lasts[0]]
    pairs = [(lasts[i], lasts[i + 1]) for i in range(0, len(lasts), 2)]
    k = len(names)
    return Genotype(inputs=tuple(names), edges=_edges(*itertools.chain(*pairs)),
                    steps=(inside,) * len(pairs),
                    concat=tuple(range(k, k + len(pairs))))


def _chain_genotype(names, lasts, inside):
    """Cell 1 fuses the first two modalities; cell k the previous cell and the next one."""
    k = len(names)
    edges = [lasts[0], lasts[1]]
    for c, feature in enumerate(lasts[2:]):
        edges += [k + c, feature]
    cells = len(edges) // 2
    return Genotype(inputs=tuple(names), edges=_edges(*edges), steps=(inside,) * cells,
                    concat=(k + cells - 1,))


def _random_genotype(names, num_cells, seed):
    """Inputs and cell connections at random (no pair twice); the unread cells are the output."""
    rng = np.random.default_rng(seed)
    k, pairs = len(names), []
    for c in range(num_cells):
        candidates = [p for p in itertools.combinations(range(k + c), 2) if p not in pairs]
        if not candidates:  # a single feature: the cell reads it twice
            candidates = [(0, 0)]
        pairs.append(candidates[rng.integers(len(candidates))])
    read = {i for p in pairs for i in p}
    concat = tuple(k + c for c in range(num_cells) if k + c not in read)
    return Genotype(inputs=tuple(names), edges=_edges(*itertools.chain(*pairs)),
                    steps=(CELL_INSIDES["concat_fc"],) * num_cells, concat=concat)


def preset_genotype(name, feature_names, seed=0, modalities=None):
    """The named fixed fusion genotype over `feature_names`.

    Args:
        name: one of `PRESETS`.
        feature_names: the backbone feature names, in node order (e.g.
            `list(backbones.output)`).
        seed: seeds the `random` preset. Defaults to 0.
        modalities: optional feature name -> modality name (see
            `modality_groups`). Defaults to None.

    Returns:
        A validated `Genotype`.

    Raises:
        GenotypeError: an unknown preset name or no features.
    """
    if name not in PRESETS:
        raise GenotypeError(f"unknown fusion preset '{name}'; known: {', '.join(PRESETS)}")
    names = list(feature_names)
    if not names:
        raise GenotypeError(f"preset '{name}': no backbone features to fuse")
    lasts = _last_features(names, modalities)
    if name == "late":
        return _pairs_genotype(names, lasts, CELL_INSIDES["concat_fc"])
    if name == "random":
        return _random_genotype(names, max(1, len(lasts) - 1), seed)
    return _chain_genotype(names, lasts, CELL_INSIDES[name])


def is_preset_spec(text):
    """Whether a --genotype value names a preset ("preset:NAME[:SEED]")."""
    return isinstance(text, str) and text.startswith(PREFIX)


def parse_preset_spec(text, default_seed=0):
    """"preset:NAME" or "preset:NAME:SEED" -> (name, seed).

    Raises:
        GenotypeError: not a preset spec, an unknown name or a bad seed; the
            message quotes the value and lists the presets.
    """
    if not is_preset_spec(text):
        raise GenotypeError(f"--genotype '{text}': a preset is written "
                            f"'{PREFIX}NAME', NAME one of {', '.join(PRESETS)}")
    name, _, seed = text[len(PREFIX):].partition(":")
    if name not in PRESETS:
        raise GenotypeError(f"--genotype '{text}': unknown fusion preset '{name}'; "
                            f"known: {', '.join(PRESETS)}")
    if not seed:
        return name, default_seed
    try:
        return name, int(seed)
    except ValueError:
        raise GenotypeError(f"--genotype '{text}': the seed after '{PREFIX}{name}:' "
                            f"must be an integer, got '{seed}'") from None
