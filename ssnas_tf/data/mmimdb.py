"""MM-IMDB (Arevalo et al. 2017): movie posters + plots, 23 multi-label genres.

Reads either the published Fuel file `multimodal_imdb.hdf5` (with its optional
companion `metadata.npy`) or the raw archive `mmimdb.tar.gz` once extracted
(`mmimdb/split.json`, `mmimdb/dataset/<id>.json` and `<id>.jpeg`). The layouts are
those of /work/shared/DATA.md and of the authors' `make_dataset.py`.

Reference:
    Arevalo, Solorio, Montes-y-Gomez, Gonzalez. "Gated Multimodal Units for
    Information Fusion", ICLR workshop 2017.

Length: over 500 lines because it reads both published layouts (the Fuel HDF5
file and the raw archive) into one dataset; the two readers share the genre
list, the vocabulary and the poster conversion defined here.
"""

import json
import os
import warnings

import numpy as np

from ssnas_tf.data.base import DataError, MASK_ID, MultimodalDataset, PAD_ID
from ssnas_tf.data.confine import (DEFAULT_MAX_PIXELS, PathError, PixelBudgetError,
                                   check_pixels, confined_path)

HDF5_NAME = "multimodal_imdb.hdf5"
METADATA_NAME = "metadata.npy"
NUM_SAMPLES = 25959
# Rows are stored in split order; used only when the file has no Fuel split table.
PUBLISHED_RANGES = {"train": (0, 15552), "valid": (15552, 18160),
                    "test": (18160, 25959)}
GENRES = ("Drama", "Comedy", "Romance", "Thriller", "Crime", "Action",
          "Adventure", "Horror", "Documentary", "Mystery", "Sci-Fi", "Fantasy",
          "Family", "Biography", "War", "History", "Music", "Animation",
          "Musical", "Western", "Sport", "Short", "Film-Noir")
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
# Fuel split name -> ours.
_FUEL_SPLITS = {"train": "train", "dev": "valid", "test": "test"}
# key -> (per-sample shape, dtype) as published; `sequences` is variable length.
LAYOUT = {
    "features": ((300,), np.dtype("float32")),
    "vgg_features": ((4096,), np.dtype("float32")),
    "images": ((3, 256, 160), np.dtype("int32")),
    "genres": ((len(GENRES),), np.dtype("int32")),
    "sequences": ((), "vlen int32"),
    "three_grams": ((9946,), np.dtype("float32")),
    "word_grams": ((13253,), np.dtype("float32")),
    "imdb_ids": ((), np.dtype("S7")),
}
# Source word ids move up so that 0 and 1 stay free for PAD_ID and MASK_ID.
_SHIFT = MASK_ID + 1


def load_mmimdb(data_dir=None, *, text=None, image="images", max_tokens=256,
                max_samples=None, image_size=(256, 160), chunk_size=128,
                word2vec_vocab=None, verbose=True, stream=True,
                max_pixels=DEFAULT_MAX_PIXELS):
    """Loads MM-IMDB from the published HDF5 file or the raw archive.

    From `multimodal_imdb.hdf5` the modalities are `text` and `image` as chosen
    below; the split comes from the file's Fuel split table (`attrs['split']`,
    Fuel names train/dev/test become train/valid/test) or, without one, from the
    published row ranges. From the raw archive, `text` holds the raw plot strings
    (kind "text") and `image` the decoded posters; the split is `split.json`'s.

    Labels are float32 (N, 23) multi-hot genres.

    Memory: on the HDF5 image path the posters stay on disk. With `stream`
    (the default) they are converted once, `chunk_size` rows at a time, into
    uint8 RGB rows of a TFDS ArrayRecord dataset beside the HDF5 file
    (`ssnas_tf.data.prepared`; about 3.2 GB for all 25,959 movies, reused while
    the source is unchanged), and `inputs["image"]` is a `RowFile` that reads
    only the rows a batch needs. Without `stream` they are converted into
    memory (uint8 (N, 256, 160, 3)); the int32 source (4x larger) is never
    held whole either way.

    Args:
        data_dir: a directory holding `multimodal_imdb.hdf5` (and optionally
            `metadata.npy`), the path of the HDF5 file itself, or the extracted
            raw archive (the folder containing `mmimdb/`, or `mmimdb/` itself).
        text: HDF5 only: `"sequences"` (kind "sequence": int32 (N, max_tokens)
            word ids shifted by +2, 0 = padding, 1 = mask/OOV) or `"features"`
            (kind "vector": the precomputed 300-d mean word2vec, the
            no-augmentation path). The raw archive always gives kind "text"
            (`"text"` may be passed explicitly). Defaults to None, meaning
            `"sequences"` for HDF5 and `"text"` for the raw archive.
        image: `"images"` (kind "image", uint8 RGB (N, H, W, 3)),
            `"vgg_features"` (HDF5 only, kind "vector", 4096-d VGG16 fc7) or None
            for no image modality. Defaults to `"images"`.
        max_tokens: sequence length; longer plots are truncated (first tokens
            kept), shorter ones padded with 0. Defaults to 256.
        max_samples: read only the first `max_samples` rows (HDF5) or movies in
            split.json order train, dev, test (raw). Splits are then the split
            indices that fall within those rows, so a small value may leave the
            valid/test splits empty. Defaults to None (all).
        image_size: raw archive only, (height, width) of the decoded posters,
            centre-cropped to that aspect ratio first as the HDF5 images were.
            Defaults to (256, 160).
        chunk_size: rows converted at a time on the HDF5 image path.
            Defaults to 128 (about 60 MB of int32 per chunk).
        word2vec_vocab: words that have a word2vec vector (an iterable of str
            or the path of a text file with one word per line). Only needed
            when `metadata.npy`'s `lookup` is an array with fewer rows than the
            vocabulary (see `Returns`). Defaults to None.
        verbose: print progress (raw archive, image preparation). Defaults
            to True.
        stream: HDF5 images: prepare them on disk and read them per batch
            (see Memory above). Defaults to True.
        max_pixels: raw archive: posters whose JPEG header declares more
            pixels are refused before decoding. Defaults to 2**26.
            split.json's ids name files inside `dataset/`: an id that leads
            outside it (absolute, `..`, a symbolic link out) is refused.

    Returns:
        A `MultimodalDataset` named "mmimdb". `extras` has `imdb_ids` (list of
        str) and, when `metadata.npy` is next to the HDF5 file, `vocabulary`
        (list of str aligned with the shifted ids: 0 "<pad>", 1 "<mask>", then
        the source vocabulary, whose id 0 is "_UNK_") and `embedding` (float32
        (vocab_size + 2, 300): the word2vec row of each word that has one, zeros
        otherwise). `lookup` may be a dict word -> vector (the documented form)
        or an array: with one row per vocabulary id it is taken as aligned by
        id; with fewer rows it holds, in id order, the vectors of only the words
        that have one (as the authors' make_dataset.py writes it), which cannot
        be aligned without knowing those words, so `embedding` is then left out
        (with a warning, the raw array goes to `extras["lookup_unaligned"]`)
        unless `word2vec_vocab` says which words they are.

    Raises:
        DataError: missing directory, file or key, or a key with the wrong
            shape or dtype (the message names the file, key and expected
            layout).

    Example:
        >>> data = load_mmimdb("/data/mmimdb", text="features",
        ...                    image="vgg_features")  # doctest: +SKIP
        >>> data.inputs["text"].shape  # doctest: +SKIP
        (25959, 300)
    """
    if data_dir is None:
        raise DataError(
            f"mmimdb: data_dir is required: a directory holding {HDF5_NAME} "
            f"(+ {METADATA_NAME}), the .hdf5 file, or the extracted mmimdb "
            f"archive")
    data_dir = os.fspath(data_dir)
    if not os.path.exists(data_dir):
        raise DataError(f"mmimdb: data_dir {data_dir} does not exist")
    if max_samples is not None and max_samples < 1:
        raise DataError(f"mmimdb: max_samples must be >= 1, got {max_samples}")
    if image not in ("images", "vgg_features", None):
        raise DataError(
            f"mmimdb: image must be 'images', 'vgg_features' or None, got "
            f"{image!r}")

    if os.path.isfile(data_dir):
        return _load_hdf5(data_dir, text, image, max_tokens, max_samples,
                          chunk_size, word2vec_vocab, stream, verbose)
    hdf5_path = os.path.join(data_dir, HDF5_NAME)
    if os.path.isfile(hdf5_path):
        return _load_hdf5(hdf5_path, text, image, max_tokens, max_samples,
                          chunk_size, word2vec_vocab, stream, verbose)
    raw_root = _find_raw_root(data_dir)
    if raw_root is None:
        raise DataError(
            f"mmimdb: {hdf5_path} not found, and {data_dir} is not an "
            f"extracted raw archive (no mmimdb/split.json)")
    return _load_raw(raw_root, text, image, max_samples, image_size, verbose, max_pixels)


# --------------------------------------------------------------------- HDF5


def _load_hdf5(path, text, image, max_tokens, max_samples, chunk_size,
               word2vec_vocab, stream=True, verbose=True):
    import h5py

    text = "sequences" if text is None else text
    if text not in ("sequences", "features"):
        raise DataError(
            f"mmimdb: text must be 'sequences' or 'features' for {path}, got "
            f"{text!r} (raw plot strings need the extracted raw archive)")
    try:
        f = h5py.File(path, "r")
    except OSError as error:
        raise DataError(f"mmimdb: cannot open {path} as HDF5: {error}") from None
    with f:
        genres_ds = _dataset(f, "genres", path)
        n_file = genres_ds.shape[0]
        n = n_file if max_samples is None else min(max_samples, n_file)
        labels = genres_ds[:n].astype(np.float32)
        label_names = _target_names(genres_ds, path)
        splits = _splits(f, path, n_file, n)

        inputs, kinds, extras = {}, {}, {}
        if text == "sequences":
            sequences = _dataset(f, "sequences", path, n_file)[:n]
            inputs["text"] = _pad_sequences(sequences, max_tokens)
            kinds["text"] = "sequence"
        else:
            inputs["text"] = _dataset(f, "features", path, n_file)[:n]
            kinds["text"] = "vector"
        if image == "images":
            images = _dataset(f, "images", path, n_file)
            inputs["image"] = (_prepared_images(path, images, n, chunk_size, verbose)
                               if stream else _caffe_to_rgb_chunked(images, n, chunk_size))
            kinds["image"] = "image"
        elif image == "vgg_features":
            inputs["image"] = _dataset(f, "vgg_features", path, n_file)[:n]
            kinds["image"] = "vector"
        if "imdb_ids" in f:
            ids = _dataset(f, "imdb_ids", path, n_file)[:n]
            extras["imdb_ids"] = [i.decode("ascii") for i in ids]

    metadata_path = os.path.join(os.path.dirname(os.path.abspath(path)),
                                 METADATA_NAME)
    if os.path.isfile(metadata_path):
        extras.update(_vocabulary(metadata_path, word2vec_vocab))
        if text == "sequences" and len(inputs["text"]):
            top = int(inputs["text"].max())
            if top >= len(extras["vocabulary"]):
                raise DataError(
                    f"mmimdb: {path} key 'sequences' has word id "
                    f"{top - _SHIFT} but {metadata_path} has vocab_size "
                    f"{len(extras['vocabulary']) - _SHIFT}")
    extras["preprocessing"] = preprocessing_steps("hdf5", kinds["text"], kinds.get("image"))
    return MultimodalDataset(
        name="mmimdb", inputs=inputs, kinds=kinds, labels=labels,
        label_names=label_names, multilabel=True, splits=splits, extras=extras)


def _dataset(f, key, path, n_rows=None):
    """`f[key]` after checking it against the published layout."""
    shape, dtype = LAYOUT[key]
    expected = _describe(key)
    if key not in f:
        raise DataError(f"mmimdb: {path} has no key '{key}'; expected {expected}")
    ds = f[key]
    if key == "sequences":
        import h5py
        base = h5py.check_vlen_dtype(ds.dtype)
        ok_dtype = base is not None and np.dtype(base) == np.int32
    else:
        ok_dtype = ds.dtype == dtype
    if ds.ndim != 1 + len(shape) or tuple(ds.shape[1:]) != shape or not ok_dtype:
        raise DataError(
            f"mmimdb: {path} key '{key}' is {ds.shape} {ds.dtype}; expected "
            f"{expected}")
    if n_rows is not None and ds.shape[0] != n_rows:
        raise DataError(
            f"mmimdb: {path} key '{key}' has {ds.shape[0]} rows but 'genres' "
            f"has {n_rows}")
    return ds


def _describe(key):
    shape, dtype = LAYOUT[key]
    if key == "sequences":
        return "(N,) variable-length int32"
    return f"{('N',) + shape} {dtype}".replace("'", "")


def _target_names(genres_ds, path):
    raw = genres_ds.attrs.get("target_names")
    if raw is None:
        return GENRES
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8")
    if isinstance(raw, str):
        # make_dataset.py stores json.dumps(target_names).
        try:
            names = json.loads(raw)
        except json.JSONDecodeError:
            raise DataError(
                f"mmimdb: {path} key 'genres' attrs['target_names'] is a string "
                f"but not a JSON list: {raw[:80]!r}") from None
    else:
        names = [n.decode("utf-8") if isinstance(n, bytes) else str(n)
                 for n in np.ravel(raw)]
    if len(names) != genres_ds.shape[1]:
        raise DataError(
            f"mmimdb: {path} key 'genres' attrs['target_names'] has "
            f"{len(names)} names for {genres_ds.shape[1]} columns")
    return tuple(names)


def _splits(f, path, n_file, n):
    """Split indices from Fuel's table, else from the published ranges."""
    if "split" in f.attrs:
        splits = _fuel_splits(f, path, n_file)
    elif n_file != NUM_SAMPLES:
        raise DataError(
            f"mmimdb: {path} has no Fuel split table in attrs['split'] and "
            f"{n_file} rows; the published ranges need {NUM_SAMPLES} rows")
    else:
        splits = {k: np.arange(a, b, dtype=np.int64)
                  for k, (a, b) in PUBLISHED_RANGES.items()}
    # With max_samples, keep the split members among the rows read.
    return {k: v[v < n] for k, v in splits.items()}


def _fuel_splits(f, path, n_file):
    table = np.asarray(f.attrs["split"])
    fields = table.dtype.names or ()
    missing = [k for k in ("split", "source", "start", "stop") if k not in fields]
    if missing:
        raise DataError(
            f"mmimdb: {path} attrs['split'] lacks fields {missing}; expected "
            f"Fuel's (split, source, start, stop, indices, available, comment)")
    splits = {}
    for fuel_name, ours in _FUEL_SPLITS.items():
        rows = [r for r in table if _str(r["split"]) == fuel_name
                and ("available" not in fields or bool(r["available"]))]
        if not rows:
            continue
        # All sources share one range in the published file; prefer the labels'.
        row = next((r for r in rows if _str(r["source"]) == "genres"), rows[0])
        ref = row["indices"] if "indices" in fields else None
        if ref is not None and not isinstance(ref, (bytes, str)) and bool(ref):
            index = np.asarray(f[ref][()], dtype=np.int64).ravel()
        else:
            index = np.arange(int(row["start"]), int(row["stop"]), dtype=np.int64)
        if len(index) and (index.min() < 0 or index.max() >= n_file):
            raise DataError(
                f"mmimdb: {path} attrs['split'] row ({fuel_name}, "
                f"{_str(row['source'])}) indexes outside [0, {n_file})")
        splits[ours] = index
    return splits


def _str(value):
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _pad_sequences(sequences, max_tokens):
    out = np.full((len(sequences), max_tokens), PAD_ID, dtype=np.int32)
    for i, seq in enumerate(sequences):
        seq = np.asarray(seq, dtype=np.int64)[:max_tokens]
        if len(seq) and seq.min() < 0:
            raise DataError(f"mmimdb: key 'sequences' row {i} has negative ids")
        out[i, :len(seq)] = seq + _SHIFT
    return out


def caffe_to_rgb(block):
    """Undoes the Caffe preprocessing of the stored posters.

    The file holds `int32(float32(pixel[BGR]) - mean)`; HDF5's float-to-int
    conversion truncates toward zero, so a positive stored value came from
    the next integer up, a negative one from the next integer down. Only a
    stored 0 is ambiguous (two pixel values map to it); it is rounded, at most
    1 grey level off.

    Args:
        block: int (B, 3, H, W) BGR values minus `CAFFE_MEAN_BGR`.

    Returns:
        uint8 (B, H, W, 3) RGB.
    """
    block = np.asarray(block)
    out = np.empty((block.shape[0],) + block.shape[2:] + (3,), np.uint8)
    # Channel by channel in integers: ~10x faster than float where/transpose.
    for bgr, mean in enumerate(CAFFE_MEAN_BGR):
        stored = block[:, bgr]
        pixels = stored + np.int32(np.ceil(mean))
        pixels -= (stored < 0) * np.int32(np.ceil(mean) - np.floor(mean))
        pixels[stored == 0] = np.rint(mean)
        np.clip(pixels, 0, 255, out=pixels)
        out[..., 2 - bgr] = pixels
    return out


def _prepared_images(path, images, n, chunk_size, verbose):
    """The posters as uint8 RGB rows in a prepared TFDS dataset (written once)."""
    from ssnas_tf.data import prepared
    fingerprint = prepared.source_fingerprint(path, key="images", rows=n,
                                              conversion="caffe_to_rgb")
    return prepared.prepare_rows(
        prepared.cache_path(path, "mmimdb-images", fingerprint), n,
        images.shape[2:] + (3,), np.uint8,
        lambda start, stop: caffe_to_rgb(images[start:stop]), chunk_size,
        label=f"mmimdb images of {path}", verbose=verbose)


def _caffe_to_rgb_chunked(ds, n, chunk_size):
    out = np.empty((n,) + ds.shape[2:] + (3,), dtype=np.uint8)
    for start in range(0, n, chunk_size):
        stop = min(start + chunk_size, n)
        out[start:stop] = caffe_to_rgb(ds[start:stop])
    return out


def _vocabulary(metadata_path, word2vec_vocab):
    try:
        metadata = np.load(metadata_path, allow_pickle=True).item()
    except Exception as error:  # pickles raise many types
        raise DataError(
            f"mmimdb: cannot read {metadata_path} as a pickled dict: "
            f"{error}") from None
    for key in ("ix_to_word", "vocab_size", "lookup"):
        if key not in metadata:
            raise DataError(f"mmimdb: {metadata_path} has no key '{key}'")
    vocab_size = int(metadata["vocab_size"])
    ix_to_word = metadata["ix_to_word"]
    if isinstance(ix_to_word, dict):
        words = [str(ix_to_word.get(i, "")) for i in range(vocab_size)]
    else:
        words = [str(w) for w in ix_to_word][:vocab_size]
        words += [""] * (vocab_size - len(words))
    extras = {"vocabulary": ["<pad>", "<mask>"] + words}

    lookup = metadata["lookup"]
    if isinstance(lookup, dict):
        dim = len(next(iter(lookup.values()))) if lookup else 300
        embedding = np.zeros((vocab_size + _SHIFT, dim), np.float32)
        for i, word in enumerate(words):
            if word in lookup:
                embedding[i + _SHIFT] = lookup[word]
        extras["embedding"] = embedding
        return extras
    lookup = np.asarray(lookup, dtype=np.float32)
    if lookup.ndim != 2:
        raise DataError(
            f"mmimdb: {metadata_path} key 'lookup' has shape {lookup.shape}; "
            f"expected a dict word -> vector or a (rows, 300) array")
    embedding = np.zeros((vocab_size + _SHIFT, lookup.shape[1]), np.float32)
    if len(lookup) == vocab_size:
        # One row per id: the only reading under which an array is aligned.
        embedding[_SHIFT:] = lookup
        extras["embedding"] = embedding
    elif word2vec_vocab is not None:
        known = _word_set(word2vec_vocab)
        ids = np.array([i for i, w in enumerate(words) if w in known], np.int64)
        if len(ids) != len(lookup):
            raise DataError(
                f"mmimdb: {metadata_path} key 'lookup' has {len(lookup)} rows "
                f"but {len(ids)} vocabulary words are in word2vec_vocab")
        embedding[ids + _SHIFT] = lookup
        extras["embedding"] = embedding
    else:
        warnings.warn(
            f"{metadata_path}: 'lookup' has {len(lookup)} rows for "
            f"{vocab_size} words and is not aligned with word ids; no "
            f"'embedding' returned (pass word2vec_vocab to align it)")
        extras["lookup_unaligned"] = lookup
    return extras


def _word_set(word2vec_vocab):
    if isinstance(word2vec_vocab, (str, os.PathLike)):
        with open(word2vec_vocab, encoding="utf-8") as handle:
            return {line.rstrip("\n") for line in handle}
    return set(word2vec_vocab)


# -------------------------------------------------------------- raw archive


def _find_raw_root(data_dir):
    for root in (os.path.join(data_dir, "mmimdb"), data_dir):
        if os.path.isfile(os.path.join(root, "split.json")):
            return root
    for root in (os.path.join(data_dir, "mmimdb"), data_dir):
        if os.path.isdir(os.path.join(root, "dataset")):
            raise DataError(
                f"mmimdb: {os.path.join(root, 'split.json')} not found next to "
                f"{os.path.join(root, 'dataset')}")
    return None


def _load_raw(root, text, image, max_samples, image_size, verbose, max_pixels):
    if text not in (None, "text"):
        raise DataError(
            f"mmimdb: text={text!r} needs {HDF5_NAME}; the raw archive at "
            f"{root} only gives raw plot strings (text='text')")
    if image == "vgg_features":
        raise DataError(
            f"mmimdb: image='vgg_features' needs {HDF5_NAME}; the raw archive "
            f"at {root} has posters only")
    split_path = os.path.join(root, "split.json")
    with open(split_path, encoding="utf-8") as handle:
        try:
            table = json.load(handle)
        except json.JSONDecodeError as error:
            raise DataError(
                f"mmimdb: {split_path} is not JSON: {error}") from None
    ids, splits = [], {}
    for fuel_name, ours in _FUEL_SPLITS.items():
        if fuel_name not in table:
            raise DataError(f"mmimdb: {split_path} has no key '{fuel_name}'")
        split_ids = [str(i) for i in table[fuel_name]]
        splits[ours] = np.arange(len(ids), len(ids) + len(split_ids),
                                 dtype=np.int64)
        ids.extend(split_ids)
    if max_samples is not None:
        ids = ids[:max_samples]
        splits = {k: v[v < len(ids)] for k, v in splits.items()}

    genre_column = {g: i for i, g in enumerate(GENRES)}
    labels = np.zeros((len(ids), len(GENRES)), np.float32)
    plots = np.empty(len(ids), dtype=object)
    images = (np.empty((len(ids),) + tuple(image_size) + (3,), np.uint8)
              if image else None)
    dataset_dir = os.path.join(root, "dataset")
    for row, movie_id in enumerate(ids):
        json_path = _movie_file(dataset_dir, movie_id, ".json", split_path)
        if not os.path.isfile(json_path):
            raise DataError(f"mmimdb: movie {movie_id}: {json_path} not found")
        with open(json_path, encoding="utf-8") as handle:
            movie = json.load(handle)
        for key in ("plot", "genres"):
            if key not in movie:
                raise DataError(f"mmimdb: movie {movie_id}: {json_path} has no "
                                f"key '{key}'")
        # Several plot versions per movie; the authors keep the longest.
        plots[row] = max(movie["plot"], key=len) if movie["plot"] else ""
        for genre in movie["genres"]:
            if genre in genre_column:
                labels[row, genre_column[genre]] = 1.0
        if image:
            jpeg_path = _movie_file(dataset_dir, movie_id, ".jpeg", split_path)
            if not os.path.isfile(jpeg_path):
                raise DataError(
                    f"mmimdb: movie {movie_id}: {jpeg_path} not found")
            images[row] = _read_poster(jpeg_path, image_size, max_pixels)
        if verbose and (row + 1) % 2000 == 0:
            print(f"mmimdb: read {row + 1}/{len(ids)} movies from {root}")

    inputs, kinds = {"text": plots}, {"text": "text"}
    if image:
        inputs["image"], kinds["image"] = images, "image"
    return MultimodalDataset(
        name="mmimdb", inputs=inputs, kinds=kinds, labels=labels,
        label_names=GENRES, multilabel=True, splits=splits,
        extras={"imdb_ids": ids, "preprocessing": preprocessing_steps(
            "raw", "text", kinds.get("image"), image_size)})


def preprocessing_steps(source, text_kind, image_kind, image_size=(256, 160)):
    """What a serving client must repeat on its own data (extras["preprocessing"]).

    Args:
        source: "hdf5" (the published file) or "raw" (the archive's JPEGs).
        text_kind: the `text` input's kind ("sequence", "vector" or "text").
        image_kind: the `image` input's kind ("image", "vector") or None.
        image_size: (height, width) of the raw path's posters.
    """
    steps = {}
    if image_kind == "image" and source == "hdf5":
        steps["image"] = [
            "the published file's posters: 8-bit RGB (the stored BGR, "
            "Caffe-mean-subtracted int32 values converted back), uint8 "
            "(256, 160, 3); a client resizes its poster to 160x256 (width x "
            "height) as the MM-IMDB authors did"]
    elif image_kind == "image":
        height, width = image_size
        steps["image"] = [
            "decoded with PIL and converted to RGB",
            f"centre-cropped to the {width}:{height} aspect ratio, then resized "
            f"to {width}x{height} with PIL Lanczos; uint8 ({height}, {width}, 3)"]
    elif image_kind == "vector":
        steps["image"] = ["the file's 4096-d VGG16 fc7 features of the poster"]
    if text_kind == "sequence":
        steps["text"] = [
            "word ids of the plot in the file's vocabulary (metadata.npy), each "
            f"shifted by +{_SHIFT} (0 = padding, 1 = mask/OOV; the export's "
            "text_vocabulary.txt lists the shifted ids), at most max_tokens ids"]
    elif text_kind == "vector":
        steps["text"] = ["the mean word2vec (300-d) vector of the plot's words, "
                         "as in the file's 'features'"]
    else:
        steps["text"] = ["the longest of the movie's plot strings, as raw text"]
    return steps


def _movie_file(dataset_dir, movie_id, suffix, split_path):
    """`dataset/<id><suffix>`, refused if the id leads outside `dataset/`.

    The ids come from split.json, a data file: an id such as
    "../../secret" or "/etc/x", or a file that is a symbolic link out of the
    folder, must not make the loader read other files.
    """
    try:
        return confined_path(f"{movie_id}{suffix}", dataset_dir)
    except PathError as error:
        raise DataError(f"mmimdb: movie id {movie_id!r} from {split_path}: "
                        f"{error}") from None


def _read_poster(path, image_size, max_pixels=DEFAULT_MAX_PIXELS):
    """Centre-crops to the target aspect ratio, then resizes (as the authors).

    Posters whose header declares more than `max_pixels` pixels are refused
    before decoding.
    """
    from PIL import Image

    height, width = image_size
    try:
        with Image.open(path) as img:
            check_pixels(img.size, max_pixels, f"poster {path}")
            img = img.convert("RGB")
    except PixelBudgetError as error:
        raise DataError(f"mmimdb: {error}") from None
    except (OSError, Image.DecompressionBombError) as error:
        raise DataError(f"mmimdb: cannot decode {path}: {error}") from None
    w, h = img.size
    if h * width > w * height:  # too tall: crop rows
        crop = w * height / width
        top = (h - crop) / 2
        img = img.crop((0, int(top), w, int(top + crop)))
    else:
        crop = h * width / height
        left = (w - crop) / 2
        img = img.crop((int(left), 0, int(left + crop), h))
    img = img.resize((width, height), Image.Resampling.LANCZOS)
    return np.asarray(img, dtype=np.uint8)
