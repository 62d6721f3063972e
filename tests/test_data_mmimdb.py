"""MM-IMDB loader on small files generated in the published layouts."""

import json
import os

import h5py
import numpy as np
import pytest
from PIL import Image

from ssnas_tf.data import load_dataset
from ssnas_tf.data.base import DataError
from ssnas_tf.data.mmimdb import (CAFFE_MEAN_BGR, GENRES, NUM_SAMPLES,
                                  load_mmimdb)
from ssnas_tf.data.prepared import PREPARED_DIR, RowFile

N = 12
VOCAB = ["_UNK_", "the", "movie", "hero", "dies", "love", "zzz"]
# Rows 0-7 train, 8-9 dev, 10-11 test, as in a Fuel split table.
SPLIT_ROWS = {"train": (0, 8), "dev": (8, 10), "test": (10, 12)}
SOURCES = ("features", "genres", "images", "imdb_ids", "sequences",
           "three_grams", "vgg_features", "word_grams")


def _split_table(split_rows, refs=None):
    """Fuel's H5PYDataset.create_split_array layout."""
    refs = refs or {}
    dtype = np.dtype([
        ("split", "S5"), ("source", "S12"), ("start", np.int64),
        ("stop", np.int64), ("indices", h5py.special_dtype(ref=h5py.Reference)),
        ("available", np.bool_), ("comment", "S1")])
    table = np.empty(len(split_rows) * len(SOURCES), dtype=dtype)
    i = 0
    for split, (start, stop) in split_rows.items():
        for source in SOURCES:
            table[i] = (split.encode(), source.encode(), start, stop,
                        refs.get(split, h5py.Reference()), True, b".")
            i += 1
    return table


def _original_images(n):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(n, 256, 160, 3), dtype=np.uint8)
    rgb[0, 5, 7] = (250, 3, 128)
    return rgb


def _write_hdf5(path, n=N, split_table=True, names="json", skip=(),
                replace=None):
    """Writes multimodal_imdb.hdf5 as the authors' make_dataset.py does."""
    rng = np.random.default_rng(1)
    replace = replace or {}
    lengths = [3, 0, 12, 5] + [4] * (n - 4)
    with h5py.File(path, "w") as f:
        def put(key, maker):
            if key in skip:
                return None
            if key in replace:
                f[key] = replace[key]
                return f[key]
            return maker()

        put("features", lambda: f.create_dataset(
            "features", data=rng.normal(size=(n, 300)).astype(np.float32)))
        put("vgg_features", lambda: f.create_dataset(
            "vgg_features", data=rng.random((n, 4096), dtype=np.float32)))
        put("three_grams", lambda: f.create_dataset(
            "three_grams", (n, 9946), dtype="float32"))
        put("word_grams", lambda: f.create_dataset(
            "word_grams", (n, 13253), dtype="float32"))

        def images():
            bgr = _original_images(n)[..., ::-1].astype(np.float32)
            bgr -= np.asarray(CAFFE_MEAN_BGR, np.float32)
            ds = f.create_dataset("images", (n, 3, 256, 160), dtype="int32")
            ds[...] = bgr.transpose(0, 3, 1, 2)  # HDF5 converts float -> int
            return ds
        put("images", images)

        def sequences():
            ds = f.create_dataset("sequences", (n,),
                                  dtype=h5py.vlen_dtype(np.int32))
            for i, length in enumerate(lengths):
                ds[i] = (np.arange(length) % len(VOCAB)).astype(np.int32)
            return ds
        put("sequences", sequences)

        def genres():
            y = np.zeros((n, 23), np.int32)
            y[np.arange(n), np.arange(n) % 23] = 1
            y[0, 22] = 1
            ds = f.create_dataset("genres", data=y)
            if names == "json":
                ds.attrs["target_names"] = json.dumps(list(GENRES))
            elif names == "bytes":
                ds.attrs["target_names"] = np.array(
                    [g.encode() for g in GENRES[::-1]])
            return ds
        put("genres", genres)
        put("imdb_ids", lambda: f.create_dataset(
            "imdb_ids", data=np.array([f"{i:07d}" for i in range(n)], "S7")))
        if split_table:
            rows = SPLIT_ROWS if n == N else {
                "train": (0, n - 2), "dev": (n - 2, n - 1), "test": (n - 1, n)}
            f.attrs["split"] = _split_table(rows)


def _write_metadata(directory, lookup="dict"):
    vectors = {w: np.full(300, i, np.float32) for i, w in enumerate(VOCAB)
               if w in ("movie", "hero", "love")}
    if lookup == "dict":
        table = vectors
    elif lookup == "aligned":
        table = np.stack([vectors.get(w, np.zeros(300, np.float32))
                          for w in VOCAB])
    else:  # make_dataset.py: rows of the words that have a vector, id order
        table = np.stack([vectors[w] for w in VOCAB if w in vectors])
    np.save(os.path.join(directory, "metadata.npy"), {
        "ix_to_word": dict(enumerate(VOCAB)),
        "word_to_ix": {w: i for i, w in enumerate(VOCAB)},
        "vocab_size": len(VOCAB), "lookup": table})


@pytest.fixture(scope="module")
def hdf5_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("mmimdb_h5")
    _write_hdf5(directory / "multimodal_imdb.hdf5")
    _write_metadata(directory)
    return directory


@pytest.fixture(scope="module")
def default_data(hdf5_dir):
    return load_mmimdb(hdf5_dir, max_tokens=8)


def test_hdf5_layout_and_split_table(default_data):
    data = default_data
    assert data.num_samples == N and data.multilabel
    assert data.label_names == GENRES
    assert data.labels.shape == (N, 23) and data.labels.dtype == np.float32
    assert data.labels[0, 22] == 1 and data.labels[0].sum() == 2
    assert data.kinds == {"text": "sequence", "image": "image"}
    for split, ours in (("train", "train"), ("dev", "valid"), ("test", "test")):
        np.testing.assert_array_equal(data.splits[ours],
                                      np.arange(*SPLIT_ROWS[split]))
    assert data.extras["imdb_ids"][3] == "0000003"


def test_images_bgr_mean_to_rgb(default_data):
    images = default_data.inputs["image"]
    assert images.shape == (N, 256, 160, 3) and images.dtype == np.uint8
    assert tuple(images[0, 5, 7]) == (250, 3, 128)
    original = _original_images(N)
    stored_zero = np.abs(original.astype(np.float32)
                         - np.asarray(CAFFE_MEAN_BGR[::-1], np.float32)) < 1
    diff = np.abs(np.asarray(images).astype(int) - original.astype(int))
    # Exact except where the stored value is 0 (two pixel values map to it).
    assert diff[~stored_zero].max() == 0
    assert diff.max() <= 1


def test_images_are_prepared_once_and_read_by_rows(hdf5_dir, default_data, capfd):
    images = default_data.inputs["image"]
    assert isinstance(images, RowFile)  # on disk, not in memory
    prepared = sorted(os.listdir(hdf5_dir / PREPARED_DIR))
    assert len(prepared) == 1 and prepared[0].startswith("mmimdb-images-")
    in_memory = load_mmimdb(hdf5_dir, max_tokens=8, stream=False).inputs["image"]
    assert isinstance(in_memory, np.ndarray)
    rows = np.array([7, 2, 7, 11, 0])  # any order, repeats
    np.testing.assert_array_equal(images[rows], in_memory[rows])
    np.testing.assert_array_equal(images[3:5, 10], in_memory[3:5, 10])
    # Reused while the source is unchanged: no second preparation.
    capfd.readouterr()
    again = load_mmimdb(hdf5_dir, max_tokens=8).inputs["image"]
    assert again.path == images.path and "preparing" not in capfd.readouterr().err
    assert sorted(os.listdir(hdf5_dir / PREPARED_DIR)) == prepared


def test_changed_source_is_prepared_again(tmp_path, capfd):
    _write_hdf5(tmp_path / "multimodal_imdb.hdf5", n=N)
    first = load_mmimdb(tmp_path, max_tokens=8).inputs["image"]
    assert "preparing mmimdb images" in capfd.readouterr().err
    _write_hdf5(tmp_path / "multimodal_imdb.hdf5", n=N + 1)
    second = load_mmimdb(tmp_path, max_tokens=8).inputs["image"]
    assert "preparing mmimdb images" in capfd.readouterr().err
    assert second.path != first.path and len(second) == N + 1


def test_sequences_padding_and_shift(default_data):
    text = default_data.inputs["text"]
    assert text.shape == (N, 8) and text.dtype == np.int32
    np.testing.assert_array_equal(text[0], [2, 3, 4, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(text[1], np.zeros(8))  # empty plot
    np.testing.assert_array_equal(text[2], np.arange(8) % len(VOCAB) + 2)


def test_vocabulary_and_embedding_alignment(default_data):
    vocab = default_data.extras["vocabulary"]
    embedding = default_data.extras["embedding"]
    assert vocab[:3] == ["<pad>", "<mask>", "_UNK_"]
    assert embedding.shape == (len(VOCAB) + 2, 300)
    assert embedding.dtype == np.float32
    for word_id, word in enumerate(VOCAB):
        row = embedding[word_id + 2]
        assert vocab[word_id + 2] == word
        expected = word_id if word in ("movie", "hero", "love") else 0
        np.testing.assert_array_equal(row, np.full(300, expected))
    assert not embedding[:2].any()


@pytest.mark.parametrize("form", ["aligned", "short"])
def test_lookup_array_forms(tmp_path, form):
    _write_hdf5(tmp_path / "multimodal_imdb.hdf5", n=4, skip=("images",))
    _write_metadata(tmp_path, lookup=form)
    if form == "short":
        with pytest.warns(UserWarning, match="not aligned"):
            data = load_mmimdb(tmp_path, image=None)
        assert "embedding" not in data.extras
        assert data.extras["lookup_unaligned"].shape == (3, 300)
        data = load_mmimdb(tmp_path, image=None,
                           word2vec_vocab=["movie", "hero", "love", "oov"])
    else:
        data = load_mmimdb(tmp_path, image=None)
    embedding = data.extras["embedding"]
    assert embedding[VOCAB.index("hero") + 2][0] == VOCAB.index("hero")
    assert not embedding[VOCAB.index("dies") + 2].any()


def test_features_and_vgg_options(hdf5_dir):
    data = load_mmimdb(hdf5_dir / "multimodal_imdb.hdf5", text="features",
                       image="vgg_features", max_samples=9)
    assert data.kinds == {"text": "vector", "image": "vector"}
    assert data.inputs["text"].shape == (9, 300)
    assert data.inputs["image"].shape == (9, 4096)
    assert data.inputs["image"].dtype == np.float32
    # Splits are restricted to the rows read.
    assert list(data.splits["valid"]) == [8] and len(data.splits["test"]) == 0
    only_text = load_dataset("mmimdb", data_dir=hdf5_dir, image=None)
    assert only_text.modalities == ("text",)


def test_split_table_indices_reference(tmp_path):
    path = tmp_path / "multimodal_imdb.hdf5"
    _write_hdf5(path, n=6, split_table=False, skip=("images",))
    with h5py.File(path, "a") as f:
        ref = f.create_dataset("dev_indices", data=np.array([5, 1])).ref
        f.attrs["split"] = _split_table(
            {"train": (0, 4), "dev": (0, 0), "test": (4, 6)}, {"dev": ref})
    data = load_mmimdb(path, image=None)
    assert list(data.splits["valid"]) == [5, 1]
    assert list(data.splits["test"]) == [4, 5]


def test_target_names_as_bytes_array_and_default(tmp_path):
    _write_hdf5(tmp_path / "multimodal_imdb.hdf5", n=4, names="bytes",
                skip=("images",))
    assert load_mmimdb(tmp_path, image=None).label_names == GENRES[::-1]
    _write_hdf5(tmp_path / "multimodal_imdb.hdf5", n=4, names=None,
                skip=("images",))
    assert load_mmimdb(tmp_path, image=None).label_names == GENRES


def _write_full_size_file(path):
    """All keys at the published N, chunked and unwritten so the file is tiny."""
    n = NUM_SAMPLES
    with h5py.File(path, "w") as f:
        for key, shape, dtype in (
                ("features", (n, 300), "float32"),
                ("vgg_features", (n, 4096), "float32"),
                ("images", (n, 3, 256, 160), "int32"),
                ("genres", (n, 23), "int32"),
                ("three_grams", (n, 9946), "float32"),
                ("word_grams", (n, 13253), "float32")):
            f.create_dataset(key, shape, dtype=dtype, chunks=True)
        f.create_dataset("sequences", (n,), dtype=h5py.vlen_dtype(np.int32))
        f.create_dataset("imdb_ids", (n,), dtype="S7")


def test_published_ranges_without_split_table(tmp_path):
    path = tmp_path / "multimodal_imdb.hdf5"
    _write_full_size_file(path)
    data = load_mmimdb(path, text="features", image=None)
    assert {k: (v[0], v[-1] + 1) for k, v in data.splits.items()} == {
        "train": (0, 15552), "valid": (15552, 18160), "test": (18160, 25959)}
    clamped = load_mmimdb(path, text="features", image=None, max_samples=16000)
    assert len(clamped.splits["train"]) == 15552
    assert list(clamped.splits["valid"][[0, -1]]) == [15552, 15999]
    assert len(clamped.splits["test"]) == 0


def test_no_split_table_and_wrong_size(tmp_path):
    _write_hdf5(tmp_path / "multimodal_imdb.hdf5", n=5, split_table=False,
                skip=("images",))
    with pytest.raises(DataError, match="no Fuel split table.*25959"):
        load_mmimdb(tmp_path, image=None)


@pytest.mark.parametrize("key,options", [
    ("features", {"text": "features"}),
    ("sequences", {}),
    ("genres", {}),
    ("vgg_features", {"image": "vgg_features"}),
])
def test_missing_key(tmp_path, key, options):
    _write_hdf5(tmp_path / "multimodal_imdb.hdf5", n=4, skip=("images", key))
    options.setdefault("image", None)
    with pytest.raises(DataError, match=f"multimodal_imdb.hdf5 has no key "
                                        f"'{key}'; expected"):
        load_mmimdb(tmp_path, **options)


@pytest.mark.parametrize("key,value,expected", [
    ("features", np.zeros((4, 299), np.float32), r"\(N, 300\) float32"),
    ("features", np.zeros((4, 300), np.float64), r"\(N, 300\) float32"),
    ("images", np.zeros((4, 3, 256, 160), np.float32),
     r"\(N, 3, 256, 160\) int32"),
    ("genres", np.zeros((4, 22), np.int32), r"\(N, 23\) int32"),
    ("sequences", np.zeros((4, 5), np.int32), r"\(N,\) variable-length int32"),
])
def test_wrong_shape_or_dtype(tmp_path, key, value, expected):
    _write_hdf5(tmp_path / "multimodal_imdb.hdf5", n=4, replace={key: value})
    text = "features" if key == "features" else "sequences"
    with pytest.raises(DataError, match=f"key '{key}' is .*; expected "
                                        f"{expected}"):
        load_mmimdb(tmp_path, text=text)


def test_missing_paths(tmp_path):
    with pytest.raises(DataError, match="data_dir is required"):
        load_mmimdb()
    with pytest.raises(DataError, match="does not exist"):
        load_mmimdb(tmp_path / "nowhere")
    with pytest.raises(DataError, match="multimodal_imdb.hdf5 not found"):
        load_mmimdb(tmp_path)


# ---------------------------------------------------------------- raw archive

RAW_SPLIT = {"train": ["0000001", "0000002"], "dev": ["0000003"],
             "test": ["0000004"]}


def _write_raw(parent):
    root = parent / "mmimdb"
    (root / "dataset").mkdir(parents=True)
    (root / "split.json").write_text(json.dumps(RAW_SPLIT))
    for i, movie_id in enumerate(sum(RAW_SPLIT.values(), [])):
        movie = {"title": f"Movie {i}",
                 "plot": ["short", f"a much longer plot number {i}", "mid"],
                 "genres": ["Drama", "Reality-TV", GENRES[i + 1]]}
        (root / "dataset" / f"{movie_id}.json").write_text(json.dumps(movie))
        colour = (40 * i, 100, 200)
        Image.new("RGB", (30, 20), colour).save(
            root / "dataset" / f"{movie_id}.jpeg", quality=95)
    return root


def test_raw_archive(tmp_path):
    root = _write_raw(tmp_path)
    data = load_mmimdb(tmp_path, image_size=(16, 10), verbose=False)
    assert data.kinds == {"text": "text", "image": "image"}
    assert data.inputs["text"][2] == "a much longer plot number 2"
    assert data.inputs["image"].shape == (4, 16, 10, 3)
    assert np.abs(data.inputs["image"][1].astype(int) - (40, 100, 200)).max() < 8
    assert data.labels[:, GENRES.index("Drama")].all()
    assert data.labels.sum() == 8  # "Reality-TV" is not one of the 23
    assert {k: list(v) for k, v in data.splits.items()} == {
        "train": [0, 1], "valid": [2], "test": [3]}
    assert data.extras["imdb_ids"][2] == "0000003"
    same = load_mmimdb(root, image=None, max_samples=3)
    assert same.modalities == ("text",) and list(same.splits["test"]) == []


def test_raw_archive_errors(tmp_path):
    root = _write_raw(tmp_path)
    with pytest.raises(DataError, match="needs multimodal_imdb.hdf5"):
        load_mmimdb(root, text="features")
    os.remove(root / "dataset" / "0000004.jpeg")
    with pytest.raises(DataError, match=r"movie 0000004: .*0000004\.jpeg not"):
        load_mmimdb(root, image_size=(8, 5), verbose=False)
    os.remove(root / "dataset" / "0000003.json")
    with pytest.raises(DataError, match=r"movie 0000003: .*0000003\.json not"):
        load_mmimdb(root, image=None)
    os.remove(root / "split.json")
    with pytest.raises(DataError, match=r"split\.json not found"):
        load_mmimdb(tmp_path)


def test_preprocessing_a_client_must_repeat_is_stated(hdf5_dir, tmp_path):
    """serving_info.json takes these steps: each source and kind states its own."""
    from ssnas_tf.serving.preprocessing import client_steps

    published = load_mmimdb(hdf5_dir / "multimodal_imdb.hdf5", max_samples=9)
    assert "Caffe" in client_steps(published, "image")[0]
    assert "+2" in client_steps(published, "text")[0]
    features = load_mmimdb(hdf5_dir / "multimodal_imdb.hdf5", text="features",
                           image="vgg_features", max_samples=9)
    assert "word2vec" in client_steps(features, "text")[0]
    assert "VGG16" in client_steps(features, "image")[0]
    _write_raw(tmp_path)
    raw = load_mmimdb(tmp_path, image_size=(16, 10), verbose=False)
    assert any("Lanczos" in s and "10x16" in s for s in client_steps(raw, "image"))
    assert "raw text" in client_steps(raw, "text")[0]


@pytest.mark.parametrize("bad_id, message", [
    ("../../outside/0000009", r"movie id '\.\./\.\./outside/0000009' from .*split\.json: "
                              r"path \.\./\.\./outside/0000009\.json leads outside"),
    ("ABSOLUTE", r"movie id '/.*/outside/0000009' from .*split\.json: absolute path "
                 r"/.*0000009\.json is not allowed"),
    ("0000005", r"movie id '0000005' from .*split\.json: path 0000005\.json resolves "
                r"through a symbolic link to .*0000009\.json"),
])
def test_raw_archive_ids_stay_inside_the_dataset_folder(tmp_path, bad_id, message):
    """split.json's ids name files inside dataset/: an id that climbs out,
    an absolute one, or a symbolic link out of the folder is refused."""
    root = _write_raw(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "0000009.json").write_text(json.dumps({"plot": ["x"], "genres": []}))
    Image.new("RGB", (30, 20)).save(outside / "0000009.jpeg")
    (root / "dataset" / "0000005.json").symlink_to(outside / "0000009.json")
    if bad_id == "ABSOLUTE":
        bad_id = str(outside / "0000009")
    split = dict(RAW_SPLIT, test=RAW_SPLIT["test"] + [bad_id])
    (root / "split.json").write_text(json.dumps(split))
    with pytest.raises(DataError, match=message):
        load_mmimdb(root, image=None, verbose=False)


def test_raw_archive_poster_over_the_pixel_budget(tmp_path):
    root = _write_raw(tmp_path)
    with pytest.raises(DataError, match=r"poster .*0000001\.jpeg is 30x20 = 600 pixels, "
                                        r"over the pixel budget of 599"):
        load_mmimdb(root, image_size=(8, 5), verbose=False, max_pixels=599)
    assert load_mmimdb(root, image_size=(8, 5), verbose=False,
                       max_pixels=600).num_samples == 4
