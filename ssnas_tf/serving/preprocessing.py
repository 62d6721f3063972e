"""What a client must do to raw data before sending it, and what the model does.

Loaders turn files into the arrays the models train on (alpha compositing,
resizing, rescaling, word ids); a served model needs its inputs prepared the
same way. Each loader states its steps in `dataset.extras["preprocessing"]`,
a dict modality -> list of sentences in the order applied. `describe_inputs`
turns them, with the steps done inside the SavedModel, into the ordered
`"preprocessing"` entries of `serving_info.json`:

```
"pix": {"shape": [null, 16, 15, 1], "dtype": "uint8", "preprocessing": [
    {"by": "client", "step": "0-6 pixel averages times 255/6, rounded half up ..."},
    {"by": "model", "step": "cast to float32, divided by 255"}]}
```

A `sequence` input with `extras["vocabulary"]` also gets a vocabulary file in
the export (line i = the word of id i) so clients can map words to ids.
"""

from typing import Dict, List, Mapping, Sequence

PREPROCESSING_KEY = "preprocessing"
UINT8_STEP = "cast to float32, divided by 255"
TEXT_STEP = ("send raw UTF-8 text: the model folds full-width forms to ASCII, "
             "lower-cases, deletes '[mask]', strips ASCII punctuation and splits "
             "on whitespace (ssnas_tf.backbones.standardize_text); clients do "
             "not normalise")
SEQUENCE_STEP = "int token ids: 0 = padding, 1 = mask/out-of-vocabulary"


def vocabulary_file(modality: str) -> str:
    """File name of a sequence modality's vocabulary in an export."""
    return f"{modality}_vocabulary.txt"


def client_steps(dataset, modality: str) -> List[str]:
    """The loader's steps for one modality (empty if it states none).

    Raises:
        ValueError: `extras["preprocessing"]` is not a dict of lists of strings.
    """
    stated = dataset.extras.get(PREPROCESSING_KEY, {})
    steps = stated.get(modality, []) if isinstance(stated, Mapping) else None
    if not isinstance(steps, (list, tuple)) or not all(isinstance(s, str) for s in steps):
        raise ValueError(f"dataset '{dataset.name}': extras['{PREPROCESSING_KEY}']"
                         f"['{modality}'] must be a list of strings, got {steps!r}")
    return list(steps)


def describe_inputs(dataset, modalities: Sequence[str]) -> Dict[str, List[dict]]:
    """modality -> ordered `{"by": "client"|"model", "step": ...}` entries.

    The uint8 cast that `export_classifier` adds to the serving function is
    not included here; `export_classifier` appends it.

    Args:
        dataset: the `MultimodalDataset` the model was trained on.
        modalities: the served modalities.

    Returns:
        One list per modality, possibly empty.
    """
    out = {}
    for modality in modalities:
        kind = dataset.kinds[modality]
        steps = [{"by": "client", "step": s} for s in client_steps(dataset, modality)]
        if kind == "sequence":
            note = SEQUENCE_STEP
            if "vocabulary" in dataset.extras:
                note += f"; id i is line i of {vocabulary_file(modality)}"
            steps.append({"by": "client", "step": note})
        elif kind == "text":
            steps.append({"by": "model", "step": TEXT_STEP})
        out[modality] = steps
    return out


def vocabulary_files(dataset, modalities: Sequence[str]) -> Dict[str, str]:
    """File name -> content of the vocabulary file of each served sequence input."""
    vocabulary = dataset.extras.get("vocabulary")
    if vocabulary is None:
        return {}
    bad = [w for w in vocabulary if not isinstance(w, str) or "\n" in w or "\r" in w]
    if bad:
        raise ValueError(f"dataset '{dataset.name}': extras['vocabulary'] has "
                         f"entries that are not one-line strings, e.g. {bad[0]!r}")
    text = "".join(f"{word}\n" for word in vocabulary)
    return {vocabulary_file(m): text for m in modalities
            if dataset.kinds[m] == "sequence"}


__all__ = ["PREPROCESSING_KEY", "describe_inputs", "client_steps", "vocabulary_file",
           "vocabulary_files"]
