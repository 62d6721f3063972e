"""tf.data pipelines that shuffle indices and read rows per batch
(ssnas_tf.data.pipelines), over in-memory arrays and prepared files."""

import numpy as np
import pytest
import tensorflow as tf

from ssnas_tf.data.base import MultimodalDataset
from ssnas_tf.data.pipelines import (labeled_batches, model_inputs, steps_per_epoch,
                                     to_model_inputs, view_pairs)
from ssnas_tf.data.prepared import RowFile, prepare_rows
from ssnas_tf.ssl.augment import AugmentConfig

N, BATCH = 50, 8


class CountingRows:
    """An array-like that records how many rows each read asks for."""

    def __init__(self, array):
        self.array, self.reads = array, []
        self.shape, self.dtype, self.ndim = array.shape, array.dtype, array.ndim

    def __len__(self):
        return len(self.array)

    def __getitem__(self, rows):
        self.reads.append(np.size(np.arange(len(self.array))[rows]))
        return self.array[rows]


def _dataset(image=None):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (N, 6, 5, 1), dtype=np.uint8) if image is None else image
    return MultimodalDataset(
        "toy", {"img": image, "vec": rng.normal(size=(N, 3)).astype(np.float32),
                "txt": np.array([f"sample {i}" for i in range(N)], dtype=object)},
        {"img": "image", "vec": "vector", "txt": "text"},
        labels=np.arange(N) % 3, label_names=("a", "b", "c"))


def _take(ds, n):
    return [x for x, _ in zip(ds, range(n))]


def _equal(a, b):
    flat_a, flat_b = tf.nest.flatten(a), tf.nest.flatten(b)
    return len(flat_a) == len(flat_b) and all(
        np.array_equal(np.asarray(p), np.asarray(q)) for p, q in zip(flat_a, flat_b))


def test_reads_are_batches_never_the_whole_array():
    rows = CountingRows(_dataset().inputs["img"])
    ds = _dataset(rows)
    _take(view_pairs(ds, np.arange(N), BATCH, AugmentConfig(), seed=1), 12)
    list(model_inputs(ds, np.arange(N), batch_size=BATCH))
    assert rows.reads and max(rows.reads) == BATCH


def test_started_at_an_epoch_yields_the_uninterrupted_batches():
    ds, index = _dataset(), np.arange(5, N)
    steps = steps_per_epoch(len(index), BATCH)
    whole = _take(view_pairs(ds, index, BATCH, AugmentConfig(), seed=4), 3 * steps)
    resumed = _take(view_pairs(ds, index, BATCH, AugmentConfig(), seed=4, start_epoch=2),
                    steps)
    assert all(_equal(a, b) for a, b in zip(whole[2 * steps:], resumed))
    labeled = _take(labeled_batches(ds, index, BATCH, 3, True, True), 2 * steps)
    later = _take(labeled_batches(ds, index, BATCH, 3, True, True, start_epoch=1), steps)
    assert all(_equal(a, b) for a, b in zip(labeled[steps:], later))


def test_epochs_are_new_permutations_and_reiteration_repeats_them():
    ds, index = _dataset(), np.arange(N)
    pipeline = labeled_batches(ds, index, BATCH, 7, shuffle=True, repeat=True)
    steps = steps_per_epoch(N, BATCH)
    first = [y.numpy() for _, y in _take(pipeline, 2 * steps)]
    again = [y.numpy() for _, y in _take(pipeline, 2 * steps)]  # a new iterator
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    epoch0 = np.concatenate(first[:steps])
    epoch1 = np.concatenate(first[steps:])
    assert not np.array_equal(epoch0, epoch1)


def test_max_steps_caps_each_epoch():
    ds, index = _dataset(), np.arange(N)
    capped = _take(labeled_batches(ds, index, BATCH, 2, True, True, max_steps=2), 4)
    full = _take(labeled_batches(ds, index, BATCH, 2, True, True), 2 * steps_per_epoch(N, BATCH))
    # Epoch 1 of the capped pipeline starts where the full one's epoch 1 starts.
    assert _equal(capped[2], full[steps_per_epoch(N, BATCH)])
    assert steps_per_epoch(N, BATCH, max_steps=2) == 2


def test_model_inputs_keep_order_and_convert_per_batch():
    ds = _dataset()
    index = np.array([9, 3, 40, 0, 17, 22, 8, 1, 2, 30, 31])
    batches = list(model_inputs(ds, index, batch_size=4))
    assert [len(b["img"]) for b in batches] == [4, 4, 3]
    expected = to_model_inputs({k: v[index] for k, v in ds.inputs.items()}, ds.kinds)
    for key in ("img", "vec", "txt"):
        got = np.concatenate([np.asarray(b[key]) for b in batches])
        np.testing.assert_array_equal(got, np.asarray(expected[key]))
    assert batches[0]["img"].dtype.name == "float32"


def test_prepared_file_reads_rows_in_any_order(tmp_path):
    data = np.random.default_rng(1).integers(0, 256, (30, 4, 3, 2), dtype=np.uint8)
    rows = prepare_rows(str(tmp_path / "rows"), len(data), data.shape[1:], np.uint8,
                        lambda a, b: data[a:b], chunk_size=7, verbose=False)
    assert isinstance(rows, RowFile) and rows.shape == data.shape and len(rows) == 30
    for key in (np.array([29, 0, 5, 5, 13]), slice(3, 9), 4, (np.array([2, 1]), 0)):
        np.testing.assert_array_equal(rows[key], data[key])
    np.testing.assert_array_equal(np.asarray(rows), data)
    with pytest.raises(IndexError):
        rows[np.array([30])]


def test_prepared_rows_are_a_tfds_dataset_in_source_order(tmp_path):
    """The prepared folder is a plain TFDS ArrayRecord dataset: TFDS reads it
    back in source order, and a preparation killed before its digest was
    written is redone, not used."""
    import os
    import tensorflow_datasets as tfds
    data = np.random.default_rng(2).integers(0, 256, (23, 3, 2), dtype=np.uint8)
    path = str(tmp_path / "rows")
    rows = prepare_rows(path, len(data), data.shape[1:], np.uint8, lambda a, b: data[a:b],
                        chunk_size=5, verbose=False)
    assert any(".array_record-" in name for name in os.listdir(rows.version_dir))
    builder = tfds.builder_from_directory(rows.version_dir)
    source = builder.as_data_source()["rows"]
    back = np.stack([source[i]["row"] for i in range(len(source))])
    np.testing.assert_array_equal(back, data)
    digest = rows.digest()
    assert len(digest) == 64
    os.remove(os.path.join(rows.version_dir, "rows_sha256.txt"))
    calls = []
    again = prepare_rows(path, len(data), data.shape[1:], np.uint8,
                         lambda a, b: calls.append(a) or data[a:b], chunk_size=5,
                         verbose=False)
    assert calls == [0, 5, 10, 15, 20] and again.digest() == digest
    np.testing.assert_array_equal(np.asarray(again), data)


def test_rows_spilled_to_disk_while_preparing_keep_their_order(tmp_path, monkeypatch):
    """Past the write buffer TFDS spills records to buckets on disk; the rows
    still come back in source order, and the library's buffer is restored."""
    from tensorflow_datasets.core import shuffle
    from ssnas_tf.data import prepared
    monkeypatch.setattr(prepared, "_WRITE_BUFFER_BYTES", 100)  # a few rows
    before = shuffle.MAX_MEM_BUFFER_SIZE
    buckets = []
    number = shuffle.get_bucket_number
    monkeypatch.setattr(shuffle, "get_bucket_number",
                        lambda **k: buckets.append(number(**k)) or buckets[-1])
    data = np.random.default_rng(3).integers(0, 256, (257, 6, 4), dtype=np.uint8)
    rows = prepare_rows(str(tmp_path / "rows"), len(data), data.shape[1:], np.uint8,
                        lambda a, b: data[a:b], chunk_size=16, verbose=False)
    np.testing.assert_array_equal(np.asarray(rows), data)
    np.testing.assert_array_equal(rows[np.array([256, 0, 100])], data[[256, 0, 100]])
    assert shuffle.MAX_MEM_BUFFER_SIZE == before
    # Spread over the buckets in row order (not all in bucket 0, read whole).
    assert buckets == sorted(buckets) and len(set(buckets)) > 200


def _large_vectors(n=600):
    """A vector dataset larger than one scoring batch (256), rows counted."""
    rng = np.random.default_rng(1)
    labels = np.arange(n) % 2
    rows = CountingRows((rng.normal(size=(n, 3)) + labels[:, None]).astype(np.float32))
    return rows, MultimodalDataset("big", {"vec": rows}, {"vec": "vector"},
                                   labels=labels, label_names=("a", "b"))


def test_surrogate_features_stream_their_inputs():
    import keras
    from ssnas_tf.tuners.surrogate import backbone_features
    rows, ds = _large_vectors()
    inp = keras.Input((3,), name="vec")
    backbones = keras.Model({"vec": inp}, {"vec": keras.layers.Dense(2)(inp)})
    features = backbone_features(backbones, ds, np.arange(0, 600, 2))
    assert features["vec"].shape == (300, 2)
    assert rows.reads and max(rows.reads) <= 256  # never the 300 rows at once


def test_randomnet_search_streams_its_validation_inputs(tmp_path):
    from ssnas_tf.tuners.search import randomnet_search
    rows, ds = _large_vectors()
    randomnet_search(ds, np.arange(0, 600, 2), np.arange(1, 600, 2), str(tmp_path),
                     trials=1, batch_size=16, trial_fraction=0.1)
    # Training batches of 16, statistics and scoring batches of at most 256,
    # never a whole split of 300.
    assert rows.reads and max(rows.reads) <= 256


def test_streamed_vector_statistics_match_numpy():
    from ssnas_tf.tuners.search import model_inputs_info
    rows, ds = _large_vectors()
    index = np.arange(0, 600, 2)
    _, stats, _ = model_inputs_info(ds, index)
    np.testing.assert_allclose(stats["vec"][0], rows.array[index].mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(stats["vec"][1], rows.array[index].var(axis=0), rtol=1e-5)
