"""The package's traced functions skip autograph's source conversion.

Autograph parses and rewrites the source of every Python function a `tf.data`
map or a `tf.function` calls, unless it is TensorFlow's or Keras's own; in a
short `ssnas run` that took about 3 s (docs/performance.md). None of the
package's mapped or traced functions needs it (no control flow on tensors), so
the pipelines map them through `do_not_convert` and the held-out pass calls the
loss unconverted. Every conversion request is recorded, cached or not, so a
conversion made earlier in the same process is still seen.
"""

import contextlib

import numpy as np
import tensorflow as tf
from tensorflow.python.autograph.pyct import transpiler

from ssnas_tf.data import MultimodalDataset
from ssnas_tf.data.pipelines import labeled_batches, model_inputs, view_pairs
from ssnas_tf.nas.callbacks import HeldOutLoss
from ssnas_tf.ssl.augment import AugmentConfig

from test_search_model import _compile, _held_out, _model


@contextlib.contextmanager
def package_conversions():
    """Yields the list of ssnas_tf functions autograph is asked to convert."""
    converted = []
    original = transpiler.PyToPy.transform_function

    def recording(self, fn, user_context):
        if getattr(fn, "__module__", "").startswith("ssnas_tf"):
            converted.append(f"{fn.__module__}.{fn.__qualname__}")
        return original(self, fn, user_context)
    transpiler.PyToPy.transform_function = recording
    try:
        yield converted
    finally:
        transpiler.PyToPy.transform_function = original


def _dataset(n=24):
    rng = np.random.default_rng(0)
    return MultimodalDataset(
        name="tiny",
        inputs={"photo": rng.integers(0, 256, (n, 8, 8, 1), dtype=np.uint8),
                "reading": rng.normal(size=(n, 5)).astype(np.float32)},
        kinds={"photo": "image", "reading": "vector"},
        labels=np.arange(n) % 3, label_names=("a", "b", "c"))


def test_pipelines_convert_none_of_the_packages_functions():
    dataset, index = _dataset(), np.arange(20)
    with package_conversions() as converted:
        pipelines = [
            view_pairs(dataset, index, 8, AugmentConfig(), seed=1),
            labeled_batches(dataset, index, 8, seed=1, shuffle=True, repeat=True),
            labeled_batches(dataset, index, 8, seed=1, repeat=True,
                            augment_config=AugmentConfig()),
            model_inputs(dataset, index, 8),
        ]
        batches = [next(iter(ds)) for ds in pipelines]
    assert converted == []
    # The pipelines still give what they gave converted: two views of 8
    # samples, images as float32 in [0, 1], labels with their batch.
    view1, view2 = batches[0]
    assert view1["photo"].shape == view2["photo"].shape == (8, 8, 8, 1)
    for features, labels in batches[1:3]:
        assert features["photo"].dtype == tf.float32 and labels.shape == (8,)
        assert 0.0 <= float(tf.reduce_min(features["photo"]))
        assert float(tf.reduce_max(features["photo"])) <= 1.0
    assert batches[3]["reading"].shape == (8, 5)


def test_held_out_pass_converts_none_of_the_packages_functions():
    model = _model("ssl")
    _compile(model)
    held_out = _held_out(np.random.default_rng(5), "ssl")
    with package_conversions() as converted:
        scores = HeldOutLoss(held_out, 3)(model)
    # Only the pass's own loop is converted (into a while loop), not the loss.
    assert converted == ["ssnas_tf.nas.callbacks.HeldOutLoss._pass.<locals>.mean_over_pass"]
    assert np.isfinite(scores["loss"]) and 0.0 <= scores["pair_accuracy"] <= 1.0
